package sqlite_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/heraldhq/herald/internal/seal"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/sqlite"
	"github.com/heraldhq/herald/internal/store/storetest"
)

// database is one SQLite file; Raw reads the file, its WAL and shared memory as they are on disk.
func database(t *testing.T) storetest.Database {
	path := filepath.Join(t.TempDir(), "herald.db")
	return storetest.Database{
		Open: func(t *testing.T, keys *seal.Keyring) store.Store {
			t.Helper()
			s, err := sqlite.Open(context.Background(), path, sqlite.Options{Keys: keys})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Raw: func(t *testing.T) []byte {
			t.Helper()
			var all []byte
			for _, f := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
				b, err := os.ReadFile(f)
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					t.Fatal(err)
				}
				all = append(all, b...)
			}
			return all
		},
	}
}

func TestSecretsConformance(t *testing.T) {
	storetest.RunSecrets(t, database)
}

// testKeys is a fresh keyring: the conformance suite runs with secrets encrypted, as Herald does.
func testKeys(t *testing.T) *seal.Keyring {
	t.Helper()
	k, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := seal.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}
