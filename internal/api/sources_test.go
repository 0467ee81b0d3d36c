package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/inbound"
	"github.com/heraldhq/herald/internal/inbound/verify"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/sqlite"
)

// sourceHarness is the API on a real SQLite store that the test also reads and writes directly,
// with the real receiving side (internal/inbound) unless noInbound.
type sourceHarness struct {
	*testAPI
	st store.Store
}

func newSourceAPI(t testing.TB, cfg api.Config, noInbound bool) *sourceHarness {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "herald.db"), sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	secret, key, err := api.NewKey(store.RoleAdmin, "", "test admin", time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAPIKey(ctx, key); err != nil {
		t.Fatalf("store admin key: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Store, cfg.Notifier, cfg.Logger = st, nopNotifier{}, logger
	cfg.URLCheck = httpsend.New(httpsend.Config{})
	if !noInbound {
		cfg.Inbound = inbound.New(inbound.Config{Store: st, Logger: logger})
	}
	a := api.New(cfg)
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return &sourceHarness{testAPI: &testAPI{t: t, srv: srv, api: a, admin: secret}, st: st}
}

// sourceOut is a source as the API answers it.
type sourceOut struct {
	ID           string         `json:"id"`
	TenantID     string         `json:"tenant_id"`
	Name         string         `json:"name"`
	Description  string         `json:"description"`
	Enabled      bool           `json:"enabled"`
	IngestURL    string         `json:"ingest_url"`
	Verification map[string]any `json:"verification"`
	AllowIPs     []string       `json:"allow_ips"`
	RateLimit    float64        `json:"rate_limit"`
	RateBurst    int            `json:"rate_burst"`
	MaxBodyBytes int            `json:"max_body_bytes"`
	Schema       map[string]any `json:"schema"`
	Dedup        struct {
		By            string `json:"by"`
		Header        string `json:"header"`
		Path          string `json:"path"`
		WindowSeconds int    `json:"window_seconds"`
	} `json:"dedup"`
	EventTypePrefix  string `json:"event_type_prefix"`
	DefaultEventType string `json:"default_event_type"`
}

// token is the token of the source's ingest URL.
func (s sourceOut) token(t *testing.T) string {
	t.Helper()
	_, tok, ok := strings.Cut(s.IngestURL, "/in/")
	if !ok || !strings.HasPrefix(tok, api.TokenPrefix) {
		t.Fatalf("ingest_url %q has no /in/hin_… token", s.IngestURL)
	}
	return tok
}

// storedSecrets reads a source's secrets from the store.
func (h *sourceHarness) storedSecrets(tenant, id string) []string {
	h.t.Helper()
	src, err := h.st.GetSource(context.Background(), tenant, id)
	if err != nil {
		h.t.Fatalf("get source %s: %v", id, err)
	}
	var c verify.Config
	if err := json.Unmarshal(src.Settings.Verification, &c); err != nil {
		h.t.Fatalf("stored verification: %v", err)
	}
	return c.Secrets
}

const (
	githubSecret = "gh-secret-a1b2c3d4e5f6"
	newSecret    = "gh-secret-rotated-99887766"
)

func TestSources_CreateGetListUpdateDelete(t *testing.T) {
	t.Parallel()
	h := newSourceAPI(t, api.Config{}, false)
	key := h.tenantKey("acme")
	ctx := context.Background()

	// A tenant key manages its own tenant's sources.
	var created sourceOut
	ans := h.do(key, "POST", "/v1/tenants/acme/sources", map[string]any{
		"name": "github-main", "description": "the monorepo",
		"verification": map[string]any{"scheme": "github", "secrets": []string{githubSecret}},
		"allow_ips":    []string{"192.30.252.0/22", "2001:db8::1", "10.1.2.3"},
		"rate_limit":   50, "rate_burst": 100, "max_body_bytes": 5 << 20,
		"schema":            map[string]any{"type": "object", "required": []string{"action"}},
		"dedup":             map[string]any{"by": "header", "header": "X-GitHub-Delivery", "window_seconds": 86400},
		"event_type_prefix": "github", "default_event_type": "github.unknown",
	})
	if ans.status != http.StatusCreated {
		t.Fatalf("create = %d: %s", ans.status, ans.body)
	}
	if err := json.Unmarshal(ans.body, &created); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(created.ID, "src_") || created.TenantID != "acme" || created.Name != "github-main" || !created.Enabled {
		t.Errorf("created %+v", created)
	}
	tok := created.token(t)
	if !strings.HasPrefix(created.IngestURL, h.srv.URL+"/in/") || len(tok) < len(api.TokenPrefix)+43 {
		t.Errorf("ingest_url %q: want the API's origin and a token of at least 32 random bytes", created.IngestURL)
	}
	if v := created.Verification; v["scheme"] != "github" || v["secrets_count"] != float64(1) || v["secrets"] != nil {
		t.Errorf("verification %v: want the scheme and secrets_count 1, no secrets", v)
	}
	if want := []string{"192.30.252.0/22", "2001:db8::1/128", "10.1.2.3/32"}; !slices.Equal(created.AllowIPs, want) {
		t.Errorf("allow_ips %v, want %v", created.AllowIPs, want)
	}
	if created.EventTypePrefix != "github." || created.DefaultEventType != "github.unknown" {
		t.Errorf("event types %q %q: want the prefix with its final dot", created.EventTypePrefix, created.DefaultEventType)
	}
	if d := created.Dedup; d.By != "header" || d.Header != "X-GitHub-Delivery" || d.WindowSeconds != 86400 {
		t.Errorf("dedup %+v", d)
	}
	if created.Schema["type"] != "object" || created.RateLimit != 50 || created.RateBurst != 100 || created.MaxBodyBytes != 5<<20 {
		t.Errorf("settings %+v", created)
	}
	if src, err := h.st.SourceByToken(ctx, tok); err != nil || src.ID != created.ID {
		t.Fatalf("the ingest token finds %v, %v; want the source", src, err)
	}

	var got sourceOut
	h.must(http.StatusOK, "GET", "/v1/tenants/acme/sources/"+created.ID, nil, &got)
	if got.IngestURL != created.IngestURL || got.Verification["secrets_count"] != float64(1) {
		t.Errorf("get %+v, want what create answered", got)
	}
	type sourcePage struct {
		Data       []sourceOut `json:"data"`
		NextCursor string      `json:"next_cursor"`
	}
	var page, page2 sourcePage
	var second sourceOut
	h.must(http.StatusCreated, "POST", "/v1/tenants/acme/sources", map[string]any{"name": "open", "verification": map[string]any{"scheme": "none"}}, &second)
	if second.Dedup.By != "provider_id" || second.Dedup.WindowSeconds != 7*24*3600 || len(second.AllowIPs) != 0 || second.Schema != nil {
		t.Errorf("defaults %+v: want provider_id dedup for 7 days, no allowlist, no schema", second)
	}
	// GitHub signs no timestamp and its delivery id is unsigned: the body hash by default, also
	// when only the window is given, and provider_id only when asked for.
	for _, c := range []struct {
		dedup map[string]any
		want  string
	}{{nil, "body_hash"}, {map[string]any{"window_seconds": 3600}, "body_hash"}, {map[string]any{"by": "provider_id"}, "provider_id"}} {
		body := map[string]any{"name": "gh", "verification": map[string]any{"scheme": "github", "secrets": []string{"s3cret"}}}
		if c.dedup != nil {
			body["dedup"] = c.dedup
		}
		var gh sourceOut
		h.must(http.StatusCreated, "POST", "/v1/tenants/acme/sources", body, &gh)
		if gh.Dedup.By != c.want {
			t.Errorf("github source with dedup %v: by %q, want %q", c.dedup, gh.Dedup.By, c.want)
		}
		h.must(http.StatusNoContent, "DELETE", "/v1/tenants/acme/sources/"+gh.ID, nil, nil)
	}
	h.must(http.StatusOK, "GET", "/v1/tenants/acme/sources?limit=1", nil, &page)
	if len(page.Data) != 1 || page.NextCursor == "" {
		t.Fatalf("first page %+v: want one source and a cursor", page)
	}
	first := page.Data[0].ID
	h.must(http.StatusOK, "GET", "/v1/tenants/acme/sources?limit=1&cursor="+page.NextCursor, nil, &page2)
	if len(page2.Data) != 1 || page2.Data[0].ID == first || page2.NextCursor != "" {
		t.Errorf("second page %+v: want the other source and no cursor", page2)
	}
	if ans := h.do(key, "GET", "/v1/tenants/acme/sources?cursor=garbage!", nil); ans.status != http.StatusUnprocessableEntity {
		t.Errorf("bad cursor = %d, want 422", ans.status)
	}

	// Verification without secrets keeps the stored ones; other fields change alone.
	var upd sourceOut
	h.must(http.StatusOK, "PATCH", "/v1/tenants/acme/sources/"+created.ID, map[string]any{
		"name": "github-renamed", "verification": map[string]any{"scheme": "github", "event_type_header": "X-GitHub-Event"},
		"allow_ips": []string{}, "schema": map[string]any{}, "event_type_prefix": "",
	}, &upd)
	if upd.Name != "github-renamed" || upd.Description != "the monorepo" || len(upd.AllowIPs) != 0 || upd.Schema != nil || upd.EventTypePrefix != "" {
		t.Errorf("after update %+v", upd)
	}
	if upd.Verification["event_type_header"] != "X-GitHub-Event" || upd.Verification["secrets_count"] != float64(1) {
		t.Errorf("verification after update %v", upd.Verification)
	}
	if s := h.storedSecrets("acme", created.ID); !slices.Equal(s, []string{githubSecret}) {
		t.Errorf("omitted secrets were not kept: %d stored", len(s))
	}
	if upd.Dedup.By != "header" || upd.RateLimit != 50 {
		t.Errorf("fields not given changed: %+v", upd)
	}
	// Given, they replace the stored ones.
	h.must(http.StatusOK, "PATCH", "/v1/tenants/acme/sources/"+created.ID, map[string]any{
		"verification": map[string]any{"scheme": "github", "secrets": []string{githubSecret, newSecret}},
	}, &upd)
	if s := h.storedSecrets("acme", created.ID); !slices.Equal(s, []string{githubSecret, newSecret}) || upd.Verification["secrets_count"] != float64(2) {
		t.Errorf("secrets after replacing: %d stored, secrets_count %v", len(s), upd.Verification["secrets_count"])
	}
	// Switching scheme without secrets keeps them, and says so when they do not fit.
	ans = h.do(key, "PATCH", "/v1/tenants/acme/sources/"+created.ID, map[string]any{"verification": map[string]any{"scheme": "stripe"}})
	if msg, _ := ans.problem(t).find("body.verification.secrets[0]"); ans.status != http.StatusUnprocessableEntity || !strings.Contains(msg, "stored secrets") {
		t.Errorf("scheme change keeping unfit secrets = %d %q, want 422 explaining they are the stored ones", ans.status, msg)
	}
	// Switching to none drops them.
	h.must(http.StatusOK, "PATCH", "/v1/tenants/acme/sources/"+created.ID, map[string]any{"verification": map[string]any{"scheme": "none"}, "enabled": false}, &upd)
	if len(h.storedSecrets("acme", created.ID)) != 0 || upd.Enabled {
		t.Errorf("none kept secrets or enabled stayed: %+v", upd)
	}
	if src, err := h.st.SourceByToken(ctx, tok); err != nil || src.Enabled {
		t.Errorf("disabled source by token: %v %v", src, err)
	}

	if ans := h.do(key, "DELETE", "/v1/tenants/acme/sources/"+created.ID, nil); ans.status != http.StatusNoContent {
		t.Fatalf("delete = %d: %s", ans.status, ans.body)
	}
	for _, call := range []struct{ method, path string }{
		{"GET", "/v1/tenants/acme/sources/" + created.ID},
		{"PATCH", "/v1/tenants/acme/sources/" + created.ID},
		{"DELETE", "/v1/tenants/acme/sources/" + created.ID},
		{"POST", "/v1/tenants/acme/sources/" + created.ID + "/rotate-token"},
		{"GET", "/v1/tenants/nobody/sources"},
		{"POST", "/v1/tenants/nobody/sources"},
	} {
		var body any
		if call.method == "PATCH" || call.method == "POST" && strings.HasSuffix(call.path, "/sources") {
			body = map[string]any{"name": "x", "verification": map[string]any{"scheme": "none"}}
		}
		if ans := h.do(h.admin, call.method, call.path, body); ans.status != http.StatusNotFound {
			t.Errorf("%s %s = %d, want 404: %s", call.method, call.path, ans.status, ans.body)
		} else {
			ans.problem(t)
		}
	}
	if _, err := h.st.SourceByToken(ctx, tok); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted source's token: %v, want not found", err)
	}
}

func TestSources_IngestURLUsesPublicURL(t *testing.T) {
	t.Parallel()
	h := newSourceAPI(t, api.Config{PublicURL: "https://hooks.example.com/"}, true)
	h.tenantKey("acme")
	var src sourceOut
	h.must(http.StatusCreated, "POST", "/v1/tenants/acme/sources", map[string]any{"name": "s", "verification": map[string]any{"scheme": "none"}}, &src)
	if !strings.HasPrefix(src.IngestURL, "https://hooks.example.com/in/hin_") {
		t.Errorf("ingest_url %q, want it under the public URL", src.IngestURL)
	}
}

// inboundSpy records the sources the API says changed.
type inboundSpy struct {
	changed chan string
}

func (s *inboundSpy) Replay(context.Context, string, string, bool) (*inbound.ReplayResult, error) {
	return nil, errors.New("not in this test")
}

func (s *inboundSpy) SourceChanged(id string) { s.changed <- id }

func TestSources_RotateTokenInvalidatesTheOldOneAtOnce(t *testing.T) {
	t.Parallel()
	spy := &inboundSpy{changed: make(chan string, 10)}
	h := newSourceAPI(t, api.Config{Inbound: spy}, true)
	key := h.tenantKey("acme")
	ctx := context.Background()
	var src, rotated sourceOut
	h.must(http.StatusCreated, "POST", "/v1/tenants/acme/sources", map[string]any{"name": "s", "verification": map[string]any{"scheme": "none"}}, &src)
	old := src.token(t)
	ans := h.do(key, "POST", "/v1/tenants/acme/sources/"+src.ID+"/rotate-token", nil)
	if ans.status != http.StatusOK {
		t.Fatalf("rotate = %d: %s", ans.status, ans.body)
	}
	if err := json.Unmarshal(ans.body, &rotated); err != nil {
		t.Fatal(err)
	}
	tok := rotated.token(t)
	if tok == old || rotated.ID != src.ID {
		t.Fatalf("rotation kept the token or changed the source: %+v", rotated)
	}
	if _, err := h.st.SourceByToken(ctx, old); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old token after rotation: %v, want not found", err)
	}
	if got, err := h.st.SourceByToken(ctx, tok); err != nil || got.ID != src.ID {
		t.Errorf("new token: %v %v", got, err)
	}
	if id := <-spy.changed; id != src.ID {
		t.Errorf("SourceChanged(%q), want %q", id, src.ID)
	}
	h.must(http.StatusOK, "PATCH", "/v1/tenants/acme/sources/"+src.ID, map[string]any{"rate_limit": 5}, nil)
	h.must(http.StatusNoContent, "DELETE", "/v1/tenants/acme/sources/"+src.ID, nil, nil)
	for _, what := range []string{"update", "delete"} {
		if id := <-spy.changed; id != src.ID {
			t.Errorf("after %s: SourceChanged(%q), want %q", what, id, src.ID)
		}
	}
}

