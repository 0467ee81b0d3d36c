package api

import (
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// keyCache remembers valid API keys, by hash, for keyTTL, so that a request does not read the key
// table each time (a round trip on PostgreSQL). A key revoked (or its tenant deleted) through this
// node stops working at once; through another node sharing the database, within keyTTL.
type keyCache struct {
	mu     sync.Mutex
	byHash map[string]cachedKey
}

type cachedKey struct {
	key   *store.APIKey
	until time.Time
}

const (
	keyTTL      = 5 * time.Second
	maxKeyCache = 10000
)

func newKeyCache() *keyCache { return &keyCache{byHash: map[string]cachedKey{}} }

// lookup returns the key with this hash if it is remembered and fresh, else nil.
func (c *keyCache) lookup(hash []byte, now time.Time) (*store.APIKey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byHash[string(hash)]
	if !ok || !e.until.After(now) {
		return nil, nil
	}
	return e.key, nil
}

func (c *keyCache) remember(k *store.APIKey, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.byHash) >= maxKeyCache {
		clear(c.byHash)
	}
	c.byHash[string(k.Hash)] = cachedKey{key: k, until: now.Add(keyTTL)}
}

// forget drops the keys that match.
func (c *keyCache) forget(match func(*store.APIKey) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, e := range c.byHash {
		if match(e.key) {
			delete(c.byHash, h)
		}
	}
}
