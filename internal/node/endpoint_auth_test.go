package node_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/destination/webhook/oauth2test"
	"github.com/heraldhq/herald/internal/node"
)

// An endpoint authenticating with OAuth2 client credentials, end to end on each store: created
// through the API, its deliveries carry a token from a real authorization server that the
// receiver checks; the client secret is sealed at rest and never shown; and it is rotated in
// either order without a lost delivery: the authorization server first while Herald's token is
// still valid, then the authorization server first with the token revoked (the attempts fail as
// auth_failed and are retried), each followed by the PATCH of the new secret.
func TestEndpointAuth_OAuth2EndToEnd(t *testing.T) {
	t.Parallel()
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			t.Parallel()
			var mod func(*node.Config)
			if db == "postgres" {
				mod = onPostgres(t)
			}
			testOAuth2EndToEnd(t, start(t, mod))
		})
	}
}

func testOAuth2EndToEnd(t *testing.T, h *harness) {
	const (
		client  = "herald-acme"
		secret1 = "first-client-secret-8d1f0c"
		secret2 = "second-client-secret-47ab9e"
		secret3 = "third-client-secret-c05d21"
	)
	a := oauth2test.New(t, client, secret1, time.Hour)
	h.setup("acme", "invoice.paid")
	config := func(secret string) map[string]any {
		c := map[string]any{"auth": "oauth2", "oauth2_token_url": a.TokenURL, "oauth2_client_id": client,
			"oauth2_scopes": []string{"webhooks"}, "oauth2_audience": "https://receiver.example"}
		if secret != "" {
			c["oauth2_client_secret"] = secret
		}
		return c
	}
	ep := h.endpoint("acme", map[string]any{"url": a.ReceiverURL, "event_types": []string{"invoice.*"},
		"retry_schedule": []int{0, 1, 1, 1, 1, 1, 1, 1, 1, 1}, "config": config(secret1)})
	path := "/v1/tenants/acme/endpoints/" + ep.ID

	// The answers show the config without the secret, and name it in config_secrets.
	var raw json.RawMessage
	h.must(200, "GET", path, nil, &raw)
	var got struct {
		Config        map[string]any `json:"config"`
		ConfigSecrets []string       `json:"config_secrets"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secret1)) || got.Config["oauth2_token_url"] != a.TokenURL || got.Config["oauth2_auth_style"] != "basic" ||
		!slices.Equal(got.ConfigSecrets, []string{"oauth2_client_secret"}) {
		t.Fatalf("GET endpoint = %s; want the config without the secret, listed in config_secrets", raw)
	}
	checkSealed(t, h, ep.ID, secret1)

	var ids []string
	publish := func(n int) {
		for i := range n {
			ids = append(ids, h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{"i": i}}).ID)
		}
	}
	allDelivered := func(what string) {
		t.Helper()
		eventually(t, 30*time.Second, what, func() bool {
			return len(h.deliveries("/v1/tenants/acme/deliveries?state=succeeded")) == len(ids)
		})
	}
	publish(5)
	allDelivered("the first deliveries")
	if f := a.Fetches.Load(); f != 1 {
		t.Fatalf("%d token requests for 5 deliveries, want 1", f)
	}

	// Rotation, authorization server first: Herald's token stays valid until the endpoint is
	// updated, which opens a sender with the new secret.
	a.SetClient(t, client, secret2)
	publish(3)
	allDelivered("the deliveries between the two halves of the rotation")
	h.must(200, "PATCH", path, map[string]any{"config": config(secret2)}, nil)
	publish(3)
	allDelivered("the deliveries after the rotation")
	if f := a.Fetches.Load(); f != 2 {
		t.Fatalf("%d token requests, want a second one with the new secret", f)
	}
	checkSealed(t, h, ep.ID, secret2)

	// Rotation with the token revoked meanwhile: the attempts fail as auth_failed (the token URL
	// refuses the old secret) and are retried, until the update lets them through.
	a.SetClient(t, client, secret3)
	a.Revoke(t)
	publish(1)
	failed := ids[len(ids)-1]
	eventually(t, 30*time.Second, "a failed attempt", func() bool {
		ds := h.deliveries("/v1/tenants/acme/events/" + failed + "/deliveries")
		return len(ds) == 1 && len(ds[0].Attempts) >= 1
	})
	h.must(200, "PATCH", path, map[string]any{"config": config(secret3)}, nil)
	allDelivered("the delivery held back by the rotation")
	ds := h.deliveries("/v1/tenants/acme/events/" + failed + "/deliveries")
	if !slices.ContainsFunc(ds[0].Attempts, func(at attemptOut) bool {
		return !at.Success && at.ErrorKind == "auth_failed" && strings.Contains(at.Error, "invalid_client")
	}) {
		t.Fatalf("attempts during the rotation: %+v; want one failed as auth_failed saying invalid_client", ds[0].Attempts)
	}
	for _, d := range h.deliveries("/v1/tenants/acme/deliveries") {
		for _, at := range d.Attempts {
			for _, s := range []string{secret1, secret2, secret3} {
				if strings.Contains(at.Error+at.Response, s) {
					t.Fatalf("an attempt record shows a client secret: %+v", at)
				}
			}
		}
	}
	// Every event reached the receiver with a valid token (each once, or more after a retry).
	seen := map[string]bool{}
	for _, id := range a.IDs() {
		seen[id] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Fatalf("event %s never reached the receiver with a valid token", id)
		}
	}
	checkSealed(t, h, ep.ID, secret3)
}

// checkSealed fails t if the store holds the secret in clear, or holds no sealed value: the
// SQLite files, or the endpoint's row on PostgreSQL.
func checkSealed(t *testing.T, h *harness, id, secret string) {
	t.Helper()
	var stored []byte
	if h.cfg.DatabaseURL == "" {
		stored = dataFiles(t, h.dir)
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, h.cfg.DatabaseURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var settings, sealed string
		q := "SELECT settings, settings_secrets FROM " + pgx.Identifier{h.cfg.DatabaseSchema, "endpoints"}.Sanitize() + " WHERE id = $1"
		if err := conn.QueryRow(ctx, q, id).Scan(&settings, &sealed); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(settings, "oauth2_token_url") {
			t.Fatalf("the settings column %q lacks the token URL", settings)
		}
		stored = []byte(settings + sealed)
	}
	if bytes.Contains(stored, []byte(secret)) || !bytes.Contains(stored, []byte("enc:v1:")) {
		t.Fatal("the store holds the client secret in clear, or no sealed value")
	}
}

// Basic, bearer and API key credentials, end to end: each reaches the receiver, is sealed and
// never shown, and is rotated without a lost delivery (the receiver accepts both during the
// rotation, as receivers that rotate keys do, then only the new one). Changing the scheme needs
// the old scheme's credential removed with null: the API says so at its field.
func TestEndpointAuth_StaticCredentialsEndToEnd(t *testing.T) {
	t.Parallel()
	cases := []struct {
		scheme string
		config func(cred string) map[string]any
		header func(cred string) (name, value string)
	}{
		{"basic", func(c string) map[string]any {
			return map[string]any{"auth": "basic", "basic_username": "herald", "basic_password": c}
		}, func(c string) (string, string) {
			return "Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("herald:"+c))
		}},
		{"bearer", func(c string) map[string]any { return map[string]any{"auth": "bearer", "bearer_token": c} },
			func(c string) (string, string) { return "Authorization", "Bearer " + c }},
		{"api_key", func(c string) map[string]any {
			return map[string]any{"auth": "api_key", "api_key_header": "X-Receiver-Key", "api_key": c}
		}, func(c string) (string, string) { return "X-Receiver-Key", c }},
	}
	for _, c := range cases {
		t.Run(c.scheme, func(t *testing.T) {
			t.Parallel()
			h := start(t, nil)
			old, rotated := c.scheme+"-credential-old-5e1d", c.scheme+"-credential-new-93ca"
			var mu sync.Mutex
			accepted := []string{old}
			rc := newReceiver(t, func(_ int, r *http.Request) int {
				mu.Lock()
				defer mu.Unlock()
				for _, cred := range accepted {
					if name, value := c.header(cred); r.Header.Get(name) == value {
						return 204
					}
				}
				return 401
			})
			setAccepted := func(creds ...string) {
				mu.Lock()
				accepted = creds
				mu.Unlock()
			}
			h.setup("acme", "invoice.paid")
			ep := h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}, "config": c.config(old),
				"retry_schedule": []int{1, 1, 1, 1, 1}})
			path := "/v1/tenants/acme/endpoints/" + ep.ID
			var raw json.RawMessage
			h.must(200, "GET", path, nil, &raw)
			if bytes.Contains(raw, []byte(old)) || !bytes.Contains(raw, []byte(`"config_secrets"`)) {
				t.Fatalf("GET endpoint = %s; want the credential listed in config_secrets, not shown", raw)
			}
			checkSealed(t, h, ep.ID, old)

			n := 0
			publishAndWait := func(what string) {
				t.Helper()
				h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{}})
				n++
				eventually(t, 30*time.Second, what, func() bool {
					return len(h.deliveries("/v1/tenants/acme/deliveries?state=succeeded")) == n
				})
			}
			publishAndWait("the delivery with the first credential")
			setAccepted(old, rotated)
			h.must(200, "PATCH", path, map[string]any{"config": c.config(rotated)}, nil)
			setAccepted(rotated)
			publishAndWait("the delivery with the rotated credential")
			checkSealed(t, h, ep.ID, rotated)
			for _, d := range h.deliveries("/v1/tenants/acme/deliveries") {
				for _, at := range d.Attempts {
					if !at.Success {
						t.Fatalf("a failed attempt across the rotation: %+v", at)
					}
				}
			}

			// Another scheme while this one's credential is stored: refused at that credential.
			other := map[string]any{"auth": "bearer", "bearer_token": "x-other-token"}
			field := map[string]string{"basic": "basic_password", "bearer": "", "api_key": "api_key"}[c.scheme]
			if field != "" {
				var problem struct {
					Errors []struct {
						Location string `json:"location"`
						Message  string `json:"message"`
					} `json:"errors"`
				}
				if code := h.call("PATCH", path, map[string]any{"config": other}, &problem); code != 422 || len(problem.Errors) == 0 ||
					problem.Errors[0].Location != "body.config."+field || !strings.Contains(problem.Errors[0].Message, "null") {
					t.Fatalf("switching scheme with %s stored = %d %+v; want 422 at body.config.%s", field, code, problem, field)
				}
				other[field] = nil
				h.must(200, "PATCH", path, map[string]any{"config": other}, nil)
			}
		})
	}
}