// TestSources_SecretsNeverLeave creates, reads, lists, updates and rotates sources with secrets,
// and looks for them in every answer and in the audit log. The ingest token must not be in the
// audit log either.
func TestSources_SecretsNeverLeave(t *testing.T) {
	t.Parallel()
	h := newSourceAPI(t, api.Config{}, false)
	key := h.tenantKey("acme")
	secrets := []string{githubSecret, newSecret, "whsec_c3RyaXBlLXNpZ25pbmctc2VjcmV0", "herald:basic-password-123", "bearer-token-abcdef123"}
	var answers [][]byte
	call := func(method, path string, body any) answer {
		ans := h.do(key, method, path, body)
		answers = append(answers, ans.body)
		return ans
	}
	var tokens []string
	for i, v := range []map[string]any{
		{"scheme": "github", "secrets": []string{githubSecret, newSecret}},
		{"scheme": "stripe", "secrets": []string{secrets[2]}},
		{"scheme": "basic", "secrets": []string{secrets[3]}},
		{"scheme": "bearer", "secrets": []string{secrets[4]}, "header": "X-Gitlab-Token"},
	} {
		ans := call("POST", "/v1/tenants/acme/sources", map[string]any{"name": fmt.Sprint("s", i), "verification": v})
		if ans.status != http.StatusCreated {
			t.Fatalf("create %v = %d: %s", v["scheme"], ans.status, ans.body)
		}
		var src sourceOut
		if err := json.Unmarshal(ans.body, &src); err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, src.token(t))
		call("GET", "/v1/tenants/acme/sources/"+src.ID, nil)
		call("PATCH", "/v1/tenants/acme/sources/"+src.ID, map[string]any{"verification": v, "name": "renamed"})
		call("PATCH", "/v1/tenants/acme/sources/"+src.ID, map[string]any{"verification": map[string]any{"scheme": v["scheme"]}})
		// Refused updates must not echo them either.
		call("PATCH", "/v1/tenants/acme/sources/"+src.ID, map[string]any{"verification": map[string]any{"scheme": "hmac", "secrets": v["secrets"]}})
		call("PATCH", "/v1/tenants/acme/sources/"+src.ID, map[string]any{"verification": v, "colour": "red"})
		call("PATCH", "/v1/tenants/acme/sources/"+src.ID, map[string]any{"verification": map[string]any{"secrets": v["secrets"]}})
		ans = call("POST", "/v1/tenants/acme/sources/"+src.ID+"/rotate-token", nil)
		if err := json.Unmarshal(ans.body, &src); err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, src.token(t))
		if i == 0 {
			call("DELETE", "/v1/tenants/acme/sources/"+src.ID, nil)
		}
	}
	call("POST", "/v1/tenants/acme/sources", map[string]any{"verification": map[string]any{"scheme": "github", "secrets": []string{githubSecret}}})
	call("POST", "/v1/tenants/acme/sources", map[string]any{"name": "x", "verification": map[string]any{"scheme": "stripe", "secrets": []string{"sk_live_" + githubSecret}}})
	call("POST", "/v1/tenants/acme/sources", map[string]any{"name": "x", "verification": map[string]any{"scheme": "github", "secrets": githubSecret}})
	call("GET", "/v1/tenants/acme/sources", nil)
	// Bodies that are not JSON at all: the parser's problem must not quote them back.
	for _, raw := range []string{
		`{"name":"x","verification":{"scheme":"github","secrets":["` + githubSecret + `"]}`,
		`{"name":"x","verification":{"scheme":"github","secrets":["` + githubSecret + `"]},}`,
		`{"name":"x","verification":{"scheme":"github","secrets":"` + githubSecret + `"}}`,
		`{"name":"x","dedup":{"by":"header","header":"` + githubSecret + `","window_seconds":"x"}}`,
	} {
		if ans := call("POST", "/v1/tenants/acme/sources", raw); ans.status < 400 || ans.status >= 500 {
			t.Errorf("malformed body %.40s… answered %d, want 4xx", raw, ans.status)
		}
	}
	for _, b := range answers {
		for _, sec := range secrets {
			if strings.Contains(string(b), sec) {
				t.Errorf("an answer contains a secret: %.300s", b)
			}
		}
	}
	var audit struct {
		Data []struct {
			Action string          `json:"action"`
			Before json.RawMessage `json:"before"`
			After  json.RawMessage `json:"after"`
		} `json:"data"`
	}
	h.must(http.StatusOK, "GET", "/v1/audit?resource_type=source&limit=250", nil, &audit)
	var actions []string
	for _, e := range audit.Data {
		actions = append(actions, e.Action)
		for _, leak := range append(slices.Clone(secrets), tokens...) {
			if strings.Contains(string(e.Before)+string(e.After), leak) {
				t.Errorf("audit entry %s contains a secret or token: %s %s", e.Action, e.Before, e.After)
			}
		}
	}
	for _, want := range []string{"source.create", "source.update", "source.token_rotate", "source.delete"} {
		if !slices.Contains(actions, want) {
			t.Errorf("audit actions %v lack %s", actions, want)
		}
	}
}

