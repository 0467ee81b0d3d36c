package webhook_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/destination/webhook"
	"github.com/heraldhq/herald/internal/destination/webhook/oauth2test"
	"github.com/heraldhq/herald/internal/httpsend"
)

const (
	clientID     = "herald-sender"
	clientSecret = "cs-0123456789-abcdefghij"
)

// authServer is the real authorization server and its receiver.
type authServer struct{ *oauth2test.Server }

func newAuthServer(t *testing.T, tokenLife time.Duration) authServer {
	return authServer{oauth2test.New(t, clientID, clientSecret, tokenLife)}
}

// settings are the endpoint's oauth2 settings for this server, with extra fields.
func (a authServer) settings(extra map[string]any) json.RawMessage {
	m := map[string]any{"auth": "oauth2", "oauth2_token_url": a.TokenURL, "oauth2_client_id": clientID, "oauth2_client_secret": clientSecret}
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return b
}

// devType is the webhook type of a node in dev mode (http and loopback allowed), as tests run.
func devType(t *testing.T) *webhook.Type {
	typ := webhook.New(httpsend.New(httpsend.Config{AllowHTTP: true, AllowLoopback: true}), nil)
	t.Cleanup(func() { _ = typ.Close() })
	return typ
}

// open checks the settings as the API does and opens a sender for the endpoint.
func open(t *testing.T, typ *webhook.Type, url string, settings json.RawMessage) destination.Sender {
	t.Helper()
	checked, errs := typ.Check(settings)
	if len(errs) > 0 {
		t.Fatalf("Check(%s): %v", settings, errs)
	}
	s, err := typ.Open(destination.Target{EndpointID: "ep_auth", URL: url, Settings: checked})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func send(s destination.Sender, id string) destination.Outcome {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return s.Send(ctx, &destination.Message{ID: id, Body: []byte(`{"n":1}`), Header: http.Header{"Webhook-Id": {id}}})
}

// One token, fetched with the configured scopes, audience and client authentication, serves
// every delivery until it nears its expiry.
func TestOAuth2_TokenFetchedOnceAndReused(t *testing.T) {
	t.Parallel()
	for _, style := range []string{"basic", "body"} {
		t.Run(style, func(t *testing.T) {
			t.Parallel()
			a := newAuthServer(t, time.Hour)
			s := open(t, devType(t), a.ReceiverURL, a.settings(map[string]any{
				"oauth2_scopes": []string{"webhooks:write", "events"}, "oauth2_audience": "https://receiver.example", "oauth2_auth_style": style}))
			for i := range 10 {
				if o := send(s, "evt_"+string(rune('a'+i))); o.Class != destination.Success {
					t.Fatalf("send %d: %+v", i, o)
				}
			}
			if n := a.Fetches.Load(); n != 1 {
				t.Fatalf("%d token requests for 10 deliveries, want 1", n)
			}
			if a.Accepted.Load() != 10 {
				t.Fatalf("the receiver accepted %d deliveries, want 10", a.Accepted.Load())
			}
			forms, styles := a.Requests()
			form := forms[0]
			if form.Get("grant_type") != "client_credentials" || form.Get("scope") != "webhooks:write events" ||
				form.Get("audience") != "https://receiver.example" || styles[0] != style {
				t.Fatalf("token request %v with client authentication %s; want scopes, audience and %s", form, styles[0], style)
			}
			if (style == "body") != (form.Get("client_secret") == clientSecret) {
				t.Fatalf("client_secret in the form = %v with auth style %s", form.Has("client_secret"), style)
			}
			if sc := a.Scopes(); sc[0] != "webhooks:write events" {
				t.Fatalf("the token's scope is %q", sc[0])
			}
		})
	}
}

// Concurrent attempts of an endpoint with no token yet wait for one fetch instead of each
// asking the authorization server.
func TestOAuth2_ConcurrentAttemptsShareOneFetch(t *testing.T) {
	t.Parallel()
	a := newAuthServer(t, time.Hour)
	a.SetDelay(300 * time.Millisecond) // a slow token URL, so that the attempts overlap the fetch
	s := open(t, devType(t), a.ReceiverURL, a.settings(nil))
	const n = 32
	var wg sync.WaitGroup
	outcomes := make([]destination.Outcome, n)
	for i := range n {
		wg.Go(func() { outcomes[i] = send(s, "evt_c") })
	}
	wg.Wait()
	for i, o := range outcomes {
		if o.Class != destination.Success {
			t.Fatalf("attempt %d: %+v", i, o)
		}
	}
	if got := a.Fetches.Load(); got != 1 {
		t.Fatalf("%d token requests for %d concurrent attempts, want 1", got, n)
	}
}

// A token is replaced before it expires: the receiver never sees an expired one.
func TestOAuth2_TokenRefreshedBeforeExpiry(t *testing.T) {
	t.Parallel()
	a := newAuthServer(t, time.Second)
	s := open(t, devType(t), a.ReceiverURL, a.settings(nil))
	if o := send(s, "evt_1"); o.Class != destination.Success {
		t.Fatalf("first send: %+v", o)
	}
	time.Sleep(1100 * time.Millisecond) // the token has expired at the authorization server
	if o := send(s, "evt_2"); o.Class != destination.Success {
		t.Fatalf("send after expiry: %+v", o)
	}
	if f, r := a.Fetches.Load(), a.Received.Load(); f != 2 || r != 2 {
		t.Fatalf("%d token requests and %d requests at the receiver; want a new token and no refused request", f, r)
	}
}

// A 401 drops the token (here revoked at the authorization server) and the attempt is sent once
// more with a new one; a receiver that refuses the new one too gets no third request.
func TestOAuth2_401FetchesANewTokenOnceAndRetries(t *testing.T) {
	t.Parallel()
	a := newAuthServer(t, time.Hour)
	s := open(t, devType(t), a.ReceiverURL, a.settings(nil))
	if o := send(s, "evt_1"); o.Class != destination.Success {
		t.Fatalf("first send: %+v", o)
	}
	a.Revoke(t)
	o := send(s, "evt_2")
	if o.Class != destination.Success || a.Fetches.Load() != 2 || a.Received.Load() != 3 {
		t.Fatalf("after revocation: %+v with %d token requests and %d received; want success with a second token",
			o, a.Fetches.Load(), a.Received.Load())
	}

	a.RefuseAll()
	o = send(s, "evt_3")
	if o.Class == destination.Success || o.StatusCode != http.StatusUnauthorized || o.ErrorKind != destination.KindAuth ||
		!strings.Contains(o.Error, "401") {
		t.Fatalf("a receiver refusing every token: %+v; want a failed attempt of kind auth_failed", o)
	}
	if f, r := a.Fetches.Load(), a.Received.Load(); f != 3 || r != 5 {
		t.Fatalf("%d token requests and %d received; want one more token and two more requests", f, r)
	}
}

// A token that cannot be had is the attempt's outcome, of kind auth_failed, and nothing reaches
// the receiver: Retryable when the token URL is down or refuses the client (a rotation may be
// under way), Permanent when the guard refuses the token URL. No error text holds the secret.
func TestOAuth2_TokenFailuresAreAuthFailed(t *testing.T) {
	t.Parallel()
	a := newAuthServer(t, time.Hour)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String() + "/token"
	_ = ln.Close()
	redirected := atomic.Int64{}
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirected.Add(1)
		a.HandleTokenRequest(w, r)
	}))
	t.Cleanup(elsewhere.Close)
	redirector := httptest.NewServer(http.RedirectHandler(elsewhere.URL+"/token", http.StatusTemporaryRedirect))
	t.Cleanup(redirector.Close)

	production := webhook.New(httpsend.New(httpsend.Config{AllowHTTP: true}), nil) // loopback refused
	t.Cleanup(func() { _ = production.Close() })

	cases := []struct {
		name     string
		typ      *webhook.Type
		settings map[string]any
		class    destination.Class
		says     string
	}{
		{"token URL down", devType(t), map[string]any{"oauth2_token_url": down}, destination.Retryable, "connection refused"},
		{"client refused", devType(t), map[string]any{"oauth2_client_secret": "wrong-" + clientSecret}, destination.Retryable, "401 invalid_client"},
		{"redirect not followed", devType(t), map[string]any{"oauth2_token_url": redirector.URL + "/token"}, destination.Retryable, "307"},
		{"token URL blocked by the guard", production, map[string]any{"oauth2_token_url": "http://localhost:1/token"}, destination.Permanent, "not allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			settings := a.settings(c.settings)
			var m map[string]any
			_ = json.Unmarshal(settings, &m)
			// Opened as the dispatcher does, with settings as stored (Check may refuse some here).
			s, err := c.typ.Open(destination.Target{EndpointID: "ep_fail", URL: a.ReceiverURL, Settings: settings})
			if err != nil {
				t.Fatal(err)
			}
			before := a.Received.Load()
			o := send(s, "evt_f")
			if o.Class != c.class || o.ErrorKind != destination.KindAuth || o.StatusCode != 0 || !strings.Contains(o.Error, c.says) {
				t.Fatalf("outcome %+v; want %s auth_failed saying %q", o, c.class, c.says)
			}
			secret, _ := m["oauth2_client_secret"].(string)
			if strings.Contains(o.Error, secret) || strings.Contains(o.Error, clientSecret) {
				t.Fatalf("the error shows the client secret: %s", o.Error)
			}
			if a.Received.Load() != before {
				t.Fatal("the receiver got a request without a token")
			}
		})
	}
	if redirected.Load() != 0 {
		t.Fatal("the token request followed a redirect")
	}
}

// A new sender opened with rotated client credentials (as the dispatcher does after an
// update) fetches its own token with them, while the one opened before keeps delivering with the
// token it holds: no delivery fails across the rotation.
func TestOAuth2_ClientSecretRotation(t *testing.T) {
	t.Parallel()
	a := newAuthServer(t, time.Hour)
	typ := devType(t)
	old := open(t, typ, a.ReceiverURL, a.settings(nil))
	if o := send(old, "evt_1"); o.Class != destination.Success {
		t.Fatalf("before rotation: %+v", o)
	}
	const rotated = "cs-rotated-9876543210"
	a.SetClient(t, clientID, rotated)
	if o := send(old, "evt_2"); o.Class != destination.Success {
		t.Fatalf("the sender opened before the rotation, with its token: %+v", o)
	}
	s := open(t, typ, a.ReceiverURL, a.settings(map[string]any{"oauth2_client_secret": rotated}))
	if o := send(s, "evt_3"); o.Class != destination.Success || a.Fetches.Load() != 2 {
		t.Fatalf("the sender with the rotated secret: %+v after %d token requests", o, a.Fetches.Load())
	}
}
