package api_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/sqlite"
)

// stalledPublish is a real SQLite store whose publishes do not answer until their caller gives
// up: a store too slow for the moment (a huge fan-out on a loaded machine).
type stalledPublish struct {
	*sqlite.Store
}

func (s stalledPublish) Publish(ctx context.Context, tenantID string, events []*store.Event) ([]store.PublishResult, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// A publish the store cannot take within the answer's window is answered 503 with Retry-After
// before the server's write deadline, never a connection cut without an answer.
func TestAnswerDeadline_ASlowStoreIs503NotACutConnection(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "herald.db"), sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	a := newTestAPIOn(t, stalledPublish{st}, api.Config{AnswerTimeout: 2 * time.Second})
	a.must(http.StatusCreated, "POST", "/v1/tenants", map[string]any{"id": "acme", "name": "Acme"}, nil)
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "a.b"}, nil)
	got := a.do(a.admin, "POST", "/v1/tenants/acme/events", map[string]any{"type": "a.b", "data": map[string]any{}})
	if got.status != http.StatusServiceUnavailable || got.header.Get("Retry-After") == "" {
		t.Fatalf("publish to a stalled store: %d (Retry-After %q) %s, want 503 with Retry-After", got.status, got.header.Get("Retry-After"), got.body)
	}
}
