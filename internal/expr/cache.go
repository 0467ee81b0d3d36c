package expr

import (
	"container/list"
	"sync"
)

// Cache keeps compiled filters and transformations by source text, at most size of them, evicting
// the least recently used. Compile errors are not kept: an invalid expression is refused when it
// is saved, so it rarely comes back. Safe for concurrent use.
type Cache struct {
	size int

	mu    sync.Mutex
	order *list.List // of *cacheEntry, most recently used first
	items map[cacheKey]*list.Element
}

// cacheKey tells a filter from a transformation with the same source.
type cacheKey struct {
	transform bool
	src       string
}

type cacheEntry struct {
	key cacheKey
	val any // *Filter or *Transform
}

// NewCache returns a cache of at most size compiled expressions (at least 1).
func NewCache(size int) *Cache {
	return &Cache{size: max(size, 1), order: list.New(), items: make(map[cacheKey]*list.Element)}
}

// Filter returns the compiled filter for src, compiling it on a miss.
func (c *Cache) Filter(src string) (*Filter, error) {
	v, err := c.get(cacheKey{src: src}, func() (any, error) { return CompileFilter(src) })
	if err != nil {
		return nil, err
	}
	return v.(*Filter), nil
}

// Transform returns the compiled transformation for src, compiling it on a miss.
func (c *Cache) Transform(src string) (*Transform, error) {
	v, err := c.get(cacheKey{transform: true, src: src}, func() (any, error) { return CompileTransform(src) })
	if err != nil {
		return nil, err
	}
	return v.(*Transform), nil
}

// Len returns the number of compiled expressions held.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

func (c *Cache) get(key cacheKey, compile func() (any, error)) (any, error) {
	c.mu.Lock()
	if el, ok := c.items[key]; ok {
		c.order.MoveToFront(el)
		c.mu.Unlock()
		return el.Value.(*cacheEntry).val, nil
	}
	c.mu.Unlock()

	// Compile outside the lock: it takes tens of microseconds and must not stall every other
	// lookup. Two goroutines may compile the same source at once; the results are equivalent.
	v, err := compile()
	if err != nil {
		return nil, err
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.order.MoveToFront(el)
		return el.Value.(*cacheEntry).val, nil
	}
	c.items[key] = c.order.PushFront(&cacheEntry{key: key, val: v})
	for c.order.Len() > c.size {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*cacheEntry).key)
	}
	return v, nil
}
