// Package pgtest gives tests that need PostgreSQL the server's URL and a schema of their own.
// Tests read the URL from HERALD_TEST_DATABASE_URL and skip only when it is unset (.ci/run sets
// it, so CI skips nothing).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// URL is the PostgreSQL the tests use; it skips t when HERALD_TEST_DATABASE_URL is unset.
func URL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("HERALD_TEST_DATABASE_URL")
	if url == "" {
		t.Skip("HERALD_TEST_DATABASE_URL is not set")
	}
	return url
}

// Schema names a fresh schema (prefix and random hex; Herald creates it when it opens the store)
// and drops it with everything in it when the test ends — after whatever the test registers
// later, such as processes or stores to stop, since cleanups run last-registered first. It
// skips t when HERALD_TEST_DATABASE_URL is unset.
func Schema(t testing.TB, prefix string) (url, schema string) {
	t.Helper()
	url = URL(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b) // crypto/rand never fails
	schema = prefix + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return url, schema
}
