package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

func brokerSource(t *testing.T, s store.Store, tenantID, id string) *store.BrokerSource {
	t.Helper()
	n := now()
	b := &store.BrokerSource{ID: id, TenantID: tenantID, Name: "Orders " + id, Type: "nats",
		Settings: json.RawMessage(`{"url":"nats://127.0.0.1:4222","stream":"ORDERS","password":"nats-pw-` + id + `"}`),
		Mapping:  json.RawMessage(`{"type_from":"subject","subject_prefix":"orders."}`),
		Schema:   json.RawMessage(`{"type":"object","required":["id"]}`),
		Enabled:  true, CreatedAt: n, UpdatedAt: n}
	must(t, s.CreateBrokerSource(ctx, b))
	return b
}

func sameBrokerSource(t *testing.T, got, want *store.BrokerSource) {
	t.Helper()
	if got.ID != want.ID || got.TenantID != want.TenantID || got.Name != want.Name || got.Type != want.Type ||
		got.Enabled != want.Enabled || !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Fatalf("broker source = %+v, want %+v", got, want)
	}
	for _, p := range [][2]json.RawMessage{{got.Settings, want.Settings}, {got.Mapping, want.Mapping}, {got.Schema, want.Schema}} {
		if !bytes.Equal(p[0], p[1]) {
			t.Fatalf("broker source %s: got %s, want %s", want.ID, p[0], p[1])
		}
	}
}

func testBrokerSourceCRUD(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	tenant(t, s, "other")
	b := brokerSource(t, s, "acme", "bsrc_1")
	if b.Health.State != store.BrokerStarting {
		t.Fatalf("new source health = %q, want starting", b.Health.State)
	}
	got, err := s.GetBrokerSource(ctx, "acme", "bsrc_1")
	must(t, err)
	sameBrokerSource(t, got, b)
	if got.Health.State != store.BrokerStarting || !got.Health.Since.Equal(b.CreatedAt) {
		t.Fatalf("stored health = %+v, want starting since creation", got.Health)
	}
	if _, err := s.GetBrokerSource(ctx, "other", "bsrc_1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another tenant's source: %v, want ErrNotFound", err)
	}
	if err := s.CreateBrokerSource(ctx, &store.BrokerSource{ID: "bsrc_1", TenantID: "acme", Type: "nats", CreatedAt: now(), UpdatedAt: now()}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("taken id: %v, want ErrConflict", err)
	}
	if err := s.CreateBrokerSource(ctx, &store.BrokerSource{ID: "bsrc_x", TenantID: "nobody", Type: "nats", CreatedAt: now(), UpdatedAt: now()}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown tenant: %v, want ErrNotFound", err)
	}

	// Pages in creation order; the enabled list spans tenants and leaves out disabled ones.
	b2 := brokerSource(t, s, "acme", "bsrc_2")
	b3 := brokerSource(t, s, "other", "bsrc_3")
	first, next, err := s.ListBrokerSources(ctx, "acme", store.Page{Limit: 1})
	must(t, err)
	if len(first) != 1 || first[0].ID != "bsrc_1" || next == "" {
		t.Fatalf("first page = %v next %q", first, next)
	}
	second, next, err := s.ListBrokerSources(ctx, "acme", store.Page{Limit: 1, Cursor: next})
	must(t, err)
	if len(second) != 1 || next != "" {
		t.Fatalf("second page = %v next %q", second, next)
	}
	sameBrokerSource(t, &second[0], b2)

	b2.Enabled, b2.Name, b2.Schema = false, "renamed", nil
	b2.Settings = json.RawMessage(`{"url":"nats://127.0.0.1:4223","stream":"ORDERS2"}`)
	b2.Mapping = json.RawMessage(`{"type":"fixed.type"}`)
	b2.UpdatedAt = now().Add(time.Second)
	must(t, s.UpdateBrokerSource(ctx, b2))
	got, err = s.GetBrokerSource(ctx, "acme", "bsrc_2")
	must(t, err)
	sameBrokerSource(t, got, b2)
	enabled, err := s.EnabledBrokerSources(ctx)
	must(t, err)
	ids := map[string]bool{}
	for _, e := range enabled {
		ids[e.ID] = true
	}
	if !ids[b.ID] || !ids[b3.ID] || ids[b2.ID] {
		t.Fatalf("enabled broker sources = %v, want bsrc_1 and bsrc_3", ids)
	}

	// Health: Since moves only when the state changes; an update of the configuration keeps it.
	t1 := now().Add(2 * time.Second)
	must(t, s.SetBrokerSourceHealth(ctx, "acme", "bsrc_1", store.BrokerHealth{State: store.BrokerUnhealthy, LastError: "connection refused", Since: t1}))
	must(t, s.SetBrokerSourceHealth(ctx, "acme", "bsrc_1", store.BrokerHealth{State: store.BrokerUnhealthy, LastError: "timeout", Since: t1.Add(time.Minute)}))
	got, err = s.GetBrokerSource(ctx, "acme", "bsrc_1")
	must(t, err)
	if got.Health.State != store.BrokerUnhealthy || got.Health.LastError != "timeout" || !got.Health.Since.Equal(t1) {
		t.Fatalf("health = %+v, want unhealthy (timeout) since %v", got.Health, t1)
	}
	b.UpdatedAt = now().Add(3 * time.Second)
	must(t, s.UpdateBrokerSource(ctx, b))
	t2 := t1.Add(2 * time.Minute)
	must(t, s.SetBrokerSourceHealth(ctx, "acme", "bsrc_1", store.BrokerHealth{State: store.BrokerHealthy, Since: t2}))
	got, err = s.GetBrokerSource(ctx, "acme", "bsrc_1")
	must(t, err)
	if got.Health.State != store.BrokerHealthy || got.Health.LastError != "" || !got.Health.Since.Equal(t2) {
		t.Fatalf("health = %+v, want healthy since %v", got.Health, t2)
	}
	if err := s.SetBrokerSourceHealth(ctx, "other", "bsrc_1", store.BrokerHealth{State: store.BrokerHealthy, Since: t2}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("health of another tenant's source: %v, want ErrNotFound", err)
	}

	must(t, s.DeleteBrokerSource(ctx, "acme", "bsrc_1"))
	if _, err := s.GetBrokerSource(ctx, "acme", "bsrc_1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted source: %v", err)
	}
	if err := s.DeleteBrokerSource(ctx, "acme", "bsrc_1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete again: %v", err)
	}
	if err := s.UpdateBrokerSource(ctx, b); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update deleted: %v", err)
	}
}