// TestSources_InvalidInputGets422NamingTheField sends one mistake at a time: each is a 422
// problem with an error at the field, never a 500, and never echoes a secret.
func TestSources_InvalidInputGets422NamingTheField(t *testing.T) {
	t.Parallel()
	h := newSourceAPI(t, api.Config{}, true)
	h.tenantKey("acme")
	var src sourceOut
	h.must(http.StatusCreated, "POST", "/v1/tenants/acme/sources", map[string]any{"name": "ok", "verification": map[string]any{"scheme": "github", "secrets": []string{githubSecret}}}, &src)
	const secret = "s3cr3t-never-echoed-42"
	gh := map[string]any{"scheme": "github", "secrets": []string{secret}}
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("10.0.%d.0/24", i)
	}
	cases := []struct {
		name     string
		body     string
		loc, msg string
		patch    bool // also as an update
	}{
		{"no name", `{"verification":{"scheme":"none"}}`, "body.name", "required", false},
		{"empty name", `{"name":"  ","verification":{"scheme":"none"}}`, "body.name", "empty", true},
		{"long name", `{"name":"` + strings.Repeat("n", 201) + `","verification":{"scheme":"none"}}`, "body.name", "", true},
		{"NUL in description", `{"name":"x","description":"a\u0000b","verification":{"scheme":"none"}}`, "body.description", "NUL", true},
		{"no verification", `{"name":"x"}`, "body.verification", "required", false},
		{"verification not an object", `{"name":"x","verification":"github"}`, "body.verification", "", true},
		{"no scheme", `{"name":"x","verification":{"secrets":["` + secret + `"]}}`, "body.verification.scheme", "required", true},
		{"unknown scheme", `{"name":"x","verification":{"scheme":"carrier-pigeon","secrets":["` + secret + `"]}}`, "body.verification.scheme", "", true},
		{"no secret", `{"name":"x","verification":{"scheme":"github"}}`, "body.verification.secrets", "at least one", false},
		{"secrets not an array", `{"name":"x","verification":{"scheme":"github","secrets":"` + secret + `"}}`, "body.verification.secrets", "array", true},
		{"secret with spaces", `{"name":"x","verification":{"scheme":"github","secrets":["` + secret + `"," ` + secret + `"]}}`, "body.verification.secrets[1]", "white space", true},
		{"stripe API key", `{"name":"x","verification":{"scheme":"stripe","secrets":["sk_live_` + secret + `"]}}`, "body.verification.secrets[0]", "whsec_", true},
		{"hmac without header", `{"name":"x","verification":{"scheme":"hmac","secrets":["` + secret + `"]}}`, "body.verification.header", "required", true},
		{"field of another scheme", `{"name":"x","verification":{"scheme":"github","secrets":["` + secret + `"],"public_url":"https://x"}}`, "body.verification.public_url", "not used", true},
		{"unknown verification field", `{"name":"x","verification":{"scheme":"github","secrets":["` + secret + `"],"colour":"red"}}`, "body.verification.colour", "unknown", true},
		{"tolerance not a number", `{"name":"x","verification":{"scheme":"stripe","secrets":["whsec_` + secret + `"],"tolerance_seconds":"soon"}}`, "body.verification.tolerance_seconds", "", true},
		{"tolerance too long", `{"name":"x","verification":{"scheme":"stripe","secrets":["whsec_` + secret + `"],"tolerance_seconds":999999}}`, "body.verification.tolerance_seconds", "at most", true},
		{"not an address", `{"name":"x","verification":{"scheme":"none"},"allow_ips":["10.0.0.0/8","nope"]}`, "body.allow_ips[1]", "CIDR", true},
		{"bad prefix length", `{"name":"x","verification":{"scheme":"none"},"allow_ips":["10.0.0.0/33"]}`, "body.allow_ips[0]", "CIDR", true},
		{"zone", `{"name":"x","verification":{"scheme":"none"},"allow_ips":["fe80::1%eth0"]}`, "body.allow_ips[0]", "", true},
		{"too many addresses", mustJSON(map[string]any{"name": "x", "verification": map[string]any{"scheme": "none"}, "allow_ips": many}), "body.allow_ips", "", true},
		{"negative rate", `{"name":"x","verification":{"scheme":"none"},"rate_limit":-1}`, "body.rate_limit", "", true},
		{"negative burst", `{"name":"x","verification":{"scheme":"none"},"rate_burst":-1}`, "body.rate_burst", "", true},
		{"body limit too large", `{"name":"x","verification":{"scheme":"none"},"max_body_bytes":10485761}`, "body.max_body_bytes", "", true},
		{"schema not an object", `{"name":"x","verification":{"scheme":"none"},"schema":"object"}`, "body.schema", "", true},
		{"schema does not compile", `{"name":"x","verification":{"scheme":"none"},"schema":{"type":12}}`, "body.schema", "compile", true},
		{"schema refers outside", `{"name":"x","verification":{"scheme":"none"},"schema":{"$ref":"https://example.com/s.json"}}`, "body.schema", "", true},
		{"unknown dedup kind", `{"name":"x","verification":{"scheme":"none"},"dedup":{"by":"vibes"}}`, "body.dedup.by", "", true},
		{"dedup header missing", `{"name":"x","verification":{"scheme":"none"},"dedup":{"by":"header"}}`, "body.dedup.header", "required", true},
		{"dedup header invalid", `{"name":"x","verification":{"scheme":"none"},"dedup":{"by":"header","header":"X Id"}}`, "body.dedup.header", "header name", true},
		{"dedup path missing", `{"name":"x","verification":{"scheme":"none"},"dedup":{"by":"json_path"}}`, "body.dedup.path", "required", true},
		{"dedup path empty segment", `{"name":"x","verification":{"scheme":"none"},"dedup":{"by":"json_path","path":"data..id"}}`, "body.dedup.path", "empty segment", true},
		{"dedup header for another kind", `{"name":"x","verification":{"scheme":"none"},"dedup":{"by":"body_hash","header":"X-Id"}}`, "body.dedup.header", "only with", true},
		{"dedup window too long", `{"name":"x","verification":{"scheme":"none"},"dedup":{"window_seconds":2592001}}`, "body.dedup.window_seconds", "", true},
		{"unknown dedup field", `{"name":"x","verification":{"scheme":"none"},"dedup":{"by":"none","keys":1}}`, "body.dedup.keys", "", true},
		{"bad prefix", `{"name":"x","verification":{"scheme":"none"},"event_type_prefix":"Stripe Events"}`, "body.event_type_prefix", "prefix", true},
		{"long prefix", `{"name":"x","verification":{"scheme":"none"},"event_type_prefix":"` + strings.Repeat("a", 100) + `"}`, "body.event_type_prefix", "", true},
		{"bad default type", `{"name":"x","verification":{"scheme":"none"},"default_event_type":"received"}`, "body.default_event_type", "event type", true},
		{"long default type", `{"name":"x","verification":{"scheme":"none"},"default_event_type":"a.` + strings.Repeat("b", 99) + `"}`, "body.default_event_type", "", true},
		{"unknown field", mustJSON(map[string]any{"name": "x", "verification": gh, "colour": "red"}), "body.colour", "unknown", true},
		{"enabled not a boolean", `{"name":"x","verification":{"scheme":"none"},"enabled":"yes"}`, "body.enabled", "", true},
	}
	for _, c := range cases {
		calls := []struct{ method, path string }{{"POST", "/v1/tenants/acme/sources"}}
		if c.patch {
			calls = append(calls, struct{ method, path string }{"PATCH", "/v1/tenants/acme/sources/" + src.ID})
		}
		for _, call := range calls {
			ans := h.do(h.admin, call.method, call.path, c.body)
			if ans.status != http.StatusUnprocessableEntity {
				t.Errorf("%s, %s: status %d, want 422: %.300s", c.name, call.method, ans.status, ans.body)
				continue
			}
			p := ans.problem(t)
			msg, ok := p.find(c.loc)
			if !ok || !strings.Contains(msg, c.msg) {
				t.Errorf("%s, %s: errors %+v, want one at %s containing %q", c.name, call.method, p.Errors, c.loc, c.msg)
			}
			if strings.Contains(string(ans.body), secret) {
				t.Errorf("%s, %s: the problem echoes the secret: %s", c.name, call.method, ans.body)
			}
		}
	}
	// Nothing refused changed the source.
	if s := h.storedSecrets("acme", src.ID); !slices.Equal(s, []string{githubSecret}) {
		t.Errorf("a refused update changed the secrets")
	}
	var after sourceOut
	h.must(http.StatusOK, "GET", "/v1/tenants/acme/sources/"+src.ID, nil, &after)
	if after.Name != "ok" || after.Verification["scheme"] != "github" {
		t.Errorf("a refused update changed the source: %+v", after)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// FuzzCreateSource feeds arbitrary bodies to the create handler, in process, on a real SQLite
// store: whatever the body, the answer is a 201 or a problem+json 4xx, never a 5xx or a panic.
// (That no answer repeats a secret is TestSources_InvalidInputGets422NamingTheField's job: for
// arbitrary bytes, "the secret" is not defined.)
func FuzzCreateSource(f *testing.F) {
	const secret = "fuzz-secret-0123456789"
	for _, s := range []string{
		`{"name":"a","verification":{"scheme":"github","secrets":["` + secret + `"]}}`,
		`{"name":"a","verification":{"scheme":"hmac","secrets":["` + secret + `"],"header":"X-Sig","template":"{timestamp}.{body}"}}`,
		`{"name":"a","verification":{"scheme":"twilio","secrets":["` + secret + `"],"public_url":"https://h/in/x?q#f"}}`,
		`{"name":"a","verification":{"scheme":"standard_webhooks","secrets":["whsec_` + secret + `"]}}`,
		`{"name":"a","verification":{"scheme":"none"},"allow_ips":["::ffff:10.0.0.1/120","1.2.3.4","::1%lo"]}`,
		`{"name":"a","verification":{"scheme":"none"},"schema":{"$ref":"#/$defs/x","$defs":{"x":{"type":"object"}}}}`,
		`{"name":"a","verification":{"scheme":"none"},"schema":{"type":"object","pattern":"("}}`,
		`{"name":"a","verification":{"scheme":"none"},"dedup":{"by":"json_path","path":".a"}}`,
		`{"name":"a","verification":{"scheme":"none","secrets":null},"event_type_prefix":"a.b."}`,
		`{"name":"a","verification":{"scheme":"none","Secrets":[1]},"default_event_type":"a.b"}`,
		`{"name":"a","verification":{"scheme":"none"},"rate_limit":1e308,"rate_burst":1e10}`,
		`{"name":"a","verification":[],"x":{}}`, `{"verification":{}}`, `{}`, `null`, `[]`, `{"name":`,
		`{"name":"a","verification":{"scheme":"basic","secrets":[":"]}}`,
	} {
		f.Add([]byte(s))
	}
	h := newSourceAPI(f, api.Config{}, true)
	h.tenantKey("acme")
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/v1/tenants/acme/sources", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+h.admin)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.api.ServeHTTP(rec, req)
		switch {
		case rec.Code == http.StatusCreated:
		case rec.Code >= 400 && rec.Code < 500:
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("status %d with Content-Type %q, want problem+json; body %q", rec.Code, ct, body)
			}
		default:
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body.Bytes())
		}
	})
}

