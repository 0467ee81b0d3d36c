package redact

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// Store is a store that redacts the response excerpts of attempts, by their tenant's setting,
// before they are stored: what Herald keeps about an attempt never holds the hidden fields. Every
// other method is the wrapped store's.
//
// Tenants' settings are cached for a short time (ttl), so that recording results does not read
// the tenant each time; a change made through this Store applies at once, one made through
// another process (PostgreSQL) within ttl.
type Store struct {
	store.Store
	ttl time.Duration

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	paths Paths
	until time.Time
}

// maxCached bounds the cache: past it, the cache starts again empty.
const maxCached = 10000

// NewStore wraps st.
func NewStore(st store.Store, ttl time.Duration) *Store {
	return &Store{Store: st, ttl: ttl, cache: map[string]cached{}}
}

// Unwrap implements store.Wrapper: the driver's optional interfaces are found through it.
func (s *Store) Unwrap() store.Store { return s.Store }

// tenantPaths returns the tenant's redaction paths, from the cache when fresh. A tenant that does
// not exist redacts nothing.
func (s *Store) tenantPaths(ctx context.Context, tenantID string) (Paths, error) {
	now := time.Now()
	s.mu.Lock()
	c, ok := s.cache[tenantID]
	s.mu.Unlock()
	if ok && now.Before(c.until) {
		return c.paths, nil
	}
	t, err := s.Store.GetTenant(ctx, tenantID)
	var p Paths
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return Paths{}, err
	default:
		p = Compile(t.RedactFields)
	}
	s.mu.Lock()
	if len(s.cache) >= maxCached {
		clear(s.cache)
	}
	s.cache[tenantID] = cached{paths: p, until: now.Add(s.ttl)}
	s.mu.Unlock()
	return p, nil
}

func (s *Store) forget(tenantID string) {
	s.mu.Lock()
	delete(s.cache, tenantID)
	s.mu.Unlock()
}

// RecordResults redacts the attempts' responses, then records the results. When a tenant's
// setting cannot be read, its responses are replaced by Marker whole: never stored unredacted.
func (s *Store) RecordResults(ctx context.Context, results []store.Result) error {
	var out []store.Result // a copy, made at the first change: the caller's slice stays as it was
	for i, r := range results {
		a := r.Attempt
		if a.Response == "" || a.TenantID == "" {
			continue
		}
		resp := Marker
		if p, err := s.tenantPaths(ctx, a.TenantID); err == nil {
			resp = string(p.JSON([]byte(a.Response)))
		}
		if resp == a.Response {
			continue
		}
		if out == nil {
			out = append([]store.Result(nil), results...)
		}
		out[i].Attempt.Response = resp
	}
	if out == nil {
		out = results
	}
	return s.Store.RecordResults(ctx, out)
}

// UpdateTenant changes the tenant and drops its cached setting.
func (s *Store) UpdateTenant(ctx context.Context, t *store.Tenant) error {
	defer s.forget(t.ID)
	return s.Store.UpdateTenant(ctx, t)
}

// DeleteTenant deletes the tenant and drops its cached setting.
func (s *Store) DeleteTenant(ctx context.Context, id string) (*store.TenantDeletion, error) {
	defer s.forget(id)
	return s.Store.DeleteTenant(ctx, id)
}

// CreateTenant creates the tenant and drops a cached setting of an earlier tenant of its id.
func (s *Store) CreateTenant(ctx context.Context, t *store.Tenant) error {
	defer s.forget(t.ID)
	return s.Store.CreateTenant(ctx, t)
}
