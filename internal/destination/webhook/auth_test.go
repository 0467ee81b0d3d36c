package webhook_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/destination/webhook"
	"github.com/heraldhq/herald/internal/httpsend"
)

// Basic, bearer and API key credentials reach the receiver on every request, replacing an
// endpoint's own header of the same name, without changing the message's (shared) header.
func TestAuth_StaticCredentialsReachTheReceiver(t *testing.T) {
	t.Parallel()
	got := make(chan http.Header, 1)
	// The receiver echoes the request's headers, as debugging receivers do.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		_ = json.NewEncoder(w).Encode(r.Header)
	}))
	t.Cleanup(srv.Close)
	typ := devType(t)
	cases := []struct {
		name       string
		settings   string
		check      func(h http.Header) bool
		credential func() (header, value string) // as sent; the receiver echoes it
	}{
		{"basic", `{"auth":"basic","basic_username":"herald","basic_password":"pa:ss wörd"}`, func(h http.Header) bool {
			r := &http.Request{Header: h}
			u, p, ok := r.BasicAuth()
			return ok && u == "herald" && p == "pa:ss wörd"
		}, func() (string, string) {
			return "Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("herald:pa:ss wörd"))
		}},
		{"basic without password", `{"auth":"basic","basic_username":"sk_live_key"}`, func(h http.Header) bool {
			return h.Get("Authorization") == "Basic "+base64.StdEncoding.EncodeToString([]byte("sk_live_key:"))
		}, func() (string, string) {
			return "Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("sk_live_key:"))
		}},
		{"bearer", `{"auth":"bearer","bearer_token":"tok.en-123_~+/="}`, func(h http.Header) bool {
			return h.Get("Authorization") == "Bearer tok.en-123_~+/=" && len(h.Values("Authorization")) == 1
		}, func() (string, string) { return "Authorization", "tok.en-123_~+/=" }},
		{"api key, default header", `{"auth":"api_key","api_key":"k-123-a-long-key"}`, func(h http.Header) bool {
			return h.Get("X-API-Key") == "k-123-a-long-key" && h.Get("Authorization") == "own"
		}, func() (string, string) { return "X-API-Key", "k-123-a-long-key" }},
		{"api key, named header", `{"auth":"api_key","api_key_header":"x-receiver-key","api_key":"k-456-a-long-key"}`, func(h http.Header) bool {
			return h.Get("X-Receiver-Key") == "k-456-a-long-key" && len(h.Values("X-Receiver-Key")) == 1
		}, func() (string, string) { return "X-Receiver-Key", "k-456-a-long-key" }},
	}
	for _, c := range cases {
		s := open(t, typ, srv.URL, json.RawMessage(c.settings))
		// The endpoint's own headers, in the case a custom header may have.
		h := http.Header{"Webhook-Id": {"evt_1"}, "Authorization": {"own"}, "x-receiver-key": {"own"}}
		before := len(h)
		o := s.Send(t.Context(), &destination.Message{ID: "evt_1", Body: []byte(`{}`), Header: h})
		r := <-got
		if o.Class != destination.Success || !c.check(r) || r.Get("Webhook-Id") != "evt_1" {
			t.Errorf("%s: outcome %+v, received %v", c.name, o, r)
		}
		if name, value := c.credential(); strings.Contains(string(o.Response), value) || !strings.Contains(string(o.Response), "[redacted]") {
			t.Errorf("%s: the stored response shows the %s header: %s", c.name, name, o.Response)
		}
		if len(h) != before || h.Get("Authorization") != "own" {
			t.Errorf("%s: the message's header was changed: %v", c.name, h)
		}
	}
}

