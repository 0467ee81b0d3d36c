package sqlite

import (
	"sync"
	"time"
)

// leases holds the claims of deliveries in flight. The SQLite store belongs to one process (it
// holds the file lock), so claims need not be durable: after a crash every claim is void anyway.
// Keeping them in memory turns a claim into a read, which never waits for the writer's fsync.
//
// Releases (a result was committed, or a claim given back) are not applied at once: they queue
// until the start of the next ClaimDue, so that a claim's read always starts after the commit of
// every release it sees. Otherwise a claim reading a snapshot from just before a result's commit
// could take a delivery that had just succeeded.
type leases struct {
	claimMu sync.Mutex // serialises ClaimDue

	mu      sync.Mutex
	byID    map[int64]lease
	count   map[string]int // leases per endpoint
	release map[int64]bool // released, to be dropped at the next claim
}

type lease struct {
	endpoint string
	until    time.Time
}

func newLeases() *leases {
	return &leases{byID: map[int64]lease{}, count: map[string]int{}, release: map[int64]bool{}}
}

// applyReleases drops the leases released since the last claim. Call with claimMu held.
func (l *leases) applyReleases() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range l.release {
		if ls, ok := l.byID[id]; ok {
			delete(l.byID, id)
			if l.count[ls.endpoint]--; l.count[ls.endpoint] <= 0 {
				delete(l.count, ls.endpoint)
			}
		}
	}
	clear(l.release)
}

func (l *leases) queueRelease(ids ...int64) {
	l.mu.Lock()
	for _, id := range ids {
		l.release[id] = true
	}
	l.mu.Unlock()
}

// held reports whether id is leased at now. A lease released since the last claim still counts
// for claims (see applyReleases) but not for callers asking whether an attempt is in flight.
func (l *leases) held(id int64, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls, ok := l.byID[id]
	return ok && ls.until.After(now)
}

// end is when the lease of id ends: zero if none is held or it was released.
func (l *leases) end(id int64) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls, ok := l.byID[id]
	if !ok || l.release[id] {
		return time.Time{}
	}
	return ls.until
}

// inFlight reports whether an attempt of id is under way.
func (l *leases) inFlight(id int64, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls, ok := l.byID[id]
	return ok && ls.until.After(now) && !l.release[id]
}

func (l *leases) countFor(endpoint string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count[endpoint]
}

func (l *leases) add(id int64, endpoint string, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.byID[id]; !ok {
		l.count[endpoint]++
	}
	l.byID[id] = lease{endpoint: endpoint, until: until}
}

// renew extends the leases in force at now and not released to until (none is shortened), and
// returns how many are in force.
func (l *leases) renew(now, until time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for id, ls := range l.byID {
		if !ls.until.After(now) || l.release[id] {
			continue
		}
		n++
		if ls.until.Before(until) {
			ls.until = until
			l.byID[id] = ls
		}
	}
	return n
}

func (l *leases) clear() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.byID)
	l.byID, l.count, l.release = map[int64]lease{}, map[string]int{}, map[int64]bool{}
	return n
}
