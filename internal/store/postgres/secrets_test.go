package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/seal"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
	"github.com/heraldhq/herald/internal/store/storetest"
)

// database is one schema; Raw selects every row of every table in it as text, as a reader of
// the database (or of a logical dump) would see it.
func database(t *testing.T) storetest.Database {
	schema := newSchema(t)
	url := databaseURL(t)
	return storetest.Database{
		Open: func(t *testing.T, keys *seal.Keyring) store.Store {
			t.Helper()
			s, err := postgres.Open(context.Background(), url, postgres.Options{Schema: schema, Keys: keys})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Raw: func(t *testing.T) []byte {
			t.Helper()
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'`, schema)
			if err != nil {
				t.Fatal(err)
			}
			tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			var all []byte
			for _, table := range tables {
				var dump *string
				q := `SELECT string_agg(t::text, E'\n') FROM ` + pgx.Identifier{schema, table}.Sanitize() + ` t`
				if err := conn.QueryRow(ctx, q).Scan(&dump); err != nil {
					t.Fatalf("dump %s: %v", table, err)
				}
				if dump != nil {
					all = append(append(all, *dump...), '\n')
				}
			}
			return all
		},
	}
}

func TestSecretsConformance(t *testing.T) {
	databaseURL(t)
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
