package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

func auditEntry(action, resType, resID, tenantID string, before, after string) *store.AuditEntry {
	a := &store.AuditEntry{
		At: now(), ActorKeyID: "key_admin", ActorRole: store.RoleAdmin, Action: action,
		ResourceType: resType, ResourceID: resID, TenantID: tenantID,
	}
	if before != "" {
		a.Before = json.RawMessage(before)
	}
	if after != "" {
		a.After = json.RawMessage(after)
	}
	return a
}

func audited(a *store.AuditEntry) context.Context { return store.WithAudit(ctx, a) }

func auditLog(t *testing.T, s store.Store, f store.AuditFilter) []store.AuditEntry {
	t.Helper()
	f.Limit = store.MaxLimit
	out, _, err := s.ListAudit(ctx, f)
	must(t, err)
	return out
}

func sameJSON(a, b json.RawMessage) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

// Every configuration write records the audit entry its context carries in its own transaction,
// and a write that fails records nothing.
func testAuditWithChange(t *testing.T, s store.Store) {
	n := now()
	var want []*store.AuditEntry
	step := func(a *store.AuditEntry, err error) {
		t.Helper()
		must(t, err)
		if a.ID == 0 {
			t.Fatalf("%s: the entry's ID was not set", a.Action)
		}
		want = append(want, a)
	}
	a := auditEntry("tenant.create", "tenant", "acme", "acme", "", `{"id":"acme","name":"Acme"}`)
	step(a, s.CreateTenant(audited(a), &store.Tenant{ID: "acme", Name: "Acme", CreatedAt: n, UpdatedAt: n}))
	a = auditEntry("tenant.update", "tenant", "acme", "acme", `{"name":"Acme"}`, `{"name":"Acme Inc"}`)
	step(a, s.UpdateTenant(audited(a), &store.Tenant{ID: "acme", Name: "Acme Inc", UpdatedAt: n}))
	a = auditEntry("event_type.create", "event_type", "a.b", "", "", `{"name":"a.b"}`)
	step(a, s.CreateEventType(audited(a), &store.EventType{Name: "a.b", CreatedAt: n, UpdatedAt: n}))
	a = auditEntry("event_type.update", "event_type", "a.b", "", `{"deprecated":false}`, `{"deprecated":true}`)
	step(a, s.UpdateEventType(audited(a), &store.EventType{Name: "a.b", Deprecated: true, UpdatedAt: n}))
	a = auditEntry("event_type.delete", "event_type", "a.b", "", `{"name":"a.b"}`, "")
	step(a, s.DeleteEventType(audited(a), "a.b"))
	ep := &store.Endpoint{ID: "ep", TenantID: "acme", URL: "https://example.com/", EventTypes: []string{"*"},
		Secrets: []store.Secret{{Key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, Timeout: time.Second, MaxConcurrency: 1,
		Enabled: true, CreatedAt: n, UpdatedAt: n}
	a = auditEntry("endpoint.create", "endpoint", "ep", "acme", "", `{"url":"https://example.com/","secrets":["[REDACTED]"]}`)
	step(a, s.CreateEndpoint(audited(a), ep))
	ep.Enabled, ep.DisabledReason = false, "disabled through the API"
	a = auditEntry("endpoint.disable", "endpoint", "ep", "acme", `{"enabled":true}`, `{"enabled":false}`)
	step(a, s.UpdateEndpoint(audited(a), ep))
	a = auditEntry("endpoint.delete", "endpoint", "ep", "acme", `{"url":"https://example.com/"}`, "")
	step(a, s.DeleteEndpoint(audited(a), "acme", "ep"))
	key := &store.APIKey{ID: "key_t", Role: store.RoleTenant, TenantID: "acme", Hash: []byte("0123456789abcdef0123456789abcdef"), Prefix: "hk_tenant_x", CreatedAt: n}
	a = auditEntry("api_key.create", "api_key", "key_t", "acme", "", `{"id":"key_t"}`)
	step(a, s.CreateAPIKey(audited(a), key))
	a = auditEntry("api_key.revoke", "api_key", "key_t", "acme", `{"revoked_at":null}`, `{"revoked_at":"now"}`)
	step(a, s.RevokeAPIKey(audited(a), "key_t"))
	a = auditEntry("delivery.replay", "delivery", "", "acme", "", `{"queued":0}`)
	step(a, s.RecordAudit(ctx, a))

	// Failed changes leave no entry, and writes without an entry record none.
	if err := s.CreateTenant(audited(auditEntry("tenant.create", "tenant", "acme", "acme", "", "")), &store.Tenant{ID: "acme", Name: "x", CreatedAt: n, UpdatedAt: n}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate tenant: %v", err)
	}
	if err := s.UpdateTenant(audited(auditEntry("tenant.update", "tenant", "nobody", "nobody", "", "")), &store.Tenant{ID: "nobody", Name: "x", UpdatedAt: n}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of a missing tenant: %v", err)
	}
	if err := s.RevokeAPIKey(audited(auditEntry("api_key.revoke", "api_key", "key_t", "acme", "", "")), "key_t"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoking twice: %v", err)
	}
	if err := s.DeleteEndpoint(audited(auditEntry("endpoint.delete", "endpoint", "ep", "acme", "", "")), "acme", "ep"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleting a missing endpoint: %v", err)
	}
	must(t, s.CreateTenant(ctx, &store.Tenant{ID: "quiet", Name: "no audit", CreatedAt: n, UpdatedAt: n}))

	got := auditLog(t, s, store.AuditFilter{})
	if len(got) != len(want) {
		t.Fatalf("%d audit entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[len(got)-1-i] // newest first
		if g.ID != w.ID || g.Action != w.Action || g.ResourceType != w.ResourceType || g.ResourceID != w.ResourceID ||
			g.TenantID != w.TenantID || g.ActorKeyID != w.ActorKeyID || g.ActorRole != w.ActorRole || !g.At.Equal(w.At) ||
			!sameJSON(g.Before, w.Before) || !sameJSON(g.After, w.After) {
			t.Errorf("entry %d = %+v\nwant %+v", i, g, *w)
		}
	}

	// Deleting a tenant records its entry with the counts as After (the revoked key goes too).
	a = auditEntry("tenant.delete", "tenant", "acme", "acme", `{"id":"acme"}`, "")
	_, err := s.DeleteTenant(audited(a), "acme")
	must(t, err)
	got = auditLog(t, s, store.AuditFilter{Action: "tenant.delete"})
	if len(got) != 1 || got[0].ID != a.ID || !sameJSON(got[0].After, json.RawMessage(`{"events":0,"deliveries":0,"attempts":0,"endpoints":0,"api_keys":1,"sources":0,"received_requests":0}`)) {
		t.Fatalf("tenant.delete entries = %+v", got)
	}
}

func testAuditList(t *testing.T, s store.Store) {
	base := now().Add(-time.Hour)
	var ids []int64
	for i := range 9 {
		tn := []string{"acme", "globex", ""}[i%3]
		a := auditEntry([]string{"endpoint.update", "endpoint.delete", "event_type.create"}[i%3], "thing", fmt.Sprintf("r%d", i%2), tn, "", `{"i":`+fmt.Sprint(i)+`}`)
		a.At = base.Add(time.Duration(i) * time.Minute)
		must(t, s.RecordAudit(ctx, a))
		ids = append(ids, a.ID)
	}
	check := func(name string, f store.AuditFilter, want ...int) {
		t.Helper()
		got := auditLog(t, s, f)
		var gotIdx []int
		for _, g := range got {
			for i, id := range ids {
				if g.ID == id {
					gotIdx = append(gotIdx, i)
				}
			}
		}
		if fmt.Sprint(gotIdx) != fmt.Sprint(want) {
			t.Errorf("%s: entries %v, want %v", name, gotIdx, want)
		}
	}
	check("all, newest first", store.AuditFilter{}, 8, 7, 6, 5, 4, 3, 2, 1, 0)
	check("tenant", store.AuditFilter{TenantID: "acme"}, 6, 3, 0)
	check("action", store.AuditFilter{Action: "endpoint.delete"}, 7, 4, 1)
	check("resource", store.AuditFilter{ResourceType: "thing", ResourceID: "r1"}, 7, 5, 3, 1)
	check("since and until", store.AuditFilter{Since: base.Add(2 * time.Minute), Until: base.Add(5 * time.Minute)}, 4, 3, 2)
	check("tenant and action", store.AuditFilter{TenantID: "globex", Action: "endpoint.delete"}, 7, 4, 1)

	var paged []int64
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("audit pagination does not end")
		}
		got, next, err := s.ListAudit(ctx, store.AuditFilter{Page: store.Page{Limit: 4, Cursor: cursor}})
		must(t, err)
		for _, g := range got {
			paged = append(paged, g.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(paged) != 9 || paged[0] != ids[8] || paged[8] != ids[0] {
		t.Fatalf("paged ids = %v (recorded %v)", paged, ids)
	}
	if _, _, err := s.ListAudit(ctx, store.AuditFilter{Page: store.Page{Cursor: "!!"}}); !errors.Is(err, store.ErrBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
}

func testAuditRetention(t *testing.T, s store.Store) {
	for i := range 5 {
		a := auditEntry("tenant.update", "tenant", "acme", "acme", "", "")
		a.At = now().Add(-time.Duration(48+i) * time.Hour)
		must(t, s.RecordAudit(ctx, a))
	}
	fresh := auditEntry("tenant.update", "tenant", "acme", "acme", "", "")
	must(t, s.RecordAudit(ctx, fresh))
	n, err := s.DeleteAuditOlderThan(ctx, time.Now().Add(-24*time.Hour), 3)
	must(t, err)
	if n != 3 {
		t.Fatalf("deleted %d, want the limit 3", n)
	}
	n, err = s.DeleteAuditOlderThan(ctx, time.Now().Add(-24*time.Hour), 3)
	must(t, err)
	if n != 2 {
		t.Fatalf("deleted %d, want the 2 old ones left", n)
	}
	if got := auditLog(t, s, store.AuditFilter{}); len(got) != 1 || got[0].ID != fresh.ID {
		t.Fatalf("after retention = %+v", got)
	}
}

// Deleting a tenant removes every row it owns, in more than one batch, and counts them; other
// tenants keep theirs, and a tenant re-created with the same id starts empty.
func testDeleteTenantCounts(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	tenant(t, s, "other")
	endpoint(t, s, "acme", "a", "*")
	endpoint(t, s, "acme", "b", "nothing.here")
	endpoint(t, s, "other", "o", "*")
	evs := make([]*store.Event, 1100) // more than one batch of the drivers' deletes
	for i := range evs {
		evs[i] = event(fmt.Sprintf("e%d", i), "a.b")
	}
	publish(t, s, "acme", evs...)
	publish(t, s, "other", event("keep", "a.b"))
	for _, id := range []string{"o", "a"} {
		c := claimAll(t, s, id, 3)
		var results []store.Result
		for _, cl := range c.Claimed {
			results = append(results, store.Result{DeliveryID: cl.DeliveryID, EndpointID: id, State: store.StateSucceeded,
				Attempt: store.Attempt{At: now(), StatusCode: 200, Success: true}})
		}
		must(t, s.RecordResults(ctx, results))
	}
	for i, tn := range []string{"acme", "acme", "other"} {
		must(t, s.CreateAPIKey(ctx, &store.APIKey{ID: fmt.Sprintf("k%d", i), Role: store.RoleTenant, TenantID: tn,
			Hash: []byte(fmt.Sprintf("hash-%d-0123456789abcdef0123456789", i)), Prefix: "hk_tenant_x", CreatedAt: now()}))
	}

	del, err := s.DeleteTenant(ctx, "acme")
	must(t, err)
	want := store.TenantDeletion{Events: 1100, Deliveries: 1100, Attempts: 3, Endpoints: 2, APIKeys: 2}
	if *del != want {
		t.Fatalf("deleted %+v, want %+v", *del, want)
	}
	if _, err := s.EndpointByID(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("endpoint of the deleted tenant: %v", err)
	}
	if _, err := s.APIKeyByHash(ctx, []byte("hash-0-0123456789abcdef0123456789")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("key of the deleted tenant: %v", err)
	}
	if _, err := s.APIKeyByHash(ctx, []byte("hash-2-0123456789abcdef0123456789")); err != nil {
		t.Fatalf("key of another tenant: %v", err)
	}
	if ds, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "other"}); err != nil || len(ds) != 1 {
		t.Fatalf("the other tenant's deliveries: %d, %v", len(ds), err)
	}
	if as, _, err := s.ListAttempts(ctx, store.AttemptFilter{TenantID: "other"}); err != nil || len(as) != 1 {
		t.Fatalf("the other tenant's attempts: %d, %v", len(as), err)
	}
	due, err := s.DueEndpoints(ctx, time.Now())
	must(t, err)
	if _, ok := due["a"]; ok {
		t.Fatal("a deleted endpoint still has due deliveries")
	}

	tenant(t, s, "acme")
	evl, _, err := s.ListEvents(ctx, store.EventFilter{TenantID: "acme"})
	must(t, err)
	dl, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "acme"})
	must(t, err)
	al, _, err := s.ListAttempts(ctx, store.AttemptFilter{TenantID: "acme"})
	must(t, err)
	el, _, err := s.ListEndpoints(ctx, "acme", store.Page{})
	must(t, err)
	if len(evl)+len(dl)+len(al)+len(el) != 0 {
		t.Fatalf("a re-created tenant sees %d events, %d deliveries, %d attempts, %d endpoints", len(evl), len(dl), len(al), len(el))
	}
	if _, err := s.DeleteTenant(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleting a missing tenant: %v", err)
	}
}

func testTenantRedactFields(t *testing.T, s store.Store) {
	n := now()
	must(t, s.CreateTenant(ctx, &store.Tenant{ID: "acme", Name: "Acme", RedactFields: []string{"card.number", "password"}, CreatedAt: n, UpdatedAt: n}))
	tenant(t, s, "plain")
	got, err := s.GetTenant(ctx, "acme")
	must(t, err)
	if fmt.Sprint(got.RedactFields) != "[card.number password]" {
		t.Fatalf("redact fields = %v", got.RedactFields)
	}
	got.RedactFields = []string{"ssn"}
	must(t, s.UpdateTenant(ctx, got))
	ts, _, err := s.ListTenants(ctx, store.Page{})
	must(t, err)
	if len(ts) != 2 || fmt.Sprint(ts[0].RedactFields) != "[ssn]" || ts[1].RedactFields != nil {
		t.Fatalf("listed tenants = %+v", ts)
	}
	got.RedactFields = nil
	must(t, s.UpdateTenant(ctx, got))
	got, err = s.GetTenant(ctx, "acme")
	must(t, err)
	if got.RedactFields != nil {
		t.Fatalf("cleared redact fields = %v", got.RedactFields)
	}
}
