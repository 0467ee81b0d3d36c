package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/sqlite"
	"github.com/heraldhq/herald/internal/store/storetest"
)

func open(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "herald.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, open)
}

func TestOpen_SecondProcessIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s2, err := sqlite.Open(context.Background(), path, sqlite.Options{}); err == nil {
		s2.Close()
		t.Fatal("a second Open of the same file succeeded; the lock must refuse it")
	}
}

// Writes are committed in batches; one that fails must not undo or fail the others in its batch.
func TestGroupCommit_FailingWriteDoesNotAffectOthers(t *testing.T) {
	t.Parallel()
	s := open(t)
	ctx := context.Background()
	now := time.Now()
	if err := s.CreateTenant(ctx, &store.Tenant{ID: "acme", Name: "Acme", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 200)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tenant := "acme"
			if i%2 == 1 {
				tenant = "ghost"
			}
			ev := &store.Event{ID: fmt.Sprintf("e%d", i), Type: "a.b", Timestamp: now, CreatedAt: now, Payload: []byte(`{}`)}
			_, errs[i] = s.Publish(ctx, tenant, []*store.Event{ev})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if i%2 == 0 && err != nil {
			t.Fatalf("publish %d to an existing tenant failed: %v", i, err)
		}
		if i%2 == 1 && !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("publish %d to a missing tenant: %v, want ErrNotFound", i, err)
		}
	}
	st, err := s.Stats(ctx, "acme", now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 100 {
		t.Fatalf("%d events stored, want 100", st.Events)
	}
}
