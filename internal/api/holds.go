package api

import "sync"

// holds counts what is held open at once (listen streams, exports), by key and in all, so that
// each can be bounded per key and per server.
type holds struct {
	mu   sync.Mutex
	open map[string]int
	n    int
	// changed, when set, is told the number held in all after each change (a gauge).
	changed func(n int)
}

func newHolds(changed func(n int)) *holds { return &holds{open: map[string]int{}, changed: changed} }

// take counts one more hold of key, unless key already holds perKey ("key") or all keys
// together hold total (total <= 0: no such bound; "total"). release undoes a hold, once.
func (h *holds) take(key string, perKey, total int) (release func(), full string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.open[key] >= perKey:
		return nil, "key"
	case total > 0 && h.n >= total:
		return nil, "total"
	}
	h.open[key]++
	h.add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.open[key]--; h.open[key] <= 0 {
				delete(h.open, key)
			}
			h.add(-1)
		})
	}, ""
}

func (h *holds) add(d int) {
	h.n += d
	if h.changed != nil {
		h.changed(h.n)
	}
}
