package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/heraldhq/herald/internal/seal"
	"github.com/heraldhq/herald/internal/store"
)

// loadKeys builds the keyring that encrypts endpoint secrets at rest, and logs which key is
// current and where it came from (never the key).
func loadKeys(cfg Config) (*seal.Keyring, error) {
	enc := cfg.Encryption
	if enc.DataDir == "" {
		enc.DataDir = cfg.DataDir
	}
	keys, source, err := seal.Load(enc)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	log := cfg.Logger
	if log != nil {
		log.Info("endpoint secrets are encrypted at rest", "key_id", keys.ID(), "key_source", source, "old_keys", len(keys.IDs())-1)
		if file := keyFile(enc); file != "" {
			if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
				log.Warn("the encryption key file is readable by other users: chmod 600 it", "key_file", file, "mode", fi.Mode().Perm().String())
			}
		}
		if cfg.DatabaseURL != "" && enc.Key == "" && enc.KeyFile == "" {
			log.Warn("the encryption key is the key file in this node's data directory: every node sharing the database needs the same key "+
				"(copy the file, or set HERALD_ENCRYPTION_KEY)", "key_file", filepath.Join(enc.DataDir, seal.KeyFileName))
		}
	}
	return keys, nil
}

// keyFile is the file the current key was read from, if any.
func keyFile(c seal.Config) string {
	switch {
	case c.Key != "":
		return ""
	case c.KeyFile != "":
		return c.KeyFile
	}
	return filepath.Join(c.DataDir, seal.KeyFileName)
}

// rekeyPage is how many endpoints one step of a rekey pass reads; a step's writes are one
// transaction, so API writes never wait behind more than a page's worth.
const rekeyPage = 100

// RekeySecrets re-encrypts, with the current key, every stored secret that is plaintext (from a
// version before encryption at rest) or sealed with an old key, a page at a time with pause
// between pages, and returns how many endpoints, sources and broker sources it rewrote.
func RekeySecrets(ctx context.Context, st store.Store, pause time.Duration) (int, error) {
	total, cursor := 0, ""
	for {
		n, next, err := st.RekeySecrets(ctx, store.Page{Limit: rekeyPage, Cursor: cursor})
		total += n
		if err != nil {
			return total, err
		}
		if next == "" {
			return total, nil
		}
		cursor = next
		if pause > 0 {
			select {
			case <-ctx.Done():
				return total, ctx.Err()
			case <-time.After(pause):
			}
		}
	}
}

// Rekey opens the store that cfg names, re-encrypts its secrets with the current key and closes
// it: the herald rekey command. On SQLite it needs the data directory to itself (stop serve
// first; serve also runs this pass at start); on PostgreSQL it may run beside serving nodes.
func Rekey(ctx context.Context, cfg Config) (int, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = "herald-data"
	}
	keys, err := loadKeys(cfg)
	if err != nil {
		return 0, err
	}
	st, _, err := openStore(ctx, cfg, keys)
	if err != nil {
		return 0, err
	}
	n, err := RekeySecrets(ctx, st, 0)
	if cerr := st.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return n, err
}

// rekeyAtStart runs one rekey pass in the background, so that an upgrade from plaintext secrets,
// or a new master key, takes effect without a separate step. Several nodes may run it at once:
// each endpoint is rewritten only if unchanged since it was read.
func (n *Node) rekeyAtStart(ctx context.Context) {
	start := time.Now()
	count, err := RekeySecrets(ctx, n.Store, 50*time.Millisecond)
	switch {
	case err != nil && ctx.Err() == nil:
		// Most likely a secret sealed with a key this node was not given: add that key to
		// HERALD_ENCRYPTION_OLD_KEYS. Until then the endpoint's API reads and deliveries fail.
		n.log.Error("re-encrypting endpoint secrets with the current key", "rewritten", count, "err", err)
	case count > 0:
		n.log.Info("re-encrypted endpoint secrets with the current key", "endpoints", count, "took", time.Since(start).Round(time.Millisecond))
	}
}
