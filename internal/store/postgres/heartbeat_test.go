package postgres_test

import (
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/store/postgres"
)

// A node whose heartbeat has ended is fenced by the next node to beat: its lanes are gone, its
// leases void (the deliveries claimable at once by the other node, long before the leases would
// have ended), and at its own next heartbeat it learns it was fenced and forgets its claims.
func TestHeartbeat_ADeadNodesLanesAndLeasesAreTakenOver(t *testing.T) {
	schema := newSchema(t)
	a := openSchema(t, schema, postgres.Options{})
	b := openSchema(t, schema, postgres.Options{})
	lanesOf, reqs := laneSetup(t, a, schema, 3, "ep_a")
	now := time.Now()
	fenced, err := a.Heartbeat(ctx, now, now.Add(2*time.Second), now.Add(-time.Second))
	must(t, err)
	if fenced {
		t.Fatal("a node's first heartbeat says it was fenced")
	}
	res, err := a.ClaimDue(ctx, now, now.Add(time.Hour), reqs)
	must(t, err)
	claimed := claimedOf(res)
	if len(claimed) == 0 || lanesOf()["ep_a"] == "" {
		t.Fatalf("node A claimed %v and holds lanes %v", claimed, lanesOf())
	}
	id := res[0].Claimed[0].DeliveryID
	if a.LeaseEnd(id).IsZero() {
		t.Fatal("node A holds no lease on what it claimed")
	}

	// B beats while A's heartbeat is in force: nothing is taken.
	_, err = b.Heartbeat(ctx, now, now.Add(2*time.Second), now.Add(-time.Second))
	must(t, err)
	if res, err := b.ClaimDue(ctx, now, now.Add(time.Hour), reqs); err != nil || len(claimedOf(res)) != 0 {
		t.Fatalf("node B claimed %v (err %v) while A is alive and holds the lane", claimedOf(res), err)
	}

	// Later: A's heartbeat has ended (A is silent); B's heartbeat fences it.
	later := now.Add(5 * time.Second)
	_, err = b.Heartbeat(ctx, later, later.Add(2*time.Second), later.Add(-time.Second))
	must(t, err)
	if l := lanesOf(); l["ep_a"] != "" {
		t.Fatalf("the dead node's lane is still there: %v", l)
	}
	res, err = b.ClaimDue(ctx, later, later.Add(time.Hour), reqs)
	must(t, err)
	if len(claimedOf(res)) == 0 {
		t.Fatal("node B cannot claim the dead node's deliveries: their leases were not voided")
	}

	// A comes back: its heartbeat says it was fenced, and it holds nothing any more.
	fenced, err = a.Heartbeat(ctx, later, later.Add(2*time.Second), later.Add(-time.Second))
	must(t, err)
	if !fenced {
		t.Fatal("node A's heartbeat after being fenced does not say so")
	}
	if !a.LeaseEnd(id).IsZero() {
		t.Fatal("node A still counts a lease it lost")
	}
	// And it is a node like the others again: its next heartbeat is not fenced.
	fenced, err = a.Heartbeat(ctx, later, later.Add(2*time.Second), later.Add(-time.Second))
	must(t, err)
	if fenced {
		t.Fatal("node A is fenced again without having been silent")
	}
}
