package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
	"github.com/heraldhq/herald/internal/store/storetest"
)

// databaseURL is the database the tests use, e.g.
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable. Each test works in a schema of its own.
func databaseURL(t *testing.T) string {
	t.Helper()
	return pgtest.URL(t)
}

// newSchema names a fresh schema (Open creates it) and drops it when the test ends.
func newSchema(t *testing.T) string {
	t.Helper()
	_, name := pgtest.Schema(t, "herald_test_")
	return name
}

// openSchema opens a store on the schema and closes it when the test ends (before the schema is
// dropped: cleanups run last first).
func openSchema(t *testing.T, schema string, opts postgres.Options) *postgres.Store {
	t.Helper()
	opts.Schema = schema
	s, err := postgres.Open(context.Background(), databaseURL(t), opts)
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

func open(t *testing.T) store.Store {
	t.Helper()
	return openSchema(t, newSchema(t), postgres.Options{Keys: testKeys(t)})
}

func TestConformance(t *testing.T) {
	databaseURL(t)
	storetest.Run(t, open)
}

func TestPublish_EndpointChangedWhileMatchedGetsNothing(t *testing.T) {
	t.Parallel()
	storetest.ChangedWhileMatched(t, open(t), postgres.PublishBetween)
}

func TestConformance_Limits(t *testing.T) {
	databaseURL(t)
	storetest.RunLimits(t, func(t *testing.T, limits store.Limits) store.Store {
		return openSchema(t, newSchema(t), postgres.Options{Keys: testKeys(t), Limits: limits})
	})
}

var ctx = context.Background()

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// setup makes tenant acme with endpoint ep (subscribed to everything) and publishes n events.
func setup(t *testing.T, s store.Store, n int) {
	t.Helper()
	now := time.Now()
	must(t, s.CreateTenant(ctx, &store.Tenant{ID: "acme", Name: "Acme", CreatedAt: now, UpdatedAt: now}))
	must(t, s.CreateEndpoint(ctx, &store.Endpoint{ID: "ep", TenantID: "acme", URL: "https://example.com/", EventTypes: []string{"*"},
		Timeout: 10 * time.Second, MaxConcurrency: 10, Enabled: true, CreatedAt: now, UpdatedAt: now}))
	var evs []*store.Event
	for i := range n {
		evs = append(evs, &store.Event{ID: fmt.Sprintf("e%03d", i), Type: "a.b", Timestamp: now, CreatedAt: now, Payload: []byte(`{}`)})
	}
	for chunk := range slices.Chunk(evs, 100) {
		_, err := s.Publish(ctx, "acme", chunk)
		must(t, err)
	}
}

// Processes that start together must both come up: the second waits for the first's migration
// and then finds nothing to do.
func TestOpen_ConcurrentOpensMigrateOnce(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	url := databaseURL(t)
	stores := make([]*postgres.Store, 4)
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(ctx, url, postgres.Options{Schema: schema}) })
	}
	wg.Wait()
	for i, s := range stores {
		if errs[i] != nil {
			t.Fatalf("open %d: %v", i, errs[i])
		}
		t.Cleanup(func() { s.Close() })
	}
	conn, err := pgx.Connect(ctx, url)
	must(t, err)
	defer conn.Close(ctx)
	var n, distinct int
	must(t, conn.QueryRow(ctx, "SELECT count(*), count(DISTINCT version) FROM "+pgx.Identifier{schema, "herald_migrations"}.Sanitize()).Scan(&n, &distinct))
	if n < 2 || n != distinct {
		t.Fatalf("%d migrations recorded for %d versions: each must be applied exactly once", n, distinct)
	}
	setup(t, stores[0], 1)
	if _, err := stores[3].GetEvent(ctx, "acme", "e000"); err != nil {
		t.Fatalf("another store of the schema does not see the event: %v", err)
	}
}

