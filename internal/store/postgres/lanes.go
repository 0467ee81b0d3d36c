package postgres

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// Lanes spread endpoints over the nodes. A node delivers to an endpoint only while it holds the
// endpoint's lane (one row in lanes), so the endpoint's concurrency and rate limits hold across
// the cluster. Lanes are also shared fairly:
//
//   - a node takes a free lane only while it holds fewer than its share: the lanes in force,
//     plus those it holds or asks for, divided by the nodes alive (each renews its row in nodes
//     with its heartbeat). The check runs inside the claim statement, on the current rows;
//   - a node that holds more than one lane over its share (another node has joined, say) lets
//     the surplus go: it stops claiming on those lanes and, once its claims on them are done,
//     deletes them, so the others take them at their next claim. The lanes it gives up are those
//     where it holds the fewest claims, so the busiest stay where their queues are.
//
// A node that dies keeps its lanes until their time passes (its leases' end, the endpoint's
// timeout + the lease margin after its last renewal); the others take them over then.

// shedRetry is how soon a node looks again at an endpoint whose lane it has let go of, in case
// no other node took it.
const shedRetry = time.Second

// laneBook is what a handle knows of lanes: those it holds, with the end it last wrote, and,
// from its last heartbeat, how many nodes are alive and how many lanes the others hold.
type laneBook struct {
	claimMu sync.Mutex // serialises claims and renewals, and guards the fields below
	mine    map[string]time.Time
	nodes   int
	others  int
}

func newLaneBook() *laneBook { return &laneBook{mine: map[string]time.Time{}} }

// lanePlan is what a claim does about lanes.
type lanePlan struct {
	demand  int             // lanes this node holds or asks for: its share is computed with it
	shed    map[string]bool // lanes this node lets go of rather than claims on
	release []string        // lanes let go of now: this node holds no claims on them
}

// plan works out, before a claim, which lanes this node lets go of. countHeld counts the claims
// this node holds per endpoint; it is called only when there are lanes to let go of.
func (lb *laneBook) plan(now time.Time, reqs []store.ClaimRequest, countHeld func() map[string]int) lanePlan {
	for id, until := range lb.mine {
		if !until.After(now) {
			delete(lb.mine, id)
		}
	}
	p := lanePlan{demand: len(lb.mine)}
	for _, r := range reqs {
		if _, ok := lb.mine[r.EndpointID]; !ok {
			p.demand++
		}
	}
	share := ceilDiv(lb.others+len(lb.mine), max(lb.nodes, 1))
	excess := len(lb.mine) - share
	if excess <= 1 {
		return p // one over is tolerated, so that an odd lane does not bounce between nodes
	}
	heldBy := countHeld()
	ids := make([]string, 0, len(lb.mine))
	for id := range lb.mine {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		return cmp.Or(cmp.Compare(heldBy[a], heldBy[b]), cmp.Compare(a, b))
	})
	p.shed = make(map[string]bool, excess)
	for _, id := range ids[:excess] {
		p.shed[id] = true
		if heldBy[id] == 0 {
			p.release = append(p.release, id)
		}
	}
	slices.Sort(p.release)
	return p
}

// hold records that this node holds the endpoint's lane until at least until.
func (lb *laneBook) hold(endpoint string, until time.Time) {
	if until.After(lb.mine[endpoint]) {
		lb.mine[endpoint] = until
	}
}

// released records lanes let go of; until the next heartbeat says otherwise, they count as the
// other nodes', which is where they are going.
func (lb *laneBook) released(ids []string) {
	for _, id := range ids {
		delete(lb.mine, id)
	}
	lb.others += len(ids)
}

// renewed records a heartbeat: the lanes of endpoints with claims were renewed until until, and
// the cluster as it stands.
func (lb *laneBook) renewed(endpoints []string, until time.Time, nodes, others int) {
	for _, id := range endpoints {
		lb.hold(id, until)
	}
	lb.nodes, lb.others = nodes, others
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
