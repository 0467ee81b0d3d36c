package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/seal"
)

// encryptionFlag adds --encryption-key-file, shared by serve and rekey.
func encryptionFlag(f *pflag.FlagSet, c *seal.Config) {
	f.StringVar(&c.KeyFile, "encryption-key-file", "", "file holding the base64 master key that encrypts endpoint secrets at rest, "+
		"instead of HERALD_ENCRYPTION_KEY (default: <data-dir>/"+seal.KeyFileName+", created on first start)")
}

// encryptionEnv reads the keys themselves from the environment only: as flags they would show
// in the process list.
func encryptionEnv(c *seal.Config) {
	c.Key = os.Getenv("HERALD_ENCRYPTION_KEY")
	c.OldKeys = os.Getenv("HERALD_ENCRYPTION_OLD_KEYS")
}

// checkPostgresKey refuses, on PostgreSQL, to create a key file in the default data directory:
// there the data directory would hold nothing but that key, a node-local key that the other
// nodes sharing the database cannot have, and a ./herald-data the operator never asked for. The
// key then comes from HERALD_ENCRYPTION_KEY or --encryption-key-file, or from a key file in a
// --data-dir given on purpose; a ./herald-data/encryption.key made by an earlier version is still
// read, so that upgrading keeps its key.
func checkPostgresKey(f *pflag.FlagSet, cfg *node.Config) error {
	enc := cfg.Encryption
	if cfg.DatabaseURL == "" || enc.Key != "" || enc.KeyFile != "" || f.Changed("data-dir") {
		return nil
	}
	path := filepath.Join(cfg.DataDir, seal.KeyFileName)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	return usageErrorf("with --database-url, give the key that encrypts endpoint secrets at rest, the same on every node: " +
		"HERALD_ENCRYPTION_KEY (base64 of 32 random bytes: openssl rand -base64 32) or --encryption-key-file FILE; " +
		"or --data-dir DIR to keep a key file created in DIR (docs/operations.md, The encryption key)")
}

// rekeyCmd re-encrypts every stored secret with the current master key.
func rekeyCmd() *cobra.Command {
	var (
		cfg       node.Config
		logFormat string
	)
	cmd := &cobra.Command{
		Use:   "rekey",
		Short: "Re-encrypt every stored endpoint secret with the current master key",
		Long: `Re-encrypt, with the current master key (HERALD_ENCRYPTION_KEY, --encryption-key-file, or
<data-dir>/encryption.key), every endpoint secret that is stored in plaintext (written by a version
before encryption at rest) or sealed with one of HERALD_ENCRYPTION_OLD_KEYS, in small batches.
herald serve runs the same pass in the background at every start. On SQLite, stop serve first (it
holds the data directory); on PostgreSQL it may run while nodes serve. When it reports nothing left
to do, the old keys can be removed. See docs/operations.md.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := bindEnv(cmd.Flags()); err != nil {
				return err
			}
			encryptionEnv(&cfg.Encryption)
			if err := checkPostgresKey(cmd.Flags(), &cfg); err != nil {
				return err
			}
			log, err := newLogger(logFormat, "info")
			if err != nil {
				return err
			}
			cfg.Logger = log
			n, err := node.Rekey(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "re-encrypted the secrets of %d endpoints with the current key\n", n)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "herald-data", "directory of the embedded SQLite store (and of the default key file)")
	f.StringVar(&cfg.DatabaseURL, "database-url", "", "PostgreSQL URL: rekey PostgreSQL instead of SQLite")
	f.StringVar(&cfg.DatabaseSchema, "database-schema", "", "PostgreSQL schema of Herald's tables")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	encryptionFlag(f, &cfg.Encryption)
	return cmd
}