// Two processes claiming the same endpoint's deliveries at once never get the same delivery, and
// between them get every one.
func TestClaimDue_ConcurrentStoresAreDisjoint(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	a := openSchema(t, schema, postgres.Options{})
	b := openSchema(t, schema, postgres.Options{})
	const total = 200
	setup(t, a, total)

	var mu sync.Mutex
	claimedBy := map[int64]int{}
	var dups []int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range 8 {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Go(func() {
			<-start
			for {
				now := time.Now()
				res, err := s.ClaimDue(ctx, now, now.Add(time.Minute), []store.ClaimRequest{{EndpointID: "ep", Limit: 7}})
				if err != nil {
					t.Error(err)
					return
				}
				if len(res[0].Claimed) == 0 {
					return
				}
				mu.Lock()
				for _, c := range res[0].Claimed {
					if _, ok := claimedBy[c.DeliveryID]; ok {
						dups = append(dups, c.DeliveryID)
					}
					claimedBy[c.DeliveryID] = w
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if len(dups) > 0 {
		t.Fatalf("deliveries claimed twice: %v", dups)
	}
	if len(claimedBy) != total {
		t.Fatalf("claimed %d deliveries, want %d", len(claimedBy), total)
	}
	workers := map[int]bool{}
	for _, w := range claimedBy {
		workers[w] = true
	}
	t.Logf("%d deliveries claimed by %d claimers", len(claimedBy), len(workers))
}

// Processes that claim and record results side by side attempt every delivery exactly once: a
// claim never takes a delivery whose result has just been committed by another process.
func TestClaimAndRecord_ConcurrentStoresAttemptEachOnce(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	stores := []*postgres.Store{openSchema(t, schema, postgres.Options{}), openSchema(t, schema, postgres.Options{})}
	const total = 200
	setup(t, stores[0], total)
	var wg sync.WaitGroup
	for w := range 6 {
		s := stores[w%2]
		wg.Go(func() {
			for {
				now := time.Now()
				res, err := s.ClaimDue(ctx, now, now.Add(time.Minute), []store.ClaimRequest{{EndpointID: "ep", Limit: 5}})
				if err != nil {
					t.Error(err)
					return
				}
				if len(res[0].Claimed) == 0 {
					return
				}
				var results []store.Result
				for _, c := range res[0].Claimed {
					r := store.Result{DeliveryID: c.DeliveryID, EndpointID: "ep", State: store.StateSucceeded,
						Attempt: store.Attempt{TenantID: "acme", EventID: c.EventID, At: time.Now(), StatusCode: 200, Success: true}}
					if c.DeliveryID%2 == 1 {
						r.State, r.Attempt.StatusCode, r.Attempt.Success = store.StateDead, 400, false
					}
					results = append(results, r)
				}
				if err := s.RecordResults(ctx, results); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	st, err := stores[1].Stats(ctx, "acme", time.Time{})
	must(t, err)
	if st.Attempts != total || st.Pending != 0 || st.Succeeded+st.Dead != total {
		t.Fatalf("stats = %+v, want %d attempts and none pending", st, total)
	}
}

// Leases are rows with an expiry: a claim that is never resolved (its process died) lets the
// delivery go once it expires, and not before.
func TestClaimDue_ExpiredLeaseIsClaimedAgain(t *testing.T) {
	t.Parallel()
	s := open(t)
	setup(t, s, 1)
	now := time.Now()
	first, err := s.ClaimDue(ctx, now, now.Add(time.Minute), []store.ClaimRequest{{EndpointID: "ep", Limit: 10}})
	must(t, err)
	if len(first[0].Claimed) != 1 {
		t.Fatalf("claimed %d, want 1", len(first[0].Claimed))
	}
	before, err := s.ClaimDue(ctx, now.Add(59*time.Second), now.Add(2*time.Minute), []store.ClaimRequest{{EndpointID: "ep", Limit: 10}})
	must(t, err)
	if len(before[0].Claimed) != 0 {
		t.Fatal("a leased delivery was claimed before its lease expired")
	}
	after, err := s.ClaimDue(ctx, now.Add(time.Minute), now.Add(2*time.Minute), []store.ClaimRequest{{EndpointID: "ep", Limit: 10}})
	must(t, err)
	if len(after[0].Claimed) != 1 || after[0].Claimed[0].DeliveryID != first[0].Claimed[0].DeliveryID {
		t.Fatalf("after the lease expired claimed %+v", after[0].Claimed)
	}
}

// Retry and Replay leave a delivery whose attempt is in flight alone: it is queued already, and
// re-queueing it would let a second attempt start beside the first.
func TestRetryReplay_InFlightIsLeftAlone(t *testing.T) {
	t.Parallel()
	s := open(t)
	setup(t, s, 2)
	c := storeClaim(t, s, 1)
	id := c[0].DeliveryID
	d, err := s.Retry(ctx, "acme", id)
	must(t, err)
	if d.ID != id || d.State != store.StatePending {
		t.Fatalf("retry of an in-flight delivery = %+v", d)
	}
	n, err := s.Replay(ctx, store.DeliveryFilter{TenantID: "acme"})
	must(t, err)
	if n != 1 {
		t.Fatalf("replayed %d, want 1 (the other is in flight)", n)
	}
	if again := storeClaim(t, s, 10); len(again) != 1 || again[0].DeliveryID == id {
		t.Fatalf("after retry and replay claimed %+v; the in-flight delivery must stay leased", again)
	}
}

func storeClaim(t *testing.T, s store.Store, limit int) []store.Claimed {
	t.Helper()
	now := time.Now()
	res, err := s.ClaimDue(ctx, now, now.Add(time.Minute), []store.ClaimRequest{{EndpointID: "ep", Limit: limit}})
	must(t, err)
	return res[0].Claimed
}

// An endpoint's answer may be any bytes; PostgreSQL's text refuses NUL and invalid UTF-8, which
// must not fail the results written with it.
func TestRecordResults_BinaryResponse(t *testing.T) {
	t.Parallel()
	s := open(t)
	setup(t, s, 2)
	c := storeClaim(t, s, 2)
	// The second result names its tenant and event, as the dispatcher's do (the driver then
	// inserts the attempt without looking the delivery up).
	must(t, s.RecordResults(ctx, []store.Result{
		{DeliveryID: c[0].DeliveryID, EndpointID: "ep", State: store.StateDead,
			Attempt: store.Attempt{At: time.Now(), StatusCode: 400, Response: "bad\x00\xff body", Error: "status 400"}},
		{DeliveryID: c[1].DeliveryID, EndpointID: "ep", State: store.StateDead,
			Attempt: store.Attempt{TenantID: "acme", EventID: c[1].EventID, At: time.Now(), StatusCode: 400, Response: "\xfe", Error: "status 400"}},
	}))
	atts, _, err := s.ListAttempts(ctx, store.AttemptFilter{TenantID: "acme"})
	must(t, err)
	if len(atts) != 2 || atts[1].Response != "bad\uFFFD\uFFFD body" || atts[0].Response != "\uFFFD" ||
		atts[0].EventID != c[1].EventID || atts[0].DeliveryID != c[1].DeliveryID || atts[0].EndpointID != "ep" {
		t.Fatalf("attempts = %+v", atts)
	}
}

// Endpoint fields round-trip exactly, a nil retry schedule (the default) staying nil and an empty
// one staying empty.
func TestEndpoint_RoundTrip(t *testing.T) {
	t.Parallel()
	s := open(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	must(t, s.CreateTenant(ctx, &store.Tenant{ID: "acme", CreatedAt: now, UpdatedAt: now}))
	exp := now.Add(time.Hour)
	e := &store.Endpoint{ID: "ep", TenantID: "acme", URL: "https://example.com/", EventTypes: []string{"a.*", "b"},
		Secrets: []store.Secret{{Key: "new"}, {Key: "old", ExpiresAt: &exp}}, Timeout: 1500 * time.Millisecond, MaxConcurrency: 3,
		RateLimit: 2.5, RetrySchedule: []time.Duration{0, 5 * time.Second}, Headers: map[string]string{"A": "b"}, Enabled: true,
		FailingSince: &now, CreatedAt: now, UpdatedAt: now}
	must(t, s.CreateEndpoint(ctx, e))
	got, err := s.GetEndpoint(ctx, "acme", "ep")
	must(t, err)
	if fmt.Sprint(got.EventTypes) != fmt.Sprint(e.EventTypes) || len(got.Secrets) != 2 || !got.Secrets[1].ExpiresAt.Equal(exp) ||
		got.Timeout != e.Timeout || got.RateLimit != 2.5 || fmt.Sprint(got.RetrySchedule) != fmt.Sprint(e.RetrySchedule) ||
		got.Headers["A"] != "b" || !got.FailingSince.Equal(now) || !got.CreatedAt.Equal(now) || got.CreatedAt.Location() != time.UTC {
		t.Fatalf("endpoint round trip:\n got %+v\nwant %+v", got, e)
	}
	for _, schedule := range [][]time.Duration{nil, {}} {
		got.RetrySchedule = schedule
		must(t, s.UpdateEndpoint(ctx, got))
		again, err := s.GetEndpoint(ctx, "acme", "ep")
		must(t, err)
		if (again.RetrySchedule == nil) != (schedule == nil) || len(again.RetrySchedule) != 0 {
			t.Fatalf("retry schedule %#v came back as %#v", schedule, again.RetrySchedule)
		}
	}
	if err := s.CreateEndpoint(ctx, &store.Endpoint{ID: "x", TenantID: "ghost"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("endpoint of a missing tenant: %v", err)
	}
	if err := s.CreateEndpoint(ctx, e); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("endpoint with a taken id: %v", err)
	}
}

// An id repeated within one batch is stored once; the later copy is reported as a duplicate.
func TestPublish_RepeatedIDInBatch(t *testing.T) {
	t.Parallel()
	s := open(t)
	setup(t, s, 0)
	now := time.Now()
	res, err := s.Publish(ctx, "acme", []*store.Event{
		{ID: "x", Type: "a.b", Timestamp: now, CreatedAt: now, Payload: []byte(`{"n":1}`)},
		{ID: "x", Type: "a.b", Timestamp: now, CreatedAt: now, Payload: []byte(`{"n":2}`)},
	})
	must(t, err)
	if res[0].Duplicate || res[0].Deliveries != 1 || !res[1].Duplicate || res[1].Deliveries != 0 || string(res[1].Event.Payload) != `{"n":1}` {
		t.Fatalf("results = %+v, %+v", res[0], res[1])
	}
}

// Listen hears what another store's Publish reports.
func TestListen_HearsPublish(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	listener := openSchema(t, schema, postgres.Options{})
	publisher := openSchema(t, schema, postgres.Options{Notify: true})
	lctx, cancel := context.WithCancel(ctx)
	heard := make(chan []string, 10)
	done := make(chan error, 1)
	go func() { done <- listener.Listen(lctx, func(ids []string) { heard <- ids }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	// LISTEN takes effect once Listen has connected; publish until something is heard.
	setup(t, publisher, 0)
	now := time.Now()
	for i := 0; ; i++ {
		_, err := publisher.Publish(ctx, "acme", []*store.Event{{ID: fmt.Sprint(i), Type: "a.b", Timestamp: now, CreatedAt: now, Payload: []byte(`{}`)}})
		must(t, err)
		select {
		case ids := <-heard:
			if fmt.Sprint(ids) != "[ep]" {
				t.Fatalf("heard %v, want [ep]", ids)
			}
			return
		case <-time.After(100 * time.Millisecond):
			if i == 50 {
				t.Fatal("no notification heard")
			}
		}
	}
}

// An endpoint's lane is held by one node at a time, so that its concurrency and rate limits hold
// across the cluster; another node takes it over when the holder's hold ends or it closes.
func TestLanes_OneNodeAtATimePerEndpoint(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	a := openSchema(t, schema, postgres.Options{})
	b, err := postgres.Open(ctx, databaseURL(t), postgres.Options{Schema: schema})
	must(t, err)
	setup(t, a, 20)
	now := time.Now()
	hold := now.Add(time.Minute)
	ra, err := a.ClaimDue(ctx, now, hold, []store.ClaimRequest{{EndpointID: "ep", Limit: 5}})
	must(t, err)
	if len(ra[0].Claimed) != 5 {
		t.Fatalf("node a claimed %d, want 5", len(ra[0].Claimed))
	}
	rb, err := b.ClaimDue(ctx, now, now.Add(time.Minute), []store.ClaimRequest{{EndpointID: "ep", Limit: 5}})
	must(t, err)
	if len(rb[0].Claimed) != 0 {
		t.Fatalf("node b claimed %d deliveries of an endpoint whose lane node a holds", len(rb[0].Claimed))
	}
	if !rb[0].NextDue.Equal(hold.Truncate(time.Microsecond)) && !rb[0].NextDue.Equal(hold) {
		t.Fatalf("node b's next look should be when a's hold ends (%v), got %v", hold, rb[0].NextDue)
	}
	// Node a renews its hold with each claim; node b takes over once the hold has ended.
	later := hold.Add(time.Second)
	rb, err = b.ClaimDue(ctx, later, later.Add(time.Minute), []store.ClaimRequest{{EndpointID: "ep", Limit: 50}})
	must(t, err)
	if len(rb[0].Claimed) != 20 {
		t.Fatalf("after a's hold ended node b claimed %d, want all 20 (a's 5 leases ended too)", len(rb[0].Claimed))
	}
	// Closing gives the lanes up at once.
	must(t, b.Close())
	ra, err = a.ClaimDue(ctx, later, later.Add(time.Minute), []store.ClaimRequest{{EndpointID: "ep", Limit: 50}})
	must(t, err)
	if len(ra[0].Claimed) != 0 {
		t.Fatalf("node a claimed %d deliveries still leased by b", len(ra[0].Claimed))
	}
	ra, err = a.ClaimDue(ctx, later.Add(2*time.Minute), later.Add(3*time.Minute), []store.ClaimRequest{{EndpointID: "ep", Limit: 50}})
	must(t, err)
	if len(ra[0].Claimed) != 20 {
		t.Fatalf("after b closed and its leases ended node a claimed %d, want 20", len(ra[0].Claimed))
	}
}

// A renewal extends this node's leases and its lane, and never a lease another node has taken
// since: renewals and releases are fenced on the lease end this node wrote.
func TestRenewClaims_FencedAgainstTakeover(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	a := openSchema(t, schema, postgres.Options{})
	b := openSchema(t, schema, postgres.Options{})
	setup(t, a, 4)
	now := time.Now()
	claim := func(s *postgres.Store, at time.Time, limit int) []store.Claimed {
		t.Helper()
		res, err := s.ClaimDue(ctx, at, at.Add(10*time.Second), []store.ClaimRequest{{EndpointID: "ep", Limit: limit}})
		must(t, err)
		return res[0].Claimed
	}
	mine := claim(a, now, 2)
	if len(mine) != 2 {
		t.Fatalf("node a claimed %d, want 2", len(mine))
	}
	// Renewed, a's leases and lane outlast their first end: b gets nothing at now+20s.
	n, err := a.RenewClaims(ctx, now.Add(3*time.Second), now.Add(30*time.Second))
	must(t, err)
	if n != 2 {
		t.Fatalf("renewed %d, want 2", n)
	}
	if got := claim(b, now.Add(20*time.Second), 10); len(got) != 0 {
		t.Fatalf("node b claimed %d while node a's renewed lane and leases held", len(got))
	}
	// Once they end, b takes the lane and every delivery over.
	if got := claim(b, now.Add(31*time.Second), 10); len(got) != 4 {
		t.Fatalf("after a's renewed leases ended node b claimed %d, want 4", len(got))
	}
	// A late renewal by a (its clock behind, say) must not touch what b holds now.
	n, err = a.RenewClaims(ctx, now.Add(25*time.Second), now.Add(time.Hour))
	must(t, err)
	if n != 0 {
		t.Fatalf("node a renewed %d leases that node b had taken over", n)
	}
	// Nor may a release by a end them.
	must(t, a.ReleaseClaims(ctx, []int64{mine[0].DeliveryID, mine[1].DeliveryID}))
	conn, err := pgx.Connect(ctx, databaseURL(t))
	must(t, err)
	defer conn.Close(ctx)
	var leased int
	must(t, conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{schema, "deliveries"}.Sanitize()+" WHERE id = ANY($1) AND lease_until > $2",
		[]int64{mine[0].DeliveryID, mine[1].DeliveryID}, now.Add(35*time.Second)).Scan(&leased))
	if leased != 2 {
		t.Fatalf("after node a released its lost leases, %d of the 2 are still leased by node b", leased)
	}
	if got := claim(a, now.Add(42*time.Second), 10); len(got) != 4 {
		t.Fatalf("after b's leases ended node a claimed %d, want 4: its late renewal extended b's leases", len(got))
	}
}

// Lanes are shared fairly: nodes that claim the same ten endpoints take five each, and a node that
// took them all while alone gives half of them up once a second node is alive.
func TestLanes_SharedFairlyAndShedWhenANodeJoins(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	a := openSchema(t, schema, postgres.Options{})
	b := openSchema(t, schema, postgres.Options{})
	now := time.Now()
	must(t, a.CreateTenant(ctx, &store.Tenant{ID: "acme", Name: "Acme", CreatedAt: now, UpdatedAt: now}))
	var reqs []store.ClaimRequest
	for i := range 10 {
		id := fmt.Sprintf("ep%d", i)
		must(t, a.CreateEndpoint(ctx, &store.Endpoint{ID: id, TenantID: "acme", URL: "https://example.com/", EventTypes: []string{"*"},
			Timeout: 10 * time.Second, MaxConcurrency: 10, Enabled: true, CreatedAt: now, UpdatedAt: now}))
		reqs = append(reqs, store.ClaimRequest{EndpointID: id, Limit: 1})
	}
	for i := range 5 {
		_, err := a.Publish(ctx, "acme", []*store.Event{{ID: fmt.Sprintf("e%d", i), Type: "a.b", Timestamp: now, CreatedAt: now, Payload: []byte(`{}`)}})
		must(t, err)
	}
	conn, err := pgx.Connect(ctx, databaseURL(t))
	must(t, err)
	defer conn.Close(ctx)
	lanesOf := func() map[string]int {
		t.Helper()
		rows, err := conn.Query(ctx, "SELECT node_id, count(*) FROM "+pgx.Identifier{schema, "lanes"}.Sanitize()+" WHERE until > now() GROUP BY node_id")
		must(t, err)
		out := map[string]int{}
		var node string
		var n int
		_, err = pgx.ForEachRow(rows, []any{&node, &n}, func() error { out[node] = n; return nil })
		must(t, err)
		return out
	}
	claim := func(s *postgres.Store) (got map[string]bool, res []store.ClaimResult) {
		t.Helper()
		at := time.Now()
		res, err := s.ClaimDue(ctx, at, at.Add(time.Minute), reqs)
		must(t, err)
		got = map[string]bool{}
		var results []store.Result
		for _, r := range res {
			if len(r.Claimed) > 0 {
				got[r.EndpointID] = true
			}
			for _, c := range r.Claimed {
				// Give the delivery back, so that the next claim finds it due again.
				results = append(results, store.Result{DeliveryID: c.DeliveryID, EndpointID: r.EndpointID, State: store.StatePending,
					NextAttemptAt: at, Attempt: store.Attempt{At: at, StatusCode: 503, Error: "status 503"}})
			}
		}
		must(t, s.RecordResults(ctx, results))
		return got, res
	}
	heartbeat := func(s *postgres.Store) {
		t.Helper()
		at := time.Now()
		_, err := s.RenewClaims(ctx, at, at.Add(time.Minute))
		must(t, err)
	}

	// Alone, node a takes every lane.
	heartbeat(a)
	if got, _ := claim(a); len(got) != 10 {
		t.Fatalf("node a alone took %d lanes, want 10", len(got))
	}
	// Node b joins; at a's next heartbeat a sees it, and lets its lanes go (it holds no claims on
	// them: TestLanes_SurplusWithClaimsHeldIsHandedOver has a node that does); at its next claim
	// it takes only its share again.
	heartbeat(b)
	heartbeat(a)
	gotA, res := claim(a)
	if len(gotA) != 5 {
		t.Fatalf("with two nodes alive node a kept %d lanes, want 5", len(gotA))
	}
	for _, r := range res {
		if !gotA[r.EndpointID] && (r.NextDue.IsZero() || r.NextDue.After(time.Now().Add(2*time.Second))) {
			t.Fatalf("a lane let go of should be looked at again within a second or so, NextDue %v", r.NextDue)
		}
	}
	gotB, _ := claim(b)
	if len(gotB) != 5 {
		t.Fatalf("node b took %d lanes, want the 5 that a let go of", len(gotB))
	}
	for id := range gotB {
		if gotA[id] {
			t.Fatalf("both nodes claimed on %s", id)
		}
	}
	if l := lanesOf(); len(l) != 2 {
		t.Fatalf("lanes per node: %v", l)
	}

	// From a fresh start with both alive, two nodes asking for the same ten endpoints split them.
	must(t, a.Close())
	must(t, b.Close())
	c := openSchema(t, schema, postgres.Options{})
	d := openSchema(t, schema, postgres.Options{})
	heartbeat(c)
	heartbeat(d)
	gotC, _ := claim(c)
	gotD, _ := claim(d)
	if len(gotC) != 5 || len(gotD) != 5 {
		t.Fatalf("two nodes claiming ten free endpoints took %d and %d lanes, want 5 and 5", len(gotC), len(gotD))
	}
}

// A database at an older version is migrated forward at open and keeps its data.
func TestMigrate_FromAnOlderVersionKeepsData(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	// The schema as the first release left it, with a tenant in it.
	must(t, postgres.MigrateTo(ctx, databaseURL(t), schema, 1))
	conn, err := pgx.Connect(ctx, databaseURL(t))
	must(t, err)
	defer conn.Close(ctx)
	now := time.Now()
	_, err = conn.Exec(ctx, "INSERT INTO "+pgx.Identifier{schema, "tenants"}.Sanitize()+" (id, name, created_at, updated_at) VALUES ('acme', 'Acme', $1, $1)", now)
	must(t, err)
	_, err = conn.Exec(ctx, "INSERT INTO "+pgx.Identifier{schema, "api_keys"}.Sanitize()+" (id, role, tenant_id, hash, prefix, created_at) VALUES ('k', 'tenant', 'acme', 'old-key-hash', 'hk_tenant_x', $1)", now)
	must(t, err)
	var lanes bool
	must(t, conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", schema+".lanes").Scan(&lanes))
	if lanes {
		t.Fatal("version 1 has no lanes table")
	}
	upgraded := openSchema(t, schema, postgres.Options{})
	tn, err := upgraded.GetTenant(ctx, "acme")
	if err != nil || tn.Name != "Acme" {
		t.Fatalf("the tenant did not survive the migration: %+v, %v", tn, err)
	}
	must(t, conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", schema+".lanes").Scan(&lanes))
	if !lanes {
		t.Fatal("migration 2 was not applied")
	}
	// Migration 4: the tenant redacts nothing, and the audit log works.
	if tn.RedactFields != nil {
		t.Fatalf("a migrated tenant redacts %v", tn.RedactFields)
	}
	must(t, upgraded.RecordAudit(ctx, &store.AuditEntry{At: now, Action: "tenant.update", ResourceType: "tenant", ResourceID: "acme", TenantID: "acme"}))
	// Migration 10: the tenant has an instance, and its key is bound to it.
	if k, err := upgraded.APIKeyByHash(ctx, []byte("old-key-hash")); len(tn.UID) != 32 || err != nil || k.TenantUID != tn.UID {
		t.Fatalf("after migration 10: tenant instance %q, key %+v, %v", tn.UID, k, err)
	}
	// And it works: claims take lanes.
	setupEndpointOnly(t, upgraded)
}

// With NoMigrate a node refuses a database that lacks migrations, naming what to run, and opens
// one that has them all.
func TestOpen_NoMigrateRefusesAnOlderSchema(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	must(t, postgres.MigrateTo(ctx, databaseURL(t), schema, 1))
	_, err := postgres.Open(ctx, databaseURL(t), postgres.Options{Schema: schema, NoMigrate: true})
	if err == nil || !strings.Contains(err.Error(), "run herald migrate") {
		t.Fatalf("opening a version-1 database without migrating: %v", err)
	}
	openSchema(t, schema, postgres.Options{}) // migrates
	s, err := postgres.Open(ctx, databaseURL(t), postgres.Options{Schema: schema, NoMigrate: true})
	must(t, err)
	must(t, s.Close())
}

func setupEndpointOnly(t *testing.T, s store.Store) {
	t.Helper()
	now := time.Now()
	must(t, s.CreateEndpoint(ctx, &store.Endpoint{ID: "ep", TenantID: "acme", URL: "https://example.com/", EventTypes: []string{"*"},
		Timeout: 10 * time.Second, MaxConcurrency: 10, Enabled: true, CreatedAt: now, UpdatedAt: now}))
	_, err := s.Publish(ctx, "acme", []*store.Event{{ID: "e1", Type: "a.b", Timestamp: now, CreatedAt: now, Payload: []byte(`{}`)}})
	must(t, err)
	if c := storeClaim(t, s, 10); len(c) != 1 {
		t.Fatalf("claimed %d after the upgrade, want 1", len(c))
	}
}

func BenchmarkPublish(b *testing.B) {
	url, schema := pgtest.Schema(b, "herald_bench_")
	s, err := postgres.Open(context.Background(), url, postgres.Options{Schema: schema})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchmarkPublish(b, s)
}

func BenchmarkUsage(b *testing.B) {
	url, schema := pgtest.Schema(b, "herald_bench_")
	s, err := postgres.Open(context.Background(), url, postgres.Options{Schema: schema})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchmarkUsage(b, s)
}
