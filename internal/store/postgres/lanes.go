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
//
// The book (laneBook.mine) and the table (this node's rows in lanes) must agree, since claims
// size this node's share from the book while the claim statement counts the table: a lane in
// the table that the book has forgotten is counted against the node without being worked, and
// on a single node it keeps every new endpoint out until it ends (issue 14: deliveries to a new
// tenant's endpoint waited 30–100 s after a fan-out). The invariants:
//
//  1. The book holds exactly this node's lanes in force, with their ends: every statement that
//     writes a lane of this node reads it back in the same transaction, and the book takes what
//     it read (a claim: whether it took rows or not; a renewal: all of this node's lanes).
//     Where a statement fails, the book keeps what it had, and the next heartbeat re-reads the
//     table (RenewClaims), so a disagreement lasts at most one heartbeat.
//  2. A node holds a lane only while it works the endpoint: while it holds claims on it, or is
//     claiming on it. A lane with neither is deleted at the node's next claim or heartbeat
//     (laneBook.plan, RenewClaims), so the lanes counted in the fair-share check are the lanes
//     really worked, and an idle endpoint's lane is free for whichever node next has its work.
//  3. The book forgets a lane only when the table's row is gone, has ended, or belongs to
//     another node: it deletes its own rows first (release), and ends are the table's ends.
//  4. An endpoint with due work whose lane this node cannot take is told why
//     (store.ClaimResult.LaneWait) and when to ask again: when another node's lane ends
//     (laneTerm), or, when this node is at its share or is handing the lane over, within
//     laneRetry, since a lane may free at any claim; never only at the rescan. And a node that
//     lets a lane go while its endpoint has due work wakes the nodes for it (notifyFreed), so
//     one waiting for the lane's end takes it at once.
//  5. A claim is not cut short by its caller's context (ClaimDue): cancelled after its commit,
//     it would leave leases and lanes the handle never learnt of.

// laneRetry is how soon a node looks again at an endpoint whose lane it may not take now (it is
// at its share), or has let go of (in case no other node took it).
const laneRetry = time.Second

// Why an endpoint waits for its lane (store.ClaimResult.LaneWait).
const (
	laneHeldElsewhere = "another node holds the endpoint's lane"
	laneOverShare     = "this node holds its fair share of lanes"
	laneHandedOver    = "this node is handing the endpoint's lane to another node"
)

// laneBook is what a handle knows of lanes: those it holds, with their ends as the table has
// them, and, from its last heartbeat, how many nodes are alive and how many lanes the others hold.
type laneBook struct {
	claimMu sync.Mutex // serialises claims and renewals, and guards the fields below
	mine    map[string]time.Time
	nodes   int
	others  int
}

func newLaneBook() *laneBook { return &laneBook{mine: map[string]time.Time{}} }

// lanePlan is what a claim does about lanes.
type lanePlan struct {
	demand  int             // lanes this node keeps or asks for: its share is computed with it
	shed    map[string]bool // lanes this node lets go of rather than claims on
	release []string        // lanes deleted now: idle, or shed with no claims held on them
	handed  int             // how many of release are shed lanes, going to the other nodes
}

// plan works out, before a claim, which lanes this node lets go of. countHeld counts the claims
// this node holds per endpoint.
func (lb *laneBook) plan(now time.Time, reqs []store.ClaimRequest, countHeld func() map[string]int) lanePlan {
	for id, until := range lb.mine {
		if !until.After(now) {
			delete(lb.mine, id)
		}
	}
	heldBy := countHeld()
	asked := make(map[string]bool, len(reqs))
	var p lanePlan
	for _, r := range reqs {
		asked[r.EndpointID] = true
		if _, ok := lb.mine[r.EndpointID]; !ok {
			p.demand++
		}
	}
	// Lanes this node neither holds claims on nor asks for now are not worked: they go back.
	var kept []string
	for id := range lb.mine {
		if heldBy[id] == 0 && !asked[id] {
			p.release = append(p.release, id)
		} else {
			kept = append(kept, id)
		}
	}
	p.demand += len(kept)
	share := ceilDiv(lb.others+len(kept), max(lb.nodes, 1))
	excess := len(kept) - share
	if excess > 1 { // one over is tolerated, so that an odd lane does not bounce between nodes
		slices.SortFunc(kept, func(a, b string) int {
			return cmp.Or(cmp.Compare(heldBy[a], heldBy[b]), cmp.Compare(a, b))
		})
		p.shed = make(map[string]bool, excess)
		for _, id := range kept[:excess] {
			p.shed[id] = true
			if heldBy[id] == 0 {
				p.release = append(p.release, id)
				p.handed++
			}
		}
	}
	slices.Sort(p.release)
	return p
}

// released records the plan's lanes deleted; until the next heartbeat says otherwise, those
// handed over count as the other nodes', which is where they are going.
func (lb *laneBook) released(p lanePlan) {
	for _, id := range p.release {
		delete(lb.mine, id)
	}
	lb.others += p.handed
}

// read records what a statement read back of this node's lane of an endpoint: its end, or
// nil when this node does not hold it.
func (lb *laneBook) read(endpoint string, until *time.Time) {
	if until == nil {
		delete(lb.mine, endpoint)
		return
	}
	lb.mine[endpoint] = *until
}

// renewed records a heartbeat: this node's lanes as the table has them, and the cluster as it
// stands.
func (lb *laneBook) renewed(mine map[string]time.Time, nodes, others int) {
	lb.mine, lb.nodes, lb.others = mine, nodes, others
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
