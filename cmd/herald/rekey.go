package main

import (
	"fmt"
	"os"

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
