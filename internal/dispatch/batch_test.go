package dispatch_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/store"
)

// A shutdown gives back every member of a batch: the one in flight (cut short when the grace
// ends) and those queued. Nothing is recorded for them, and the next run claims them all again
// as they were.
func TestDispatch_ShutdownReleasesEveryBatchMember(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var requests atomic.Int64
	hang := make(chan struct{})
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(hang); rc.Close() })
	st := openStore(t)
	now := time.Now().UTC()
	ep := &store.Endpoint{
		ID: "ep_batch", TenantID: "acme", URL: rc.URL, EventTypes: []string{"*"}, Secrets: []store.Secret{{Key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}},
		Timeout: 10 * time.Second, MaxConcurrency: 1, Enabled: true, CreatedAt: now, UpdatedAt: now,
		Options: store.EndpointOptions{Batch: &store.Batching{MaxEvents: 5, MaxWait: time.Hour}},
	}
	if err := st.CreateEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}
	var evs []*store.Event
	for i := range 10 {
		id := fmt.Sprintf("evt_%d", i)
		evs = append(evs, &store.Event{ID: id, Type: "a.happened", Timestamp: now, CreatedAt: now, Priority: store.PriorityNormal,
			Payload: []byte(`{"id":"` + id + `","type":"a.happened","data":{}}`)})
	}
	if _, err := st.Publish(ctx, "acme", evs); err != nil {
		t.Fatal(err)
	}

	client := httpsend.New(httpsend.Config{AllowHTTP: true, AllowLoopback: true})
	d := dispatch.New(st, client, dispatch.Config{Rescan: 100 * time.Millisecond, ShutdownGrace: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- d.Run(runCtx) }()
	deadline := time.Now().Add(10 * time.Second)
	for requests.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no batch was sent")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if n := requests.Load(); n != 1 {
		t.Fatalf("%d requests at max_concurrency 1, want 1", n)
	}
	atts, _, err := st.ListAttempts(ctx, store.AttemptFilter{TenantID: "acme"})
	if err != nil || len(atts) != 0 {
		t.Fatalf("attempts recorded: %v, %v; want none", atts, err)
	}
	// Every member is claimable again: two full batches.
	at := time.Now()
	res, err := st.ClaimDue(ctx, at, at.Add(time.Minute), []store.ClaimRequest{{EndpointID: ep.ID, Limit: 5, Batch: ep.Options.Batch}})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(res[0].Claimed); got != 10 {
		t.Fatalf("after the shutdown %d deliveries could be claimed, want all 10", got)
	}
}
