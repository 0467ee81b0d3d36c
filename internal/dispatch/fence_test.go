package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
)

// cutOff is a node's store that the test cuts off from the database: from then on its claims
// and renewals fail, and its result writes wait until the test lets them through (the database
// is back). Its other calls go through, so that what the node does meanwhile shows.
type cutOff struct {
	*postgres.Store
	cut     *atomic.Bool
	claimed *atomic.Int64 // deliveries claimed so far
	want    int64         // claimed deliveries at which the node is cut off
	writes  chan struct{} // closed when result writes may go through
}

// ClaimDue cuts the node off as soon as its claims hold every delivery (want), however the
// claims split the work and however slowly the test runs: from then on it has no renewal.
func (s cutOff) ClaimDue(ctx context.Context, now, leaseUntil time.Time, reqs []store.ClaimRequest) ([]store.ClaimResult, error) {
	if s.cut.Load() {
		return nil, errors.New("cut off")
	}
	res, err := s.Store.ClaimDue(ctx, now, leaseUntil, reqs)
	for _, r := range res {
		if s.claimed.Add(int64(len(r.Claimed))) >= s.want {
			s.cut.Store(true)
		}
	}
	return res, err
}

func (s cutOff) RenewClaims(ctx context.Context, now, until time.Time) (int, error) {
	if s.cut.Load() {
		return 0, errors.New("cut off")
	}
	return s.Store.RenewClaims(ctx, now, until)
}

func (s cutOff) Heartbeat(ctx context.Context, now, until, dead time.Time) (bool, error) {
	if s.cut.Load() {
		return false, errors.New("cut off")
	}
	return s.Store.Heartbeat(ctx, now, until, dead)
}

