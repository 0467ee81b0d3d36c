package inbound

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/inbound/verify"
	"github.com/heraldhq/herald/internal/store"
)

func TestEventData(t *testing.T) {
	t.Parallel()
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded; charset=utf-8"}}
	for _, c := range []struct {
		name   string
		header http.Header
		body   string
		want   string
	}{
		{"JSON verbatim, spacing kept", http.Header{"Content-Type": {"application/json"}}, "{\n  \"a\": 1,  \"b\":[1, 2]\n}", "{\n  \"a\": 1,  \"b\":[1, 2]\n}"},
		{"JSON whatever the content type", http.Header{"Content-Type": {"text/plain"}}, ` [1,2] `, `[1,2]`},
		{"JSON with HTML characters", nil, `{"h":"<b>&</b>"}`, `{"h":"<b>&</b>"}`},
		{"form fields", form, "To=%2B1555&Body=hi+there&Tag=a&Tag=b", `{"Body":"hi there","Tag":["a","b"],"To":"+1555"}`},
		{"form with HTML", form, "x=%3Cb%3E", `{"x":"<b>"}`},
		{"text", http.Header{"Content-Type": {"text/plain"}}, "hello <world>", `{"body":"hello <world>","content_type":"text/plain"}`},
		{"empty body", nil, "", `{"body":"","content_type":""}`},
		{"not UTF-8", http.Header{"Content-Type": {"application/octet-stream"}}, "\xff\x00\x01", `{"body_base64":"/wAB","content_type":"application/octet-stream"}`},
		{"JSON with invalid UTF-8", http.Header{"Content-Type": {"application/json"}}, "{\"a\":\"\xff\"}", `{"body_base64":"eyJhIjoi/yJ9","content_type":"application/json"}`},
		{"form that does not parse", form, "a=%zz", `{"body":"a=%zz","content_type":"application/x-www-form-urlencoded; charset=utf-8"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := c.header
			if h == nil {
				h = http.Header{}
			}
			got := string(eventData(h, []byte(c.body)))
			if got != c.want {
				t.Errorf("eventData = %s, want %s", got, c.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("not JSON: %s", got)
			}
		})
	}
}

func TestEnvelope_MatchesTheAPIsShape(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 11, 30, 1, 2, 3, 456000000, time.UTC)
	ev, err := buildEvent("acme", "src_1", "stripe.invoice.paid", []byte("{\"a\": \"<x>\"}"), ts, Origin{RequestID: "req_1", ProviderID: "evt_stripe_1"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"` + ev.ID + `","type":"stripe.invoice.paid","timestamp":"2026-11-30T01:02:03.456Z","data":{"a": "<x>"},"source":"src_1",` +
		`"inbound":{"request_id":"req_1","provider_id":"evt_stripe_1"}}`
	if string(ev.Payload) != want {
		t.Errorf("payload\n got %s\nwant %s", ev.Payload, want)
	}
	if !strings.HasPrefix(ev.ID, "evt_") || ev.TenantID != "acme" || ev.Source != "src_1" || !ev.Timestamp.Equal(ts) || !ev.CreatedAt.Equal(ts) {
		t.Errorf("event = %+v", ev)
	}
	var doc map[string]any
	if err := json.Unmarshal(ev.Payload, &doc); err != nil {
		t.Fatal(err)
	}
}

func TestEventType(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		set      store.SourceSettings
		provider string
		want     string
	}{
		{store.SourceSettings{}, "", "webhook.received"},
		{store.SourceSettings{}, "push", "push"},
		{store.SourceSettings{EventTypePrefix: "github."}, "pull_request.opened", "github.pull_request.opened"},
		{store.SourceSettings{EventTypePrefix: "twilio.", DefaultEventType: "message.received"}, "", "twilio.message.received"},
		{store.SourceSettings{EventTypePrefix: "x."}, "", "x.webhook.received"},
	} {
		if got := eventType(&c.set, c.provider); got != c.want {
			t.Errorf("eventType(%+v, %q) = %q, want %q", c.set, c.provider, got, c.want)
		}
	}
}

func TestDedupKey(t *testing.T) {
	t.Parallel()
	req := &verify.Request{
		Header: http.Header{"X-Delivery": {" d-1 "}, "Content-Type": {"application/json"}, "X-Token": {"gl-token"}},
		Body:   []byte(`{"data":{"object":{"id":"in_1","n":7}}}`),
	}
	ev := verify.Event{ID: "evt_1"}
	long := strings.Repeat("x", 300)
	for _, c := range []struct {
		name string
		d    store.Dedup
		ev   verify.Event
		want string
	}{
		{"default is the provider id", store.Dedup{}, ev, "evt_1"},
		{"provider id", store.Dedup{By: store.DedupProviderID}, ev, "evt_1"},
		{"no provider id, no dedup", store.Dedup{}, verify.Event{}, ""},
		{"header", store.Dedup{By: store.DedupHeader, Header: "x-delivery"}, ev, "d-1"},
		{"absent header", store.Dedup{By: store.DedupHeader, Header: "X-Other"}, ev, ""},
		{"json path", store.Dedup{By: store.DedupJSONPath, Path: "data.object.id"}, ev, "in_1"},
		{"json path to a number", store.Dedup{By: store.DedupJSONPath, Path: "data.object.n"}, ev, "7"},
		{"body hash", store.Dedup{By: store.DedupBodyHash}, ev, "0c4b5c0ba1ec1e3a2e0fdcaf0e6b0bbc6c91a28c4bd2f6bbb9e7c8a0a1f0c1d2"},
		{"none", store.Dedup{By: store.DedupNone}, ev, ""},
		{"long ids are hashed", store.Dedup{}, verify.Event{ID: long}, "sha256:"},
		{"a secret header is hashed", store.Dedup{By: store.DedupHeader, Header: "X-Token"}, ev, "sha256:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := dedupKey(c.d, req, c.ev, []string{"x-token"})
			switch {
			case c.d.By == store.DedupBodyHash:
				if len(got) != 64 || strings.Trim(got, "0123456789abcdef") != "" {
					t.Errorf("body hash = %q, want 64 hex digits", got)
				}
			case c.want == "sha256:":
				if !strings.HasPrefix(got, "sha256:") || len(got) != 7+64 {
					t.Errorf("long key = %q", got)
				}
			case got != c.want:
				t.Errorf("dedupKey = %q, want %q", got, c.want)
			}
		})
	}
}

