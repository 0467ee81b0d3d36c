package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
)

// laneSetup makes tenant acme with the endpoints ids (subscribed to everything) on s, publishes
// events events to all of them, and returns a reader of the lanes table and the claim requests
// for those endpoints, Limit 1 each.
func laneSetup(t *testing.T, s *postgres.Store, schema string, events int, ids ...string) (lanesOf func() map[string]string, reqs []store.ClaimRequest) {
	t.Helper()
	now := time.Now()
	must(t, s.CreateTenant(ctx, &store.Tenant{ID: "acme", Name: "Acme", CreatedAt: now, UpdatedAt: now}))
	for _, id := range ids {
		must(t, s.CreateEndpoint(ctx, &store.Endpoint{ID: id, TenantID: "acme", URL: "https://example.com/", EventTypes: []string{"*"},
			Timeout: 10 * time.Second, MaxConcurrency: 10, Enabled: true, CreatedAt: now, UpdatedAt: now}))
		reqs = append(reqs, store.ClaimRequest{EndpointID: id, Limit: 1})
	}
	for i := range events {
		_, err := s.Publish(ctx, "acme", []*store.Event{{ID: fmt.Sprintf("e%d", i), Type: "a.b", Timestamp: now, CreatedAt: now, Payload: []byte(`{}`)}})
		must(t, err)
	}
	conn, err := pgx.Connect(ctx, databaseURL(t))
	must(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	lanesOf = func() map[string]string {
		t.Helper()
		rows, err := conn.Query(ctx, "SELECT endpoint_id, node_id FROM "+pgx.Identifier{schema, "lanes"}.Sanitize()+" WHERE until > now()")
		must(t, err)
		out := map[string]string{}
		var ep, node string
		_, err = pgx.ForEachRow(rows, []any{&ep, &node}, func() error { out[ep] = node; return nil })
		must(t, err)
		return out
	}
	return lanesOf, reqs
}

// heartbeatAt renews s's leases and its row in nodes, as the dispatcher does.
func heartbeatAt(t *testing.T, s *postgres.Store) {
	t.Helper()
	at := time.Now()
	_, err := s.RenewClaims(ctx, at, at.Add(time.Minute))
	must(t, err)
}

// succeed records a success for each delivery claimed, so that the node holds no claim on them.
func succeed(t *testing.T, s *postgres.Store, res []store.ClaimResult) {
	t.Helper()
	var results []store.Result
	for _, r := range res {
		for _, c := range r.Claimed {
			results = append(results, store.Result{DeliveryID: c.DeliveryID, EndpointID: r.EndpointID, State: store.StateSucceeded,
				Attempt: store.Attempt{At: time.Now(), StatusCode: 204, Success: true}})
		}
	}
	must(t, s.RecordResults(ctx, results))
}

func claimedOf(res []store.ClaimResult) []string {
	var out []string
	for _, r := range res {
		if len(r.Claimed) > 0 {
			out = append(out, r.EndpointID)
		}
	}
	return out
}

// A node holds a lane only while it works the endpoint: one it neither holds claims on nor asks
// for is let go of at its next claim, and one it holds no claims on at its next heartbeat. So the
// lanes the fair-share check counts are those really worked (issue 14: lanes of a finished
// fan-out stayed in the table, extended by claims that took nothing).
func TestLanes_OnlyLanesWorkedAreHeld(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	a := openSchema(t, schema, postgres.Options{})
	lanesOf, reqs := laneSetup(t, a, schema, 1, "ep0", "ep1", "ep2")
	heartbeatAt(t, a)
	now := time.Now()
	res, err := a.ClaimDue(ctx, now, now.Add(time.Minute), reqs)
	must(t, err)
	if got := claimedOf(res); len(got) != 3 {
		t.Fatalf("claimed on %v, want all three endpoints", got)
	}
	if l := lanesOf(); len(l) != 3 {
		t.Fatalf("lanes %v, want three", l)
	}
	// ep1's and ep2's results are written; ep0's delivery is still held.
	succeed(t, a, res[1:])
	now = time.Now()
	_, err = a.ClaimDue(ctx, now, now.Add(time.Minute), reqs[:1])
	must(t, err)
	if l := lanesOf(); len(l) != 1 || l["ep0"] != a.NodeID() {
		t.Fatalf("after a claim for ep0 alone, lanes %v; want only ep0's, which the node holds a claim on", l)
	}
	succeed(t, a, res[:1])
	heartbeatAt(t, a)
	if l := lanesOf(); len(l) != 0 {
		t.Fatalf("after the heartbeat, with no claim held, lanes %v; want none", l)
	}
}

// A lane of this node that its book does not know (a claim whose answer was lost after it
// committed, say) is counted against the node's share, so a new endpoint's lane waits for it:
// the claim says so and asks to look again within a second, and the next heartbeat reads the
// table back and lets the unknown lane go, after which the new endpoint's lane is taken.
func TestLanes_ALaneUnknownToTheBookIsLetGoAtTheHeartbeat(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	a := openSchema(t, schema, postgres.Options{})
	lanesOf, reqs := laneSetup(t, a, schema, 1, "ep_new")
	heartbeatAt(t, a)
	conn, err := pgx.Connect(ctx, databaseURL(t))
	must(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "INSERT INTO "+pgx.Identifier{schema, "lanes"}.Sanitize()+" (endpoint_id, node_id, until) VALUES ('ep_gone', $1, $2)",
		a.NodeID(), time.Now().Add(time.Hour))
	must(t, err)
	now := time.Now()
	res, err := a.ClaimDue(ctx, now, now.Add(time.Minute), reqs)
	must(t, err)
	if len(res[0].Claimed) != 0 || res[0].LaneWait == "" || res[0].NextDue.IsZero() || res[0].NextDue.After(now.Add(2*time.Second)) {
		t.Fatalf("with a lane unknown to the book at its share: claimed %d, lane wait %q, next due in %v; want nothing, a reason and a look again within a second or so",
			len(res[0].Claimed), res[0].LaneWait, res[0].NextDue.Sub(now))
	}
	heartbeatAt(t, a)
	if l := lanesOf(); len(l) != 0 {
		t.Fatalf("after the heartbeat lanes %v; want none", l)
	}
	now = time.Now()
	res, err = a.ClaimDue(ctx, now, now.Add(time.Minute), reqs)
	must(t, err)
	if len(res[0].Claimed) != 1 || res[0].LaneWait != "" {
		t.Fatalf("after the heartbeat the new endpoint claimed %d (lane wait %q), want 1", len(res[0].Claimed), res[0].LaneWait)
	}
}

// An endpoint with due work whose lane a node cannot take is told why, and when to look again:
// when the other node's lane ends, or, when this node is at its share, within a second (a lane
// may free at any claim), never only at the rescan.
func TestLanes_AWaitForALaneIsExplained(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	a := openSchema(t, schema, postgres.Options{})
	b := openSchema(t, schema, postgres.Options{})
	_, reqs := laneSetup(t, a, schema, 2, "ep0", "ep1", "ep2", "ep3")
	heartbeatAt(t, a)
	heartbeatAt(t, b)
	heartbeatAt(t, a)
	now := time.Now()
	hold := now.Add(time.Minute)
	resA, err := a.ClaimDue(ctx, now, hold, reqs)
	must(t, err)
	if got := claimedOf(resA); !slices.Equal(got, []string{"ep0", "ep1"}) {
		t.Fatalf("node a, one of two alive, claimed on %v; want its share, ep0 and ep1", got)
	}
	for _, r := range resA[2:] {
		if r.LaneWait == "" || r.NextDue.IsZero() || r.NextDue.After(now.Add(2*time.Second)) {
			t.Fatalf("%s over node a's share: lane wait %q, next due in %v; want a reason and a look again within a second or so", r.EndpointID, r.LaneWait, r.NextDue.Sub(now))
		}
	}
	resB, err := b.ClaimDue(ctx, now, now.Add(time.Minute), reqs)
	must(t, err)
	if got := claimedOf(resB); !slices.Equal(got, []string{"ep2", "ep3"}) {
		t.Fatalf("node b claimed on %v, want ep2 and ep3", got)
	}
	for _, r := range resB[:2] {
		if r.LaneWait == "" || r.LaneWait == resA[2].LaneWait || !r.NextDue.Equal(hold.Truncate(time.Microsecond)) {
			t.Fatalf("%s held by node a: lane wait %q, next due %v; want another reason than %q, and a's lane's end %v",
				r.EndpointID, r.LaneWait, r.NextDue, resA[2].LaneWait, hold)
		}
	}
}

// A node that lets go of a lane whose endpoint still has due work wakes the nodes for it, as a
// publish does, so that a node waiting for the lane takes it at once rather than when it would
// have ended.
func TestLanes_ALaneLetGoWithWorkWakesTheNodes(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	a := openSchema(t, schema, postgres.Options{Notify: true})
	b := openSchema(t, schema, postgres.Options{})
	lctx, cancel := context.WithCancel(ctx)
	heard := make(chan []string, 100)
	done := make(chan error, 1)
	go func() { done <- b.Listen(lctx, func(ids []string) { heard <- ids }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	_, reqs := laneSetup(t, a, schema, 0, "ep_a", "ep_b")
	// LISTEN takes effect once Listen has connected: publish (to both endpoints) until heard.
	now := time.Now()
	for i := 0; ; i++ {
		_, err := a.Publish(ctx, "acme", []*store.Event{{ID: fmt.Sprint(i), Type: "a.b", Timestamp: now, CreatedAt: now, Payload: []byte(`{}`)}})
		must(t, err)
		select {
		case <-heard:
		case <-time.After(100 * time.Millisecond):
			if i == 50 {
				t.Fatal("no notification heard")
			}
			continue
		}
		break
	}
	_, err := a.Publish(ctx, "acme", []*store.Event{{ID: "more", Type: "a.b", Timestamp: now, CreatedAt: now, Payload: []byte(`{}`)}})
	must(t, err)
	heartbeatAt(t, a)
	now = time.Now()
	res, err := a.ClaimDue(ctx, now, now.Add(time.Minute), reqs[:1])
	must(t, err)
	if len(res[0].Claimed) != 1 {
		t.Fatalf("claimed %d on ep_a, want 1", len(res[0].Claimed))
	}
	succeed(t, a, res)
	// ep_a has more due work, but node a now claims on ep_b alone: it lets ep_a's lane go.
	now = time.Now()
	_, err = a.ClaimDue(ctx, now, now.Add(time.Minute), reqs[1:])
	must(t, err)
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ids := <-heard:
			if slices.Equal(ids, []string{"ep_a"}) { // publishes name both endpoints
				return
			}
		case <-timeout:
			t.Fatal("no notification for ep_a, whose lane was let go of with work due")
		}
	}
}

// A claim is not cut short by its context (a shutdown while it runs): cancelled after its commit,
// it would leave leases and a lane the handle never learnt of, held by no one until they end. It
// completes, and the handle knows what it took: a renewal extends the lease.
func TestClaimDue_NotCutShortByItsContext(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	a := openSchema(t, schema, postgres.Options{})
	lanesOf, reqs := laneSetup(t, a, schema, 1, "ep")
	heartbeatAt(t, a)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	now := time.Now()
	res, err := a.ClaimDue(cancelled, now, now.Add(time.Minute), reqs)
	must(t, err)
	if len(res[0].Claimed) != 1 {
		t.Fatalf("claimed %d, want 1", len(res[0].Claimed))
	}
	n, err := a.RenewClaims(ctx, time.Now(), time.Now().Add(time.Minute))
	must(t, err)
	if n != 1 {
		t.Fatalf("renewed %d leases, want the 1 claimed", n)
	}
	if l := lanesOf(); l["ep"] != a.NodeID() {
		t.Fatalf("lanes %v, want ep's held by the node that claimed", l)
	}
}

// A node that holds claims on more lanes than its share once another node is alive hands the
// surplus over: it stops claiming on those lanes at once (saying so, and looking again within
// a second), lets them go once its claims on them are done, and the other node takes them.
func TestLanes_SurplusWithClaimsHeldIsHandedOver(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	a := openSchema(t, schema, postgres.Options{})
	b := openSchema(t, schema, postgres.Options{})
	ids := make([]string, 10)
	for i := range ids {
		ids[i] = fmt.Sprintf("ep%d", i)
	}
	lanesOf, reqs := laneSetup(t, a, schema, 3, ids...)
	heartbeatAt(t, a)
	now := time.Now()
	first, err := a.ClaimDue(ctx, now, now.Add(time.Minute), reqs)
	must(t, err)
	if got := claimedOf(first); len(got) != 10 {
		t.Fatalf("node a alone claimed on %v, want all ten", got)
	}
	heartbeatAt(t, b)
	heartbeatAt(t, a) // a sees b; its lanes, all with claims held, stay
	if l := lanesOf(); len(l) != 10 {
		t.Fatalf("lanes %v after the heartbeats, want a's ten", l)
	}
	now = time.Now()
	res, err := a.ClaimDue(ctx, now, now.Add(time.Minute), reqs)
	must(t, err)
	if got := claimedOf(res); !slices.Equal(got, ids[5:]) {
		t.Fatalf("node a, over its share, claimed on %v; want %v, the five it keeps", got, ids[5:])
	}
	for _, r := range res[:5] {
		if r.LaneWait == "" || r.NextDue.IsZero() || r.NextDue.After(now.Add(2*time.Second)) {
			t.Fatalf("%s handed over: lane wait %q, next due in %v; want a reason and a look again within a second or so", r.EndpointID, r.LaneWait, r.NextDue.Sub(now))
		}
	}
	// Its claims on the surplus done, node a lets those lanes go at its next claim.
	succeed(t, a, first[:5])
	now = time.Now()
	_, err = a.ClaimDue(ctx, now, now.Add(time.Minute), reqs)
	must(t, err)
	resB, err := b.ClaimDue(ctx, now, now.Add(time.Minute), reqs)
	must(t, err)
	if got := claimedOf(resB); !slices.Equal(got, ids[:5]) {
		t.Fatalf("node b claimed on %v, want %v, the five a handed over", got, ids[:5])
	}
	perNode := map[string]int{}
	for _, node := range lanesOf() {
		perNode[node]++
	}
	if perNode[a.NodeID()] != 5 || perNode[b.NodeID()] != 5 {
		t.Fatalf("lanes per node %v, want five each", perNode)
	}
}

// An endpoint deleted while a node holds its lane: the dispatcher gives its claims back, and the
// lane goes at the node's next heartbeat instead of counting against its share until it ends.
func TestLanes_ADeletedEndpointsLaneGoes(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	a := openSchema(t, schema, postgres.Options{})
	lanesOf, reqs := laneSetup(t, a, schema, 1, "ep_gone")
	heartbeatAt(t, a)
	now := time.Now()
	res, err := a.ClaimDue(ctx, now, now.Add(time.Minute), reqs)
	must(t, err)
	if len(res[0].Claimed) != 1 {
		t.Fatalf("claimed %d, want 1", len(res[0].Claimed))
	}
	must(t, a.DeleteEndpoint(ctx, "acme", "ep_gone"))
	must(t, a.ReleaseClaims(ctx, []int64{res[0].Claimed[0].DeliveryID}))
	heartbeatAt(t, a)
	if l := lanesOf(); len(l) != 0 {
		t.Fatalf("lanes %v after the deleted endpoint's claims were given back, want none", l)
	}
}

// A claim may take an endpoint's lane and lease nothing: a batching endpoint whose batch is not
// full yet, an ordered endpoint whose first delivery waits for its retry while later ones are
// due. The book must know that lane (or the node must let it go), or on a single node the lane
// counts against the node's share and the next new endpoint is refused its lane.
func TestLanes_ALaneTakenWithoutLeasesDoesNotBlockTheNext(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		opts store.EndpointOptions
	}{
		{"batching endpoint waiting to fill its batch", store.EndpointOptions{Batch: &store.Batching{MaxEvents: 10, MaxWait: time.Hour}}},
		{"ordered endpoint whose first delivery waits for its retry", store.EndpointOptions{Ordered: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			schema := newSchema(t)
			a := openSchema(t, schema, postgres.Options{})
			now := time.Now()
			must(t, a.CreateTenant(ctx, &store.Tenant{ID: "acme", Name: "Acme", CreatedAt: now, UpdatedAt: now}))
			must(t, a.CreateTenant(ctx, &store.Tenant{ID: "globex", Name: "Globex", CreatedAt: now, UpdatedAt: now}))
			for _, ep := range []struct {
				tenant, id string
				opts       store.EndpointOptions
			}{{"acme", "ep_first", c.opts}, {"globex", "ep_next", store.EndpointOptions{}}} {
				must(t, a.CreateEndpoint(ctx, &store.Endpoint{ID: ep.id, TenantID: ep.tenant, URL: "https://example.com/", EventTypes: []string{"*"},
					Timeout: 10 * time.Second, MaxConcurrency: 10, Enabled: true, Options: ep.opts, CreatedAt: now, UpdatedAt: now}))
			}
			for i := range 2 {
				_, err := a.Publish(ctx, "acme", []*store.Event{{ID: fmt.Sprintf("e%d", i), Type: "a.b", Timestamp: now, CreatedAt: now, Payload: []byte(`{}`)}})
				must(t, err)
			}
			first := store.ClaimRequest{EndpointID: "ep_first", Limit: 1, Ordered: c.opts.Ordered, Batch: c.opts.Batch}
			if c.opts.Ordered {
				// The first delivery is attempted, fails, and waits an hour; a node that held
				// the lane then stops, as after a restart.
				b := openSchema(t, schema, postgres.Options{})
				res, err := b.ClaimDue(ctx, now, now.Add(time.Minute), []store.ClaimRequest{first})
				must(t, err)
				if len(res[0].Claimed) != 1 {
					t.Fatalf("claimed %d of the ordered endpoint, want its first delivery", len(res[0].Claimed))
				}
				cl := res[0].Claimed[0]
				must(t, b.RecordResults(ctx, []store.Result{{DeliveryID: cl.DeliveryID, EndpointID: "ep_first", State: store.StatePending,
					NextAttemptAt: now.Add(time.Hour), Attempt: store.Attempt{At: now, StatusCode: 503, Error: "status 503"}}}))
				must(t, b.Close())
			}
			heartbeatAt(t, a)
			now = time.Now()
			res, err := a.ClaimDue(ctx, now, now.Add(time.Minute), []store.ClaimRequest{first})
			must(t, err)
			if len(res[0].Claimed) != 0 {
				t.Fatalf("claimed %d of ep_first, want nothing yet", len(res[0].Claimed))
			}
			_, err = a.Publish(ctx, "globex", []*store.Event{{ID: "g0", Type: "a.b", Timestamp: now, CreatedAt: now, Payload: []byte(`{}`)}})
			must(t, err)
			now = time.Now()
			res, err = a.ClaimDue(ctx, now, now.Add(time.Minute), []store.ClaimRequest{{EndpointID: "ep_next", Limit: 1}})
			must(t, err)
			if len(res[0].Claimed) != 1 {
				t.Fatalf("the next endpoint claimed %d (lane wait %q), want its delivery", len(res[0].Claimed), res[0].LaneWait)
			}
		})
	}
}
