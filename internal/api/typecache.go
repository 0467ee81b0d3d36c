package api

import (
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/inbound/schema"
)

// typeCache remembers, for a few seconds, event types that exist with their compiled schemas,
// so that a publish does not read the catalog and compile a schema each time (a round trip on
// PostgreSQL). A type created anywhere is usable at once; one deleted or changed on another node
// may still be accepted here, with its old schema, for typeTTL (changed here, it is forgotten at
// once).
type typeCache struct {
	mu      sync.Mutex
	entries map[string]typeEntry
}

type typeEntry struct {
	until  time.Time
	schema *schema.Schema // nil when the type has none
}

const (
	typeTTL      = 5 * time.Second
	maxTypeCache = 10000
)

func newTypeCache() *typeCache { return &typeCache{entries: map[string]typeEntry{}} }

// lookup returns a type's schema (nil for none) and whether the type is known.
func (c *typeCache) lookup(name string, now time.Time) (*schema.Schema, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[name]
	if !ok || !e.until.After(now) {
		return nil, false
	}
	return e.schema, true
}

func (c *typeCache) remember(name string, sch *schema.Schema, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxTypeCache {
		clear(c.entries)
	}
	c.entries[name] = typeEntry{until: now.Add(typeTTL), schema: sch}
}

func (c *typeCache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, name)
}
