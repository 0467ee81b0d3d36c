package storetest

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/seal"
	"github.com/heraldhq/herald/internal/store"
)

// brokerEndpoint is an endpoint of a broker type whose settings hold two credentials.
func brokerEndpoint(tenantID, id, password, token string) *store.Endpoint {
	n := now()
	settings, _ := json.Marshal(map[string]any{
		"address": "127.0.0.1:4222", "subject": "orders." + id, "password": password, "token": token, "max_len": 1000,
	})
	return &store.Endpoint{
		ID: id, TenantID: tenantID, EventTypes: []string{"*"}, Type: "testbroker", Settings: settings,
		SecretFields: []string{"password", "token", "not_set"},
		Secrets:      []store.Secret{{Key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, Timeout: 10 * time.Second,
		MaxConcurrency: 10, Enabled: true, CreatedAt: n, UpdatedAt: n,
	}
}

// assertDestination checks the endpoint's type and settings by every read.
func assertDestination(t *testing.T, s store.Store, want *store.Endpoint, wantSecretFields []string) {
	t.Helper()
	got, err := s.GetEndpoint(ctx, want.TenantID, want.ID)
	must(t, err)
	byID, err := s.EndpointByID(ctx, want.ID)
	must(t, err)
	list, _, err := s.ListEndpoints(ctx, want.TenantID, store.Page{})
	must(t, err)
	i := slices.IndexFunc(list, func(e store.Endpoint) bool { return e.ID == want.ID })
	if i < 0 {
		t.Fatalf("endpoint %s not listed", want.ID)
	}
	for _, e := range []*store.Endpoint{got, byID, &list[i]} {
		if e.DestinationType() != want.DestinationType() {
			t.Fatalf("endpoint %s type = %q, want %q", want.ID, e.DestinationType(), want.DestinationType())
		}
		if len(want.Settings) == 0 {
			if len(e.Settings) != 0 {
				t.Fatalf("endpoint %s settings = %s, want none", want.ID, e.Settings)
			}
		} else if !sameJSON(e.Settings, want.Settings) {
			t.Fatalf("endpoint %s settings = %s, want %s", want.ID, e.Settings, want.Settings)
		}
		if !slices.Equal(e.SecretFields, wantSecretFields) {
			t.Fatalf("endpoint %s secret fields = %v, want %v", want.ID, e.SecretFields, wantSecretFields)
		}
	}
}

// testEndpointDestination: an endpoint's type and settings survive create, every read and
// update; an endpoint created without a type is a webhook.
func testEndpointDestination(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	hook := endpoint(t, s, "acme", "ep_hook", "*")
	if hook.Type != "" {
		t.Fatalf("test helper set a type: %q", hook.Type)
	}
	assertDestination(t, s, &store.Endpoint{ID: hook.ID, TenantID: "acme", Type: "webhook"}, nil)

	b := brokerEndpoint("acme", "ep_broker", "hunter2-password", "tok-secret-value")
	must(t, s.CreateEndpoint(ctx, b))
	assertDestination(t, s, b, []string{"password", "token"})

	// An update that drops a credential and changes a setting.
	b.Settings = json.RawMessage(`{"address":"127.0.0.1:4223","subject":"orders.x","password":"new-password"}`)
	b.UpdatedAt = now()
	must(t, s.UpdateEndpoint(ctx, b))
	assertDestination(t, s, b, []string{"password"})

	// Round trip through a read: what a read gives, an update writes back unchanged.
	got, err := s.GetEndpoint(ctx, "acme", b.ID)
	must(t, err)
	got.Description = "changed"
	must(t, s.UpdateEndpoint(ctx, got))
	assertDestination(t, s, b, []string{"password"})

	// Back to a webhook: no settings.
	got.Type, got.Settings, got.SecretFields, got.URL = "webhook", nil, nil, "https://example.com/h"
	must(t, s.UpdateEndpoint(ctx, got))
	assertDestination(t, s, &store.Endpoint{ID: b.ID, TenantID: "acme", Type: "webhook"}, nil)
}

// testSettingsSecretsEncrypted: the settings fields an endpoint names as secret are sealed at
// rest (never in the database in clear), the others readable; rekey moves them to a new key.
func testSettingsSecretsEncrypted(t *testing.T, r *reopener) {
	_, oldKey := newKeyring(t)
	s := r.open(keyringOf(t, oldKey))
	tenant(t, s, "acme")
	const password, token = "pw-9f83b1c0d2e4a6", "tk-71c0ffee5eed42"
	b := brokerEndpoint("acme", "ep_broker", password, token)
	must(t, s.CreateEndpoint(ctx, b))
	raw := r.db.Raw(t)
	for _, secret := range []string{password, token} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Fatalf("the database holds the setting %q in clear", secret)
		}
	}
	if !bytes.Contains(raw, []byte("orders.ep_broker")) {
		t.Fatal("the database does not hold the settings that are not secret: is Raw looking in the right place?")
	}
	assertDestination(t, s, b, []string{"password", "token"})

	// A new current key: the old one still opens them, and rekey reseals them.
	k, err := seal.GenerateKey()
	must(t, err)
	rotated := keyringOf(t, k, oldKey)
	s = r.open(rotated)
	assertDestination(t, s, b, []string{"password", "token"})
	if got := rekeyAll(t, s, 2); got != 1 {
		t.Fatalf("rekey rewrote %d endpoints, want 1", got)
	}
	if got := rekeyAll(t, s, 2); got != 0 {
		t.Fatalf("a second rekey rewrote %d endpoints, want 0", got)
	}
	// Without the old key, everything still opens: nothing was left sealed with it.
	s = r.open(keyringOf(t, k))
	assertDestination(t, s, b, []string{"password", "token"})
	raw = r.db.Raw(t)
	for _, secret := range []string{password, token} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Fatalf("after rekey the database holds the setting %q in clear", secret)
		}
	}
}
