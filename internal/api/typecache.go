package api

import (
	"sync"
	"time"
)

// typeCache remembers, for a few seconds, event types that exist, so that a publish does not
// read the catalog each time (a round trip on PostgreSQL). Only existence is cached: a type
// created anywhere is usable at once; one deleted on another node may still be accepted here for
// typeTTL (deleted here, it is forgotten at once).
type typeCache struct {
	mu    sync.Mutex
	until map[string]time.Time
}

const (
	typeTTL      = 5 * time.Second
	maxTypeCache = 10000
)

func newTypeCache() *typeCache { return &typeCache{until: map[string]time.Time{}} }

func (c *typeCache) known(name string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.until[name].After(now)
}

func (c *typeCache) remember(name string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.until) >= maxTypeCache {
		clear(c.until)
	}
	c.until[name] = now.Add(typeTTL)
}

func (c *typeCache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.until, name)
}
