package sqlite

import (
	"sync"

	"github.com/heraldhq/herald/internal/store"
)

// subCache keeps each tenant's subscribers, read from the read pool, for Publish, which matches
// events before it enters the writer. The writer invalidates it in every transaction that
// changes endpoints, and settles it again once that transaction has ended: a reader that began
// before then cannot store what it read (the generation moved), so the cache never keeps a
// state older than the last committed endpoint change.
type subCache struct {
	mu      sync.Mutex
	gen     uint64
	pending bool // the writer's open transaction changed endpoints
	m       map[string][]store.Subscriber
}

func newSubCache() *subCache { return &subCache{m: map[string][]store.Subscriber{}} }

// get returns the tenant's cached subscribers, or the generation to pass to put.
func (c *subCache) get(tenantID string) ([]store.Subscriber, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	subs, ok := c.m[tenantID]
	return subs, c.gen, ok
}

// put keeps subscribers read at generation gen, unless an endpoint change came since.
func (c *subCache) put(tenantID string, gen uint64, subs []store.Subscriber) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen && !c.pending {
		c.m[tenantID] = subs
	}
}

// unchanged reports whether no endpoint has changed since generation gen (writer only): then
// what was read at gen is what the writer's transaction sees.
func (c *subCache) unchanged(gen uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen == gen && !c.pending
}

// invalidate is called by the writer in a transaction that changes endpoints.
func (c *subCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.pending = true
	clear(c.m)
}

// settle is called by the writer after each transaction, committed or not.
func (c *subCache) settle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending {
		c.gen++
		c.pending = false
		clear(c.m)
	}
}
