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
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "herald.db"), sqlite.Options{Keys: testKeys(t)})
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

func TestPublish_EndpointChangedWhileMatchedGetsNothing(t *testing.T) {
	t.Parallel()
	storetest.ChangedWhileMatched(t, open(t), sqlite.PublishBetween)
}

func TestConformance_Limits(t *testing.T) {
	storetest.RunLimits(t, func(t *testing.T, limits store.Limits) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "herald.db"), sqlite.Options{Keys: testKeys(t), Limits: limits})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
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

// The dispatcher's results name their tenant and event, and are written in multi-row chunks.
func TestRecordResults_ChunkedWrites(t *testing.T) {
	t.Parallel()
	s := open(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.CreateTenant(ctx, &store.Tenant{ID: "acme", Name: "Acme", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateEndpoint(ctx, &store.Endpoint{ID: "ep", TenantID: "acme", URL: "https://example.com", EventTypes: []string{"*"},
		Secrets: []store.Secret{{Key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, Timeout: time.Second, MaxConcurrency: 1, Enabled: true, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	var evs []*store.Event
	for i := range 70 {
		evs = append(evs, &store.Event{ID: fmt.Sprintf("e%02d", i), Type: "a.b", Timestamp: now, CreatedAt: now, Payload: []byte(`{}`)})
	}
	if _, err := s.Publish(ctx, "acme", evs); err != nil {
		t.Fatal(err)
	}
	claims, err := s.ClaimDue(ctx, time.Now(), time.Now().Add(time.Minute), []store.ClaimRequest{{EndpointID: "ep", Limit: 100}})
	if err != nil || len(claims[0].Claimed) != 70 {
		t.Fatalf("claimed %v, %v", claims, err)
	}
	var results []store.Result
	retry := now.Add(time.Hour)
	for i, c := range claims[0].Claimed {
		r := store.Result{DeliveryID: c.DeliveryID, EndpointID: "ep", State: store.StateSucceeded,
			Attempt: store.Attempt{TenantID: "acme", EndpointID: "ep", EventID: c.EventID, At: now, StatusCode: 200, Latency: time.Millisecond, Response: "ok " + c.EventID, Success: true}}
		if i%3 == 0 {
			r.State, r.NextAttemptAt = store.StatePending, retry
			r.Attempt.StatusCode, r.Attempt.Success, r.Attempt.Error = 503, false, "status 503"
		}
		results = append(results, r)
	}
	if err := s.RecordResults(ctx, results); err != nil {
		t.Fatal(err)
	}
	for i, c := range claims[0].Claimed {
		d, err := s.GetDelivery(ctx, "acme", c.DeliveryID)
		if err != nil {
			t.Fatal(err)
		}
		atts, _, err := s.ListAttempts(ctx, store.AttemptFilter{TenantID: "acme", DeliveryID: c.DeliveryID})
		if err != nil || len(atts) != 1 || atts[0].Response != "ok "+c.EventID || atts[0].EventID != c.EventID {
			t.Fatalf("delivery %d attempts %+v %v", i, atts, err)
		}
		if i%3 == 0 {
			if d.State != store.StatePending || d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(retry) || d.LastStatus != 503 || d.LastError != "status 503" || d.Attempts != 1 {
				t.Fatalf("retried delivery %d = %+v", i, d)
			}
		} else if d.State != store.StateSucceeded || d.LastStatus != 200 || d.Attempts != 1 {
			t.Fatalf("delivery %d = %+v", i, d)
		}
	}
}

func BenchmarkPublish(b *testing.B) {
	s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "herald.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchmarkPublish(b, s)
}

// Deleting an endpoint with a long history does not hold the writer: another tenant's publish is
// answered while the deletion is still under way.
func TestDeleteEndpoint_LongHistoryDoesNotHoldTheWriter(t *testing.T) {
	t.Parallel()
	s := open(t)
	ctx := context.Background()
	now := time.Now()
	for _, id := range []string{"big", "small"} {
		if err := s.CreateTenant(ctx, &store.Tenant{ID: id, Name: id, CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateEndpoint(ctx, &store.Endpoint{ID: id + "_ep", TenantID: id, URL: "https://example.com/", EventTypes: []string{"*"},
			Enabled: true, CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	for b := range 20 {
		evs := make([]*store.Event, 1000)
		for i := range evs {
			evs[i] = &store.Event{ID: fmt.Sprintf("e%d_%d", b, i), Type: "a.b", Timestamp: now, CreatedAt: now, Payload: []byte(`{}`)}
		}
		if _, err := s.Publish(ctx, "big", evs); err != nil {
			t.Fatal(err)
		}
	}
	deliveries := func() int {
		st, err := s.Stats(ctx, "big", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return st.Deliveries
	}
	done := make(chan error, 1)
	go func() { done <- s.DeleteEndpoint(ctx, "big", "big_ep") }()
	// Once part of the history is gone, the deletion is under way (and is not one transaction).
	for deliveries() == 20000 {
		select {
		case err := <-done:
			t.Fatalf("the deletion ended (err %v) before any delivery was gone: it was one transaction", err)
		case <-time.After(time.Millisecond):
		}
	}
	if _, err := s.Publish(ctx, "small", []*store.Event{{ID: "s1", Type: "a.b", Timestamp: now, CreatedAt: now, Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetEndpoint(ctx, "big", "big_ep"); err != nil {
		t.Fatalf("the endpoint once the other tenant's publish was answered: %v, want it still there: the publish waited for the whole deletion", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := deliveries(); n != 0 {
		t.Fatalf("%d deliveries left, want 0", n)
	}
}

func BenchmarkUsage(b *testing.B) {
	s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "herald.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchmarkUsage(b, s)
}
