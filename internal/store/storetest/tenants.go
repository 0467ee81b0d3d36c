package storetest

import (
	"errors"
	"testing"

	"github.com/heraldhq/herald/internal/store"
)

// testTenantInstanceBindsKeys: every creation of a tenant is a new instance (UID), and a tenant
// key is bound to the instance it was made for, so that a tenant deleted and created again with
// the same id does not revive the old one's keys, even a key row written in a race with the delete.
func testTenantInstanceBindsKeys(t *testing.T, s store.Store) {
	n := now()
	first := &store.Tenant{ID: "acme", Name: "Acme", CreatedAt: n, UpdatedAt: n}
	must(t, s.CreateTenant(ctx, first))
	got, err := s.GetTenant(ctx, "acme")
	must(t, err)
	if first.UID == "" || got.UID != first.UID {
		t.Fatalf("created with UID %q, read back %q: want the same, not empty", first.UID, got.UID)
	}
	ts, _, err := s.ListTenants(ctx, store.Page{})
	must(t, err)
	if len(ts) != 1 || ts[0].UID != first.UID {
		t.Fatalf("listed tenants %+v, want acme with UID %q", ts, first.UID)
	}
	key := &store.APIKey{ID: "k_old", Role: store.RoleTenant, TenantID: "acme", Hash: []byte("old-0123456789abcdef0123456789abc"), Prefix: "hk_tenant_x", CreatedAt: n}
	must(t, s.CreateAPIKey(ctx, key))
	if key.TenantUID != first.UID {
		t.Fatalf("key bound to %q, want the tenant's instance %q", key.TenantUID, first.UID)
	}
	if k, err := s.APIKeyByHash(ctx, key.Hash); err != nil || k.TenantUID != first.UID {
		t.Fatalf("key lookup = %+v, %v", k, err)
	}

	_, err = s.DeleteTenant(ctx, "acme")
	must(t, err)
	second := &store.Tenant{ID: "acme", Name: "Another Acme", CreatedAt: n, UpdatedAt: n}
	must(t, s.CreateTenant(ctx, second))
	if second.UID == "" || second.UID == first.UID {
		t.Fatalf("re-created tenant has UID %q, first had %q: want a new one", second.UID, first.UID)
	}
	if _, err := s.APIKeyByHash(ctx, key.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the deleted tenant's key after the id is reused: %v, want ErrNotFound", err)
	}
	// A key made for the old instance (an API request that read the tenant before the delete)
	// is refused, and one that got stored anyway is never found.
	stale := &store.APIKey{ID: "k_stale", Role: store.RoleTenant, TenantID: "acme", TenantUID: first.UID,
		Hash: []byte("stale-0123456789abcdef0123456789a"), Prefix: "hk_tenant_x", CreatedAt: n}
	if err := s.CreateAPIKey(ctx, stale); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("key for the deleted instance: %v, want ErrNotFound", err)
	}
	if _, err := s.APIKeyByHash(ctx, stale.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused key found: %v", err)
	}
	orphan := &store.APIKey{ID: "k_orphan", Role: store.RoleTenant, TenantID: "nobody", Hash: []byte("orphan-0123456789abcdef012345678"), Prefix: "hk_tenant_x", CreatedAt: n}
	if err := s.CreateAPIKey(ctx, orphan); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("key for a tenant that does not exist: %v, want ErrNotFound", err)
	}
	fresh := &store.APIKey{ID: "k_new", Role: store.RoleTenant, TenantID: "acme", Hash: []byte("new-0123456789abcdef0123456789abc"), Prefix: "hk_tenant_x", CreatedAt: n}
	must(t, s.CreateAPIKey(ctx, fresh))
	if k, err := s.APIKeyByHash(ctx, fresh.Hash); err != nil || k.TenantUID != second.UID {
		t.Fatalf("the new instance's key = %+v, %v", k, err)
	}
}
