package dispatch_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
)

// laneTimings are long on purpose: a delivery that waited for the rescan, or for a lane's end,
// would arrive only after them, so arriving well before them says it was not woken by either.
const (
	laneRescan = time.Minute
	laneMargin = time.Minute
	laneBound  = 10 * time.Second // well before laneRescan and laneMargin
)

// pathReceiver answers 204 and remembers when each path first got a request.
type pathReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	first map[string]time.Time
}

func newPathReceiver(t *testing.T) *pathReceiver {
	t.Helper()
	rc := &pathReceiver{first: map[string]time.Time{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		if _, ok := rc.first[r.URL.Path]; !ok {
			rc.first[r.URL.Path] = time.Now()
		}
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// waitFor waits up to bound for a request on path and reports whether one came.
func (rc *pathReceiver) waitFor(path string, bound time.Duration) bool {
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) {
		rc.mu.Lock()
		_, ok := rc.first[path]
		rc.mu.Unlock()
		if ok {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// openPostgres opens a PostgreSQL store in a schema of its own, closed and dropped when the test
// ends.
func openPostgres(t *testing.T) *postgres.Store {
	t.Helper()
	url, schema := pgtest.Schema(t, "herald_dispatch_")
	st, err := postgres.Open(context.Background(), url, postgres.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	return st
}

// laneFixture makes tenants and endpoints (each with its own path on rc) and publishes events.
type laneFixture struct {
	t  *testing.T
	st store.Store
	rc *pathReceiver
}

func (f laneFixture) tenant(id string) {
	f.t.Helper()
	now := time.Now().UTC()
	if err := f.st.CreateTenant(context.Background(), &store.Tenant{ID: id, Name: id, CreatedAt: now, UpdatedAt: now}); err != nil {
		f.t.Fatal(err)
	}
}

func (f laneFixture) endpoint(tenant, id string, opts store.EndpointOptions) {
	f.t.Helper()
	now := time.Now().UTC()
	if err := f.st.CreateEndpoint(context.Background(), &store.Endpoint{
		ID: id, TenantID: tenant, URL: f.rc.URL + "/" + id, EventTypes: []string{"*"},
		Secrets: []store.Secret{{Key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, Options: opts,
		Timeout: 5 * time.Second, MaxConcurrency: 4, Enabled: true, CreatedAt: now, UpdatedAt: now,
	}); err != nil {
		f.t.Fatal(err)
	}
}

// publish publishes one event to tenant and returns the endpoints it went to.
func (f laneFixture) publish(tenant, id string) []string {
	f.t.Helper()
	now := time.Now().UTC()
	res, err := f.st.Publish(context.Background(), tenant, []*store.Event{{ID: id, Type: "a.happened", Timestamp: now, CreatedAt: now,
		Payload: []byte(`{"id":"` + id + `","type":"a.happened","data":{}}`)}})
	if err != nil {
		f.t.Fatal(err)
	}
	return res[0].EndpointIDs
}

// runDispatcher runs a dispatcher on st with the lane timings above until the test ends.
func runDispatcher(t *testing.T, st store.Store, log *slog.Logger) *dispatch.Dispatcher {
	t.Helper()
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	client := httpsend.New(httpsend.Config{AllowHTTP: true, AllowLoopback: true})
	d := dispatch.New(st, client, dispatch.Config{Rescan: laneRescan, LeaseMargin: laneMargin, Logger: log})
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- d.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("dispatcher: %v", err)
		}
	})
	return d
}

// Issue 14: after a fan-out, the lanes of the endpoints served stayed in the lanes table (every
// claim extended them, even one that took nothing) while the node's book of lanes forgot them at
// the end it had recorded; the fair-share check counted the table, so a new tenant's endpoint
// could not take its lane, and waited for the 30 s rescan and the lanes' end. Here the fan-out's
// lanes are taken with a short end and then extended by claims that find nothing (what a lane
// woken after its last delivery does), and the short end passes before the new endpoint's first
// event: it must still be delivered at once, not at the rescan or when the lanes end.
func TestLanes_NewEndpointAfterAFanOutIsNotStalled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openPostgres(t)
	f := laneFixture{t: t, st: st, rc: newPathReceiver(t)}
	f.tenant("acme")
	var reqs []store.ClaimRequest
	for i := range 10 {
		id := fmt.Sprintf("ep_fan%d", i)
		f.endpoint("acme", id, store.EndpointOptions{})
		reqs = append(reqs, store.ClaimRequest{EndpointID: id, Limit: 4})
	}
	f.publish("acme", "evt_fan")
	if _, err := st.RenewClaims(ctx, time.Now(), time.Now().Add(laneMargin)); err != nil { // the heartbeat: one node alive
		t.Fatal(err)
	}
	// The fan-out is claimed with a lease ending in a second, and its results are written.
	now := time.Now()
	res, err := st.ClaimDue(ctx, now, now.Add(time.Second), reqs)
	if err != nil {
		t.Fatal(err)
	}
	var results []store.Result
	for _, r := range res {
		if len(r.Claimed) != 1 {
			t.Fatalf("endpoint %s claimed %d of its one delivery", r.EndpointID, len(r.Claimed))
		}
		c := r.Claimed[0]
		results = append(results, store.Result{DeliveryID: c.DeliveryID, EndpointID: r.EndpointID, State: store.StateSucceeded,
			Attempt: store.Attempt{TenantID: "acme", EndpointID: r.EndpointID, EventID: c.EventID, DeliveryID: c.DeliveryID, At: now, StatusCode: 204, Success: true}})
	}
	if err := st.RecordResults(ctx, results); err != nil {
		t.Fatal(err)
	}
	// The lanes are woken once more and find nothing, with the dispatcher's usual lease.
	now = time.Now()
	if _, err := st.ClaimDue(ctx, now, now.Add(laneMargin), reqs); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // past the end of the fan-out's claims

	var logs strings.Builder
	var logMu sync.Mutex
	d := runDispatcher(t, st, slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	f.tenant("globex")
	f.endpoint("globex", "ep_new", store.EndpointOptions{})
	d.Notify(f.publish("globex", "evt_new")...)
	if !f.rc.waitFor("/ep_new", laneBound) {
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("the new tenant's endpoint got nothing within %v (rescan %v, lease margin %v): it waited for a lane\n%s", laneBound, laneRescan, laneMargin, logs.String())
	}
}

// lockedWriter serialises writes to w, for a log read while the dispatcher writes.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
