package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/sqlite"
)

// The writer does not checkpoint the log (its connection has wal_autocheckpoint(0)): the
// store's checkpointer copies committed pages into the database file beside it. Without it the
// database file would stay at its initial size while the log took every write.
func TestCheckpoints_RunBesideTheWriter(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "herald.db")
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{Keys: testKeys(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	now := time.Now()
	if err := s.CreateTenant(ctx, &store.Tenant{ID: "acme", Name: "acme", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	data := `{"s":"` + strings.Repeat("a", 256<<10) + `"}`
	size := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	// 48 events of 256 KiB in 48 commits: 12 MiB, three times SQLite's automatic threshold.
	for i := range 48 {
		ev := &store.Event{ID: fmt.Sprintf("big-%d", i), Type: "a.b", Timestamp: now, CreatedAt: now, Payload: []byte(data)}
		if _, err := s.Publish(ctx, "acme", []*store.Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for size(path) < 12<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("database file %d bytes, log %d bytes 30 s after 12 MiB were written: the log was not checkpointed", size(path), size(path+"-wal"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
