package webhook_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/destination/webhook"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/store"
)

// sdkReceiver answers OPTIONS with the official CloudEvents SDK's handshake handler (allowed
// origins, rate per minute) and counts requests by method.
type sdkReceiver struct {
	*httptest.Server
	mu      sync.Mutex
	methods []string
	origins []string
}

func newSDKReceiver(t *testing.T, origins []string, rate int) *sdkReceiver {
	t.Helper()
	p, err := cehttp.New(cehttp.WithDefaultOptionsHandlerFunc([]string{http.MethodPost}, rate, origins, false))
	if err != nil {
		t.Fatal(err)
	}
	rc := &sdkReceiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		rc.methods = append(rc.methods, r.Method)
		rc.origins = append(rc.origins, r.Header.Get(webhook.HeaderRequestOrigin))
		rc.mu.Unlock()
		if r.Method == http.MethodOptions {
			p.OptionsHandler(w, r)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *sdkReceiver) seen() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.methods...)
}

func sendOne(t *testing.T, s destination.Sender) destination.Outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Send(ctx, &destination.Message{ID: "evt_1", Body: []byte(`{}`), Header: http.Header{}})
}

// A CloudEvents endpoint is sent OPTIONS once, before its first delivery; the answer is kept
// until the TTL passes; the allowed rate (per minute) becomes the sender's AllowedRate (per
// second). A Herald-format endpoint gets no handshake.
func TestHandshake_OnceBeforeTheFirstDeliveryThenAfterTheTTL(t *testing.T) {
	t.Parallel()
	client := httpsend.New(httpsend.Config{AllowHTTP: true, AllowLoopback: true})
	typ := webhook.New(client, nil, webhook.WithHandshakeOrigin("herald.example"), webhook.WithHandshakeTTL(300*time.Millisecond))
	rc := newSDKReceiver(t, []string{"herald.example"}, 120)

	s, err := typ.Open(destination.Target{EndpointID: "ep_1", URL: rc.URL, Format: store.FormatCloudEventsStructured})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if out := sendOne(t, s); out.Class != destination.Success {
			t.Fatalf("outcome %+v", out)
		}
	}
	if got := strings.Join(rc.seen(), ","); got != "OPTIONS,POST,POST,POST" {
		t.Errorf("requests %s, want one OPTIONS before the POSTs", got)
	}
	if rc.origins[0] != "herald.example" {
		t.Errorf("WebHook-Request-Origin %q", rc.origins[0])
	}
	if r := s.(destination.RateAdvisor).AllowedRate(); r != 2 {
		t.Errorf("AllowedRate %v, want 2 per second (120 per minute)", r)
	}
	time.Sleep(400 * time.Millisecond) // past the TTL
	if out := sendOne(t, s); out.Class != destination.Success {
		t.Fatalf("outcome %+v", out)
	}
	if got := strings.Join(rc.seen(), ","); got != "OPTIONS,POST,POST,POST,OPTIONS,POST" {
		t.Errorf("requests %s, want the handshake again after the TTL", got)
	}

	plain := newSDKReceiver(t, []string{"*"}, 0)
	s, err = typ.Open(destination.Target{EndpointID: "ep_2", URL: plain.URL, Format: store.FormatHerald})
	if err != nil {
		t.Fatal(err)
	}
	if out := sendOne(t, s); out.Class != destination.Success || strings.Join(plain.seen(), ",") != "POST" {
		t.Errorf("herald format: %+v, requests %v; want one POST and no handshake", out, plain.seen())
	}
}

// A receiver that allows another origin, answers without WebHook-Allowed-Origin or with an
// unreadable rate, or does not answer, gets nothing: the outcome says why, retryable.
func TestHandshake_Refusals(t *testing.T) {
	t.Parallel()
	client := httpsend.New(httpsend.Config{AllowHTTP: true, AllowLoopback: true})
	typ := webhook.New(client, nil, webhook.WithHandshakeOrigin("herald.example"))
	handler := func(status int, header map[string]string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodOptions {
				t.Errorf("%s sent after a refused handshake", r.Method)
			}
			for k, v := range header {
				w.Header().Set(k, v)
			}
			w.WriteHeader(status)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	sdkOther := newSDKReceiver(t, []string{"someone-else.example"}, 0)
	closed := handler(200, nil)
	closed.Close()
	for _, c := range []struct {
		name, url, kind, reason string
	}{
		{"sdk, other origin", sdkOther.URL, destination.KindHandshake, "answered 400"},
		{"405", handler(405, nil).URL, destination.KindHandshake, "answered 405"},
		{"no allowed origin", handler(200, nil).URL, destination.KindHandshake, "no WebHook-Allowed-Origin"},
		{"other origin", handler(200, map[string]string{"WebHook-Allowed-Origin": "evil.example"}).URL, destination.KindHandshake, `"evil.example"`},
		{"bad rate", handler(200, map[string]string{"WebHook-Allowed-Origin": "*", "WebHook-Allowed-Rate": "fast"}).URL, destination.KindHandshake, "fast"},
		{"unreachable", closed.URL, destination.KindConnRefused, "cloudevents handshake"},
	} {
		s, err := typ.Open(destination.Target{EndpointID: "ep", URL: c.url, Format: store.FormatCloudEventsBinary})
		if err != nil {
			t.Fatal(err)
		}
		out := sendOne(t, s)
		if out.Class != destination.Retryable || out.ErrorKind != c.kind || !strings.Contains(out.Error, c.reason) {
			t.Errorf("%s: outcome %+v, want retryable %s mentioning %q", c.name, out, c.kind, c.reason)
		}
	}
	if methods := sdkOther.seen(); len(methods) != 1 || methods[0] != http.MethodOptions {
		t.Errorf("the SDK receiver saw %v, want only the handshake", methods)
	}
}

// The handshake carries the endpoint's credentials, as its deliveries do: a receiver whose
// gateway refuses unauthenticated requests still agrees.
func TestHandshake_CarriesTheEndpointsCredentials(t *testing.T) {
	t.Parallel()
	const token = "tok_handshake_0123456789"
	p, err := cehttp.New(cehttp.WithDefaultOptionsHandlerFunc([]string{http.MethodPost}, 0, []string{"herald.example"}, false))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodOptions {
			p.OptionsHandler(w, r)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rc.Close)
	client := httpsend.New(httpsend.Config{AllowHTTP: true, AllowLoopback: true})
	typ := webhook.New(client, nil, webhook.WithHandshakeOrigin("herald.example"))
	settings, ferrs := typ.Check([]byte(`{"auth":"bearer","bearer_token":"` + token + `"}`))
	if len(ferrs) > 0 {
		t.Fatal(ferrs[0])
	}
	s, err := typ.Open(destination.Target{EndpointID: "ep_1", URL: rc.URL, Settings: settings, Format: store.FormatCloudEventsBinary})
	if err != nil {
		t.Fatal(err)
	}
	if out := sendOne(t, s); out.Class != destination.Success {
		t.Fatalf("outcome %+v", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"OPTIONS Bearer " + token, "POST Bearer " + token}; strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Errorf("the receiver saw %q, want %q", seen, want)
	}
}