// A broker source's quarantined messages are received requests of it: stored, listed, accepted
// later, and removed with the source; a tenant's deletion removes its broker sources.
func testBrokerSourceReceived(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "ep_1", "*")
	brokerSource(t, s, "acme", "bsrc_q")
	at := now()
	r := &store.ReceivedRequest{ID: "req_b1", TenantID: "acme", SourceID: "bsrc_q", ReceivedAt: at, Method: "NATS", Path: "orders.created",
		Headers: map[string][]string{"Nats-Msg-Id": {"m1"}}, Body: []byte(`{"no":"id"}`), Status: store.ReceiveQuarantined,
		Reason: "schema: missing property \"id\"", DedupKey: "bmsg_1", DedupUntil: at.Add(time.Hour)}
	res := receive(t, s, r, nil)
	if res.Request.Status != store.ReceiveQuarantined {
		t.Fatalf("status = %s", res.Request.Status)
	}
	// The redelivered message is a duplicate of the first.
	again := *r
	again.ID = "req_b2"
	if res := receive(t, s, &again, nil); res.Request.Status != store.ReceiveDuplicate || res.Request.DuplicateOf != "req_b1" {
		t.Fatalf("redelivery = %s of %q, want duplicate of req_b1", res.Request.Status, res.Request.DuplicateOf)
	}
	list, _, err := s.ListReceived(ctx, store.ReceivedFilter{TenantID: "acme", SourceID: "bsrc_q", Statuses: []store.ReceiveStatus{store.ReceiveQuarantined}})
	must(t, err)
	if len(list) != 1 || list[0].ID != "req_b1" {
		t.Fatalf("quarantined = %v", list)
	}
	acc, err := s.AcceptReceived(ctx, "acme", "req_b1", event("bmsg_1", "orders.created"))
	must(t, err)
	if acc.Published == nil || acc.Published.Deliveries != 1 {
		t.Fatalf("accept = %+v, want one delivery", acc.Published)
	}
	must(t, s.DeleteBrokerSource(ctx, "acme", "bsrc_q"))
	if _, err := s.GetReceived(ctx, "acme", "req_b1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("message of a deleted source: %v", err)
	}
	r.ID = "req_b3"
	if _, err := s.Receive(ctx, r, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("receive for a deleted source: %v, want ErrNotFound", err)
	}

	brokerSource(t, s, "acme", "bsrc_t")
	if _, err := s.DeleteTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	enabled, err := s.EnabledBrokerSources(ctx)
	must(t, err)
	for _, e := range enabled {
		if e.TenantID == "acme" {
			t.Fatalf("broker source %s outlived its tenant", e.ID)
		}
	}
}

func testMaxBrokerSources(t *testing.T, open OpenLimits) {
	s := open(t, store.Limits{MaxBrokerSources: 2})
	tenant(t, s, "acme")
	tenant(t, s, "other")
	brokerSource(t, s, "acme", "bsrc_1")
	brokerSource(t, s, "acme", "bsrc_2")
	err := s.CreateBrokerSource(ctx, &store.BrokerSource{ID: "bsrc_3", TenantID: "acme", Type: "nats", Enabled: true, CreatedAt: now(), UpdatedAt: now()})
	limitError(t, err, "max_broker_sources", 2)
	brokerSource(t, s, "other", "bsrc_4") // per tenant
	must(t, s.DeleteBrokerSource(ctx, "acme", "bsrc_1"))
	brokerSource(t, s, "acme", "bsrc_5")
}

// Broker source settings (their credentials) are sealed at rest.
func testBrokerSourceSettingsEncrypted(t *testing.T, r *reopener) {
	keys, _ := newKeyring(t)
	s := r.open(keys)
	tenant(t, s, "acme")
	b := brokerSource(t, s, "acme", "bsrc_sec")
	if raw := r.db.Raw(t); bytes.Contains(raw, []byte("nats-pw-bsrc_sec")) {
		t.Fatal("the database holds a broker source password in clear")
	}
	s = r.open(keys)
	got, err := s.GetBrokerSource(ctx, "acme", "bsrc_sec")
	must(t, err)
	sameBrokerSource(t, got, b)
	other, _ := newKeyring(t)
	s = r.open(other)
	if _, err := s.GetBrokerSource(ctx, "acme", "bsrc_sec"); err == nil {
		t.Fatal("a broker source sealed with one key opened with another")
	}
}
