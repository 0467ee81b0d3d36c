package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// Single-event publishes would each be a transaction of their own: a few statements and a commit,
// whose cost in PostgreSQL's CPU and round trips bounds the publish rate well below what batch
// publishes reach. So concurrent publishes of one tenant share transactions, as the SQLite
// driver's writer groups its commits: a publish joins the tenant's queue, up to maxRunning
// transactions per tenant run at once, and each takes everything queued (up to maxMerged events
// and store.ChunkDeliveries deliveries) as one batch. Alone, a publish runs at once, in a
// transaction of its own. Events come matched (Store.Publish matches them first, and cuts a
// large publish into several), so a shared transaction runs no filter and stays short.
//
// Sharing changes nothing a caller can see: ids repeated across the merged publishes are
// duplicates of the first, as if they had run one after the other; and if the shared transaction
// fails, each publish is run again alone, so that one bad publish cannot fail the others.

const (
	maxRunning = 4    // transactions per tenant at once
	maxMerged  = 1000 // events per shared transaction
	// mergedTimeout bounds a shared transaction, which outlives a caller that goes away.
	mergedTimeout = 30 * time.Second
)

type publisher struct {
	run     publishFunc
	mu      sync.Mutex
	tenants map[string]*tenantQueue
}

type tenantQueue struct {
	running int
	waiting []*pubReq
}

// publishFunc stores events and their deliveries to targets (targets[i]: event i's) in one
// transaction.
type publishFunc func(ctx context.Context, tenantID string, events []*store.Event, targets [][]string) ([]store.PublishResult, error)

type pubReq struct {
	ctx     context.Context
	events  []*store.Event
	targets [][]string
	rows    int // deliveries
	res     []store.PublishResult
	err     error
	done    chan struct{}
}

func newPublisher(run publishFunc) *publisher {
	return &publisher{run: run, tenants: map[string]*tenantQueue{}}
}

func (p *publisher) publish(ctx context.Context, tenantID string, events []*store.Event, targets [][]string) ([]store.PublishResult, error) {
	r := &pubReq{ctx: ctx, events: events, targets: targets, done: make(chan struct{})}
	for _, t := range targets {
		r.rows += len(t)
	}
	p.mu.Lock()
	q := p.tenants[tenantID]
	if q == nil {
		q = &tenantQueue{}
		p.tenants[tenantID] = q
	}
	q.waiting = append(q.waiting, r)
	if q.running < maxRunning {
		q.running++
		go p.serve(tenantID, q)
	}
	p.mu.Unlock()
	<-r.done
	return r.res, r.err
}

// serve runs the tenant's queued publishes, a batch per transaction, until the queue is empty.
func (p *publisher) serve(tenantID string, q *tenantQueue) {
	for {
		p.mu.Lock()
		if len(q.waiting) == 0 {
			q.running--
			if q.running == 0 {
				delete(p.tenants, tenantID)
			}
			p.mu.Unlock()
			return
		}
		n, total, rows := 0, 0, 0
		for n < len(q.waiting) && (n == 0 || total+len(q.waiting[n].events) <= maxMerged && rows+q.waiting[n].rows <= store.ChunkDeliveries) {
			total += len(q.waiting[n].events)
			rows += q.waiting[n].rows
			n++
		}
		batch := append([]*pubReq(nil), q.waiting[:n]...)
		q.waiting = append(q.waiting[:0:0], q.waiting[n:]...)
		p.mu.Unlock()
		p.runBatch(tenantID, batch)
	}
}

func (p *publisher) runBatch(tenantID string, batch []*pubReq) {
	defer func() {
		for _, r := range batch {
			close(r.done)
		}
	}()
	if len(batch) == 1 {
		r := batch[0]
		r.res, r.err = p.run(r.ctx, tenantID, r.events, r.targets)
		return
	}
	var all []*store.Event
	var targets [][]string
	for _, r := range batch {
		all = append(all, r.events...)
		targets = append(targets, r.targets...)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(batch[0].ctx), mergedTimeout)
	res, err := p.run(ctx, tenantID, all, targets)
	cancel()
	if err != nil {
		// Alone, each publish gets its own answer: the failure may be one publish's.
		for _, r := range batch {
			r.res, r.err = p.run(r.ctx, tenantID, r.events, r.targets)
		}
		return
	}
	off := 0
	for _, r := range batch {
		r.res = res[off : off+len(r.events) : off+len(r.events)]
		off += len(r.events)
	}
}
