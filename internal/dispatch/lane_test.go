package dispatch_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/metrics"
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
	return openNode(t, url, schema)
}

// openNode opens another store (another node) on the schema, closed when the test ends.
func openNode(t *testing.T, url, schema string) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), url, postgres.Options{Schema: schema, Notify: true})
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

// runDispatcher runs a dispatcher on st with the lane timings above, logging to log, until the
// test ends. It wakes lanes as node.go does, from the store's notifications.
func runDispatcher(t *testing.T, st *postgres.Store, log *slog.Logger, m *metrics.Metrics) *dispatch.Dispatcher {
	t.Helper()
	client := httpsend.New(httpsend.Config{AllowHTTP: true, AllowLoopback: true})
	d := dispatch.New(st, client, dispatch.Config{Rescan: laneRescan, LeaseMargin: laneMargin, Logger: log, Metrics: m})
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 2)
	go func() { ran <- d.Run(runCtx) }()
	go func() {
		ran <- st.Listen(runCtx, func(ids []string) {
			if ids == nil {
				d.Rescan()
				return
			}
			d.Notify(ids...)
		})
	}()
	t.Cleanup(func() {
		stop()
		for range 2 {
			if err := <-ran; err != nil {
				t.Errorf("dispatcher: %v", err)
			}
		}
	})
	return d
}

// testLog is a log the dispatcher writes while the test reads it.
type testLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *testLog) logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: level}))
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

	var logs testLog
	d := runDispatcher(t, st, logs.logger(slog.LevelDebug), nil)
	f.tenant("globex")
	f.endpoint("globex", "ep_new", store.EndpointOptions{})
	d.Notify(f.publish("globex", "evt_new")...)
	if !f.rc.waitFor("/ep_new", laneBound) {
		t.Fatalf("the new tenant's endpoint got nothing within %v (rescan %v, lease margin %v): it waited for a lane\n%s", laneBound, laneRescan, laneMargin, logs.String())
	}
}

// An endpoint whose lane another node holds is not a silent stall: the wait is logged with its
// reason and counted in herald_lane_waiting_endpoints; and when the other node lets the lane go
// (here it stops), this node is woken and delivers at once, not when the lane would have ended.
func TestLanes_AWaitIsLoggedAndEndsWhenTheLaneIsLetGo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, schema := pgtest.Schema(t, "herald_dispatch_")
	a := openNode(t, url, schema)
	b := openNode(t, url, schema)
	f := laneFixture{t: t, st: a, rc: newPathReceiver(t)}
	f.tenant("acme")
	f.endpoint("acme", "ep_shared", store.EndpointOptions{})
	f.tenant("probe")
	f.endpoint("probe", "ep_probe", store.EndpointOptions{})
	f.publish("acme", "evt_1")
	f.publish("acme", "evt_2")
	// Node b takes the lane with one of the two deliveries, which it will never finish.
	now := time.Now()
	res, err := b.ClaimDue(ctx, now, now.Add(laneMargin), []store.ClaimRequest{{EndpointID: "ep_shared", Limit: 1}})
	if err != nil || len(res[0].Claimed) != 1 {
		t.Fatalf("node b claimed %v, %v; want one delivery", res, err)
	}

	var logs testLog
	m := metrics.New(metrics.Options{})
	runDispatcher(t, a, logs.logger(slog.LevelInfo), m) // its first scan finds ep_shared's work
	// Publishes it is not told of reach it through LISTEN once that is connected: then node a
	// hears notifications.
	for i := 0; !f.rc.waitFor("/ep_probe", 200*time.Millisecond); i++ {
		if i == 50 {
			t.Fatal("node a's dispatcher heard no notification")
		}
		f.publish("probe", fmt.Sprintf("evt_probe%d", i))
	}
	waiting := func() float64 {
		mfs, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "herald_lane_waiting_endpoints" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no herald_lane_waiting_endpoints")
		return 0
	}
	deadline := time.Now().Add(laneBound)
	for !strings.Contains(logs.String(), "endpoint waiting for its lane") || waiting() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no logged and counted wait for the lane b holds (gauge %v):\n%s", waiting(), logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if line := logs.String(); !strings.Contains(line, "endpoint=ep_shared") || !strings.Contains(line, `reason="another node holds the endpoint's lane"`) {
		t.Fatalf("the wait's log names neither the endpoint nor the reason:\n%s", line)
	}
	if f.rc.waitFor("/ep_shared", 0) {
		t.Fatal("node a delivered to an endpoint whose lane node b holds")
	}
	// Node b stops: its lane goes, and node a takes it at once (b's lane would end in a minute).
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if !f.rc.waitFor("/ep_shared", laneBound) {
		t.Fatalf("nothing delivered within %v of node b letting the lane go (its end: %v):\n%s", laneBound, laneMargin, logs.String())
	}
	deadline = time.Now().Add(laneBound)
	for !strings.Contains(logs.String(), "endpoint no longer waiting for its lane") || waiting() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the wait's end was neither logged nor counted (gauge %v):\n%s", waiting(), logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