// Check accepts each scheme with its fields (filling in the defaults), and refuses, field by
// field, a missing credential, a field of another scheme, a header Herald sets, a value that
// cannot go into a header, and a token URL the node could not reach; never echoing a secret.
func TestAuth_Check(t *testing.T) {
	t.Parallel()
	dev := devType(t)
	production := webhook.New(httpsend.New(httpsend.Config{}), nil)
	t.Cleanup(func() { _ = production.Close() })

	ok := []struct{ in, want string }{
		{`{"auth":"basic","basic_username":"u","basic_password":"p"}`, `{"auth":"basic","basic_username":"u","basic_password":"p"}`},
		{`{"auth":"bearer","bearer_token":"t"}`, `{"auth":"bearer","bearer_token":"t"}`},
		{`{"auth":"api_key","api_key":"k"}`, `{"auth":"api_key","api_key_header":"X-API-Key","api_key":"k"}`},
		{`{"auth":"oauth2","oauth2_token_url":"https://auth.example.com/token","oauth2_client_id":"c","oauth2_client_secret":"s"}`,
			`{"auth":"oauth2","oauth2_token_url":"https://auth.example.com/token","oauth2_client_id":"c","oauth2_client_secret":"s","oauth2_auth_style":"basic"}`},
		{`{"auth":"oauth2","oauth2_token_url":"https://auth.example.com/token","oauth2_client_id":"c","oauth2_client_secret":"s","oauth2_scopes":["a:b","c"],"oauth2_audience":"api://x","oauth2_auth_style":"body"}`,
			`{"auth":"oauth2","oauth2_token_url":"https://auth.example.com/token","oauth2_client_id":"c","oauth2_client_secret":"s","oauth2_scopes":["a:b","c"],"oauth2_audience":"api://x","oauth2_auth_style":"body"}`},
	}
	for _, c := range ok {
		got, errs := production.Check(json.RawMessage(c.in))
		if len(errs) > 0 || string(got) != c.want {
			t.Errorf("Check(%s) = %s, %v; want %s", c.in, got, errs, c.want)
		}
	}

	const secret = "top-secret-value"
	oauth := func(extra string) string {
		return `{"auth":"oauth2","oauth2_client_id":"c","oauth2_client_secret":"` + secret + `"` + extra + `}`
	}
	bad := []struct {
		typ          *webhook.Type
		in           string
		field, about string
	}{
		{production, `{"auth":"digest"}`, "auth", "unknown scheme"},
		{production, `{"bearer_token":"` + secret + `"}`, "auth", `set auth to "bearer"`},
		{production, `{"auth":"basic","basic_password":"` + secret + `"}`, "basic_username", "required"},
		{production, `{"auth":"basic","basic_username":"a:b"}`, "basic_username", "':'"},
		{production, `{"auth":"bearer"}`, "bearer_token", "required"},
		{production, `{"auth":"bearer","bearer_token":"Bearer ` + secret + `"}`, "bearer_token", "spaces"},
		{production, `{"auth":"bearer","bearer_token":"` + secret + `\r\nX-Evil: 1"}`, "bearer_token", "control characters"},
		{production, `{"auth":"bearer","bearer_token":"t","basic_password":"` + secret + `"}`, "basic_password", `only for auth "basic"`},
		{production, `{"auth":"api_key"}`, "api_key", "required"},
		{production, `{"auth":"api_key","api_key":"k","api_key_header":"Bad Header"}`, "api_key_header", "not a valid header name"},
		{production, `{"auth":"api_key","api_key":"k","api_key_header":"Webhook-Signature"}`, "api_key_header", "set by Herald"},
		{production, `{"auth":"api_key","api_key":"k","api_key_header":"content-type"}`, "api_key_header", "set by Herald"},
		{production, oauth(``), "oauth2_token_url", "required"},
		{production, `{"auth":"oauth2","oauth2_token_url":"https://a.example/t"}`, "oauth2_client_id", "required"},
		{production, `{"auth":"oauth2","oauth2_token_url":"https://a.example/t","oauth2_client_id":"c"}`, "oauth2_client_secret", "required"},
		{production, oauth(`,"oauth2_token_url":"ftp://a.example/t"`), "oauth2_token_url", "https"},
		{production, oauth(`,"oauth2_token_url":"http://auth.example.com/token"`), "oauth2_token_url", "must use https"},
		{production, oauth(`,"oauth2_token_url":"https://10.0.0.1/token"`), "oauth2_token_url", "not allowed"},
		{production, oauth(`,"oauth2_token_url":"https://user:pw@auth.example.com/token"`), "oauth2_token_url", "credentials"},
		{dev, oauth(`,"oauth2_token_url":"https://169.254.169.254/token"`), "oauth2_token_url", "not allowed"},
		{production, oauth(`,"oauth2_token_url":"https://a.example/t","oauth2_auth_style":"header"`), "oauth2_auth_style", "basic"},
		{production, oauth(`,"oauth2_token_url":"https://a.example/t","oauth2_scopes":["a b"]`), "oauth2_scopes[0]", "not a scope"},
		{production, oauth(`,"oauth2_token_url":"https://a.example/t","api_key":"k"`), "api_key", `only for auth "api_key"`},
	}
	for _, c := range bad {
		got, errs := c.typ.Check(json.RawMessage(c.in))
		if got != nil || len(errs) == 0 || errs[0].Field != c.field || !strings.Contains(errs[0].Message, c.about) {
			t.Errorf("Check(%s) = %s, %v; want an error at %s about %q", c.in, got, errs, c.field, c.about)
			continue
		}
		for _, e := range errs {
			if v, _ := json.Marshal(e.Value); strings.Contains(string(v)+e.Message, secret) {
				t.Errorf("Check(%s): the error shows the secret: %v", c.in, e)
			}
		}
	}

	// A dev node (http allowed) accepts an http token URL, as it accepts such endpoint URLs.
	if _, errs := dev.Check(json.RawMessage(oauth(`,"oauth2_token_url":"http://127.0.0.1:9/token"`))); len(errs) > 0 {
		t.Errorf("a dev node refuses an http token URL: %v", errs)
	}
}

// The forms' descriptions name every auth field, the credentials as secrets.
func TestAuth_SettingsDescribed(t *testing.T) {
	t.Parallel()
	typ := devType(t)
	secrets := map[string]bool{}
	for _, s := range typ.Secrets() {
		secrets[s] = true
	}
	described := map[string]bool{}
	for _, s := range typ.Settings() {
		described[s.Name] = true
		if s.Secret != secrets[s.Name] || s.Help == "" {
			t.Errorf("setting %+v: secret %v, want %v, with help", s, s.Secret, secrets[s.Name])
		}
	}
	for _, f := range []string{"auth", "basic_username", "basic_password", "bearer_token", "api_key_header", "api_key",
		"oauth2_token_url", "oauth2_client_id", "oauth2_client_secret", "oauth2_scopes", "oauth2_audience", "oauth2_auth_style"} {
		if !described[f] {
			t.Errorf("%s is not described", f)
		}
	}
}