func (s cutOff) RecordResults(ctx context.Context, results []store.Result) error {
	if s.cut.Load() {
		select {
		case <-s.writes:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.Store.RecordResults(ctx, results)
}

// A node cut off from the database sends none of its queued claims once their leases may have
// ended, and its late results overwrite nothing: the node that took the deliveries over
// delivers them after the cut-off node's last request, and each delivery's record is its own.
func TestFence_ANodeCutOffSendsNothingTakenOver(t *testing.T) {
	t.Parallel()
	url, schema := pgtest.Schema(t, "herald_fence_")
	stA, stB := openNode(t, url, schema), openNode(t, url, schema)
	ctx := context.Background()

	type request struct {
		id, node string
		at       time.Time
	}
	var mu sync.Mutex
	var reqs []request
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		node := r.Header.Get("User-Agent")
		mu.Lock()
		reqs = append(reqs, request{id: r.Header.Get("webhook-id"), node: node, at: time.Now()})
		mu.Unlock()
		if node == "node-a" {
			// Node A's claims wait in its queue meanwhile: without the lease check, A would still
			// be sending them one by one well after B took them over.
			time.Sleep(800 * time.Millisecond)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	sent := func(node string) []request {
		mu.Lock()
		defer mu.Unlock()
		var out []request
		for _, r := range reqs {
			if r.node == node {
				out = append(out, r)
			}
		}
		return out
	}

	const n = 8
	seedEndpoint(t, stA, rc.URL+"/ep", 2*time.Second, 1, n)

	logA := &testLog{}
	run := func(st store.Store, name string, log io.Writer) {
		runNamedDispatcher(t, st, name, dispatch.Config{Rescan: 200 * time.Millisecond, LeaseMargin: time.Second,
			Logger: slog.New(slog.NewTextHandler(log, nil))})
	}
	writes, cut := make(chan struct{}), &atomic.Bool{}
	run(cutOff{Store: stA, cut: cut, claimed: &atomic.Int64{}, want: n, writes: writes}, "node-a", logA)
	t.Cleanup(func() { // before A stops (cleanups run last first): its result writer waits on it
		select {
		case <-writes:
		default:
			close(writes)
		}
	})
	waitUntil(t, "node A is cut off holding every delivery", cut.Load)
	// B can take the deliveries only once A's leases (the timeout + 1 s, never renewed) ended.
	run(stB, "node-b", io.Discard)
	waitUntil(t, "node B delivers every event", func() bool {
		ds, _, err := stB.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "acme", Page: store.Page{Limit: 100}})
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, d := range ds {
			if d.State == store.StateSucceeded {
				done++
			}
		}
		return done == n
	})
	close(writes) // the database is back: A's results of the attempts it made arrive late
	waitUntil(t, "node A's late results are refused", func() bool { return strings.Contains(logA.String(), "attempt not recorded") })

	// A sends one request every 800 ms while it sends at all: wait until it has been quiet for
	// three of them, so that whatever it would still send is seen.
	for quiet, last := time.Now(), len(sent("node-a")); time.Since(quiet) < 2400*time.Millisecond; time.Sleep(50 * time.Millisecond) {
		if cur := len(sent("node-a")); cur != last {
			quiet, last = time.Now(), cur
		}
	}
	a, b := sent("node-a"), sent("node-b")
	if len(a) < n && !strings.Contains(logA.String(), "claim dropped unsent") {
		// A claimed fewer than it was given (a claim may take part of the work): nothing to drop.
		t.Logf("node A sent %d and dropped nothing: it held no other claim", len(a))
	}
	if len(a) >= n {
		t.Errorf("node A sent %d requests, want fewer than the %d events: its queued claims' leases ran out", len(a), n)
	}
	for _, r := range a {
		if !r.at.Before(b[0].at) {
			t.Errorf("node A sent %s at %v, after node B's first request at %v: after the takeover", r.id, r.at, b[0].at)
		}
	}
	seen := map[string]int{}
	for _, r := range b {
		seen[r.id]++
	}
	for i := range n {
		if id := fmt.Sprintf("evt_%d", i); seen[id] != 1 {
			t.Errorf("node B sent %s %d times, want once", id, seen[id])
		}
	}
	ds, _, err := stB.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "acme", Page: store.Page{Limit: 100}})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		as, _, err := stB.ListAttempts(ctx, store.AttemptFilter{TenantID: "acme", DeliveryID: d.ID, Page: store.Page{Limit: 10}})
		if err != nil {
			t.Fatal(err)
		}
		if d.State != store.StateSucceeded || d.Attempts != 1 || len(as) != 1 {
			t.Errorf("delivery of %s: state %s, %d attempts, %d attempt rows; want node B's one successful attempt",
				d.EventID, d.State, d.Attempts, len(as))
		}
	}
}

// seedEndpoint creates tenant acme with endpoint "ep" at url (the timeout and max_concurrency
// given, subscribed to everything) and publishes n events evt_0 … evt_<n-1> to it.
func seedEndpoint(t *testing.T, st store.Store, url string, timeout time.Duration, concurrency, n int) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	if err := st.CreateTenant(ctx, &store.Tenant{ID: "acme", Name: "acme", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateEndpoint(ctx, &store.Endpoint{
		ID: "ep", TenantID: "acme", URL: url, EventTypes: []string{"*"},
		Secrets: []store.Secret{{Key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}},
		Timeout: timeout, MaxConcurrency: concurrency, Enabled: true, CreatedAt: now, UpdatedAt: now,
	}); err != nil {
		t.Fatal(err)
	}
	var evs []*store.Event
	for i := range n {
		id := fmt.Sprintf("evt_%d", i)
		evs = append(evs, &store.Event{ID: id, Type: "a.happened", Timestamp: now, CreatedAt: now,
			Payload: []byte(`{"id":"` + id + `","type":"a.happened","data":{}}`)})
	}
	if _, err := st.Publish(ctx, "acme", evs); err != nil {
		t.Fatal(err)
	}
}

// runNamedDispatcher runs a dispatcher on st, sending as User-Agent name, until the test ends.
func runNamedDispatcher(t *testing.T, st store.Store, name string, cfg dispatch.Config) {
	t.Helper()
	client := httpsend.New(httpsend.Config{AllowHTTP: true, AllowLoopback: true, UserAgent: name})
	d := dispatch.New(st, client, cfg)
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- d.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("dispatcher %s: %v", name, err)
		}
	})
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