// A tenant has at most store.DefaultMaxSources sources: one more is refused with 422 at
// path.tenant naming the limit, and nothing is created.
func TestSources_LimitPerTenant(t *testing.T) {
	t.Parallel()
	h := newSourceAPI(t, api.Config{}, true)
	key := h.tenantKey("acme")
	body := map[string]any{"name": "open", "verification": map[string]any{"scheme": "none"}}
	for i := range store.DefaultMaxSources {
		if ans := h.do(key, "POST", "/v1/tenants/acme/sources", body); ans.status != http.StatusCreated {
			t.Fatalf("source %d: %d %s", i+1, ans.status, ans.body)
		}
	}
	ans := h.do(key, "POST", "/v1/tenants/acme/sources", body)
	if ans.status != http.StatusUnprocessableEntity {
		t.Fatalf("a source past the limit: %d %s, want 422", ans.status, ans.body)
	}
	if msg, ok := ans.problem(t).find("path.tenant"); !ok || !strings.Contains(msg, fmt.Sprintf("the limit is %d", store.DefaultMaxSources)) {
		t.Fatalf("problem %s: want path.tenant naming the limit", ans.body)
	}
	srcs, _, err := h.st.ListSources(context.Background(), "acme", store.Page{Limit: store.MaxLimit})
	if err != nil || len(srcs) != store.DefaultMaxSources {
		t.Fatalf("%d sources stored (%v), want %d", len(srcs), err, store.DefaultMaxSources)
	}
}