// A source that sets no dedup rule takes its scheme's: the body hash where the signature covers
// the body but no timestamp, since such a request verifies again whatever delivery id it carries.
func TestDedupBy_DefaultsToTheBodyHashWhereNoTimestampIsSigned(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		vc   verify.Config
		want string
	}{
		{verify.Config{Scheme: verify.SchemeGitHub}, store.DedupBodyHash},
		{verify.Config{Scheme: verify.SchemeShopify}, store.DedupBodyHash},
		{verify.Config{Scheme: verify.SchemeTwilio}, store.DedupBodyHash},
		{verify.Config{Scheme: verify.SchemeHMAC, Header: "X-Sig"}, store.DedupBodyHash},
		{verify.Config{Scheme: verify.SchemeHMAC, Header: "X-Sig", TimestampHeader: "X-Ts", Template: "{timestamp}.{body}"}, store.DedupProviderID},
		{verify.Config{Scheme: verify.SchemeStripe}, store.DedupProviderID},
		{verify.Config{Scheme: verify.SchemeSlack}, store.DedupProviderID},
		{verify.Config{Scheme: verify.SchemeStandardWebhooks}, store.DedupProviderID},
		{verify.Config{Scheme: verify.SchemeBasic}, store.DedupProviderID},
		{verify.Config{Scheme: verify.SchemeBearer}, store.DedupProviderID},
		{verify.Config{Scheme: verify.SchemeNone}, store.DedupProviderID},
	} {
		doc, err := json.Marshal(c.vc)
		if err != nil {
			t.Fatal(err)
		}
		if got := DedupBy(&store.SourceSettings{Verification: doc}); got != c.want {
			t.Errorf("%s (timestamp header %q): %s, want %s", c.vc.Scheme, c.vc.TimestampHeader, got, c.want)
		}
		// A rule the source sets is kept.
		if got := DedupBy(&store.SourceSettings{Verification: doc, Dedup: store.Dedup{By: store.DedupProviderID}}); got != store.DedupProviderID {
			t.Errorf("%s with provider_id set: %s", c.vc.Scheme, got)
		}
	}
}

func TestStoredHeaders_RedactCredentials(t *testing.T) {
	t.Parallel()
	h := http.Header{
		"Authorization":       {"Basic dXNlcjpwYXNz"},
		"Proxy-Authorization": {"Bearer x"},
		"Cookie":              {"a=1", "b=2"},
		"X-Hub-Signature-256": {"sha256=abc"},
	}
	none := func(string) bool { return false }
	got := storedHeaders(h, nil, none)
	for _, name := range []string{"Authorization", "Proxy-Authorization"} {
		if v := got.Get(name); v != Redacted {
			t.Errorf("%s = %q", name, v)
		}
	}
	if v := got.Values("Cookie"); len(v) != 2 || v[0] != Redacted || v[1] != Redacted {
		t.Errorf("Cookie = %q", v)
	}
	if got.Get("X-Hub-Signature-256") != "sha256=abc" {
		t.Errorf("other headers must be kept")
	}
	// The headers a source's verification reads a secret from, named in any case.
	if v := storedHeaders(h, []string{"x-hub-signature-256"}, none).Get("X-Hub-Signature-256"); v != Redacted {
		t.Errorf("a secret header = %q", v)
	}
	if h.Get("Authorization") != "Basic dXNlcjpwYXNz" {
		t.Errorf("the request's own headers must not change")
	}
}

// A secret sent in clear where the source does not read it (another header, the query string) is
// not stored either.
func TestStored_SecretsInUnexpectedPlaces(t *testing.T) {
	t.Parallel()
	v, err := verify.New(verify.Config{Scheme: verify.SchemeBearer, Secrets: []string{"glpat-0123456789"}})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"X-Gitlab-Token": {"glpat-0123456789"}, "X-Other": {"fine", "token glpat-0123456789"}, "Content-Type": {"application/json"}}
	got := storedHeaders(h, v.SecretHeaders(), v.Reveals)
	if g := got.Get("X-Gitlab-Token"); g != Redacted {
		t.Errorf("X-Gitlab-Token = %q", g)
	}
	if g := got.Values("X-Other"); len(g) != 2 || g[0] != "fine" || g[1] != Redacted {
		t.Errorf("X-Other = %q", g)
	}
	if g := got.Get("Content-Type"); g != "application/json" {
		t.Errorf("Content-Type = %q", g)
	}
	for raw, want := range map[string]string{
		"a=1&b=2":                              "a=1&b=2",
		"a=1&token=glpat-0123456789":           "a=1&token=%5BREDACTED%5D",
		"token=glpat%2D0123456789&b=2":         "token=%5BREDACTED%5D&b=2",
		"glpat-0123456789&b=2":                 "%5BREDACTED%5D=%5BREDACTED%5D&b=2",
		"auth=Bearer+glpat-0123456789+x&c=%zz": "auth=%5BREDACTED%5D&c=%zz",
	} {
		if got := storedQuery(raw, v.Reveals); got != want {
			t.Errorf("storedQuery(%q) = %q, want %q", raw, got, want)
		}
	}
}
