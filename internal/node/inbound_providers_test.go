package node_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v84/github"
	"github.com/slack-go/slack"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	stripewebhook "github.com/stripe/stripe-go/v82/webhook"

	"github.com/heraldhq/herald/internal/inbound"
	"github.com/heraldhq/herald/internal/inbound/verify"
	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/store"
)

// provider signs deliveries the way one sender does. Every body contains "hello", which tamper
// changes.
type provider struct {
	name   string
	scheme verify.Scheme
	// newSecret makes a secret of the sender's form.
	newSecret func() string
	// deliver makes delivery id, sent at ts to url, signed with secret.
	deliver func(t *testing.T, secret, id, url string, ts time.Time) (http.Header, []byte)
	// timestamped senders sign a timestamp, so a stale one is refused.
	timestamped bool
	// idHeader is the unsigned header that carries the delivery id, when the id is not signed: a
	// captured request re-sent with a fresh one still verifies.
	idHeader string
	// sigHeader carries the signature, which is never stored.
	sigHeader string
	wantType  string
	// wantData is the event's data for a body (default: the body itself).
	wantData func(body []byte) string
	mod      func(*store.SourceSettings)
}

func sha256Mac(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

func providers() []provider {
	plainSecret := func() string { return randomHex(20) }
	return []provider{{
		name: "stripe", scheme: verify.SchemeStripe, timestamped: true, wantType: "stripe.invoice.paid", sigHeader: "Stripe-Signature",
		newSecret: func() string { return "whsec_" + randomHex(16) },
		deliver: func(t *testing.T, secret, id, _ string, ts time.Time) (http.Header, []byte) {
			body := []byte(`{"id":"evt_` + id + `","object":"event","type":"invoice.paid","data":{"object":{"id":"in_1","note":"hello"}}}`)
			sp := stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: ts})
			return http.Header{"Stripe-Signature": {sp.Header}, "Content-Type": {"application/json; charset=utf-8"}}, body
		},
	}, {
		name: "github", scheme: verify.SchemeGitHub, wantType: "github.pull_request.opened", newSecret: plainSecret,
		idHeader: "X-Github-Delivery", sigHeader: "X-Hub-Signature-256",
		deliver: func(t *testing.T, secret, id, _ string, _ time.Time) (http.Header, []byte) {
			body := []byte(`{"action":"opened","number":7,"pull_request":{"title":"hello","head":{"sha":"` + id + `"}}}`)
			// GitHub's documented formula; go-github has no signer, so its validator checks ours.
			sig := "sha256=" + hex.EncodeToString(sha256Mac([]byte(secret), body))
			h := http.Header{"X-Hub-Signature-256": {sig}, "X-Github-Event": {"pull_request"}, "X-Github-Delivery": {id},
				"Content-Type": {"application/json"}}
			r, _ := http.NewRequest("POST", "http://example.com/", bytes.NewReader(body))
			r.Header = h.Clone()
			if _, err := github.ValidatePayload(r, []byte(secret)); err != nil {
				t.Fatalf("go-github refuses our GitHub signature: %v", err)
			}
			return h, body
		},
	}, {
		name: "standard_webhooks", scheme: verify.SchemeStandardWebhooks, timestamped: true, wantType: "standard_webhooks.user.created",
		sigHeader: "Webhook-Signature",
		newSecret: func() string { return "whsec_" + base64.StdEncoding.EncodeToString([]byte(randomHex(12))) },
		deliver: func(t *testing.T, secret, id, _ string, ts time.Time) (http.Header, []byte) {
			body := []byte(`{"type":"user.created","timestamp":"2026-11-30T00:00:00Z","data":{"name":"hello"}}`)
			wh, err := standardwebhooks.NewWebhook(secret)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := wh.Sign("msg_"+id, ts, body)
			if err != nil {
				t.Fatal(err)
			}
			return http.Header{"Webhook-Id": {"msg_" + id}, "Webhook-Timestamp": {strconv.FormatInt(ts.Unix(), 10)},
				"Webhook-Signature": {sig}, "Content-Type": {"application/json"}}, body
		},
	}, {
		name: "slack", scheme: verify.SchemeSlack, timestamped: true, wantType: "slack.app_mention", newSecret: plainSecret,
		sigHeader: "X-Slack-Signature",
		deliver: func(t *testing.T, secret, id, _ string, ts time.Time) (http.Header, []byte) {
			body := []byte(`{"type":"event_callback","event_id":"Ev` + id + `","event":{"type":"app_mention","text":"hello"}}`)
			t0 := strconv.FormatInt(ts.Unix(), 10)
			sig := "v0=" + hex.EncodeToString(sha256Mac([]byte(secret), []byte("v0:"+t0+":"+string(body))))
			h := http.Header{"X-Slack-Signature": {sig}, "X-Slack-Request-Timestamp": {t0}, "Content-Type": {"application/json"}}
			if d := time.Since(ts); d < time.Minute && d > -time.Minute {
				sv, err := slack.NewSecretsVerifier(h, secret)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = sv.Write(body)
				if err := sv.Ensure(); err != nil {
					t.Fatalf("slack-go refuses our Slack signature: %v", err)
				}
			}
			return h, body
		},
	}, {
		name: "shopify", scheme: verify.SchemeShopify, wantType: "shopify.orders/create", newSecret: plainSecret,
		idHeader: "X-Shopify-Event-Id", sigHeader: "X-Shopify-Hmac-Sha256",
		deliver: func(t *testing.T, secret, id, _ string, _ time.Time) (http.Header, []byte) {
			body := []byte(`{"id":820982911946154500,"email":"hello@example.com","token":"` + id + `"}`)
			// https://shopify.dev/docs/apps/build/webhooks/subscribe/https: base64 HMAC-SHA256 of the body.
			sig := base64.StdEncoding.EncodeToString(sha256Mac([]byte(secret), body))
			return http.Header{"X-Shopify-Hmac-Sha256": {sig}, "X-Shopify-Topic": {"orders/create"}, "X-Shopify-Event-Id": {id},
				"Content-Type": {"application/json"}}, body
		},
	}, {
		name: "twilio", scheme: verify.SchemeTwilio, wantType: "twilio.message.received", newSecret: plainSecret,
		idHeader: "I-Twilio-Idempotency-Token", sigHeader: "X-Twilio-Signature",
		mod: func(s *store.SourceSettings) { s.DefaultEventType = "message.received" },
		deliver: func(t *testing.T, secret, id, u string, _ time.Time) (http.Header, []byte) {
			form := url.Values{"MessageSid": {"SM" + id}, "From": {"+15551234567"}, "To": {"+15557654321"}, "Body": {"hello there"}}
			// https://www.twilio.com/docs/usage/webhooks/webhooks-security: the URL, then each
			// POST parameter's name and value sorted by name, HMAC-SHA1 with the auth token, base64.
			keys := make([]string, 0, len(form))
			for k := range form {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			signed := u
			for _, k := range keys {
				signed += k + form.Get(k)
			}
			m := hmac.New(sha1.New, []byte(secret))
			m.Write([]byte(signed))
			return http.Header{"X-Twilio-Signature": {base64.StdEncoding.EncodeToString(m.Sum(nil))},
				"I-Twilio-Idempotency-Token": {id}, "Content-Type": {"application/x-www-form-urlencoded"}}, []byte(form.Encode())
		},
		wantData: func([]byte) string {
			return `{"Body":"hello there","From":"+15551234567","MessageSid":"SM%s","To":"+15557654321"}`
		},
	}}
}

func TestInbound_Providers(t *testing.T) {
	t.Parallel()
	receivesEveryProvider(t, nil)
}

func TestInbound_ProvidersOnPostgres(t *testing.T) {
	t.Parallel()
	receivesEveryProvider(t, onPostgres(t))
}

// receivesEveryProvider proves, for each sender, through a real node and a real endpoint: a
// genuine delivery is acknowledged and forwarded with its body as data; a tampered body, a wrong
// secret and (where signed) a stale timestamp get 401 and are stored as rejected; a repeat is
// acknowledged as a duplicate and forwarded once; during a rotation both secrets are accepted.
func receivesEveryProvider(t *testing.T, mod func(*node.Config)) {
	h := start(t, mod)
	for _, p := range providers() {
		t.Run(p.name, func(t *testing.T) {
			h := h.on(t)
			tenant := "in_" + p.name
			h.setup(tenant)
			rc := newReceiver(t, nil)
			h.endpoint(tenant, map[string]any{"url": rc.URL, "event_types": []string{"*"}})
			oldSecret, newSecret := p.newSecret(), p.newSecret()
			src := h.newSource(tenant, verify.Config{Scheme: p.scheme, Secrets: []string{oldSecret, newSecret}}, func(s *store.SourceSettings) {
				s.EventTypePrefix = p.name + "."
				if p.mod != nil {
					p.mod(s)
				}
			})
			path := "/in/" + src.Token
			target := h.node.URL() + path
			now := time.Now()

			id := randomHex(6)
			header, body := p.deliver(t, newSecret, id, target, now)
			first := h.mustIngest(200, path, header, body)
			if first.Status != "accepted" || !strings.HasPrefix(first.ID, "req_") || !strings.HasPrefix(first.EventID, "evt_") {
				t.Fatalf("answer %s", first.raw)
			}
			eventually(t, 10*time.Second, "the forwarded event", func() bool { return rc.count() == 1 })
			got := rc.events(t)[0]
			want := string(body)
			if p.wantData != nil {
				want = strings.ReplaceAll(p.wantData(body), "%s", id)
			}
			if got.ID != first.EventID || got.Type != p.wantType || string(got.Data) != want || got.Source != src.ID {
				t.Errorf("endpoint got id %s type %q source %q data %s; want %s %q %q %s", got.ID, got.Type, got.Source, got.Data,
					first.EventID, p.wantType, src.ID, want)
			}

			// The envelope names the request it came from and the sender's id of the delivery
			// (every sender here puts id in it, some with a prefix: evt_, msg_, Ev).
			if got.Inbound.RequestID != first.ID || got.Inbound.ProviderID == "" || !strings.HasSuffix(got.Inbound.ProviderID, id) {
				t.Errorf("envelope's inbound = %+v; want request %s and a provider id ending in %s", got.Inbound, first.ID, id)
			}

			// The same delivery again: acknowledged, not forwarded.
			dup := h.mustIngest(200, path, header, body)
			if dup.Status != "duplicate" || dup.DuplicateOf != first.ID || dup.EventID != "" {
				t.Errorf("repeat answered %s", dup.raw)
			}
			wantDuplicates := 1
			if p.idHeader != "" {
				// A captured request re-sent with a fresh delivery id, which nothing signs: the
				// body hash makes it a duplicate too.
				replay := header.Clone()
				replay.Set(p.idHeader, randomHex(6))
				if a := h.mustIngest(200, path, replay, body); a.Status != "duplicate" || a.DuplicateOf != first.ID || a.EventID != "" {
					t.Errorf("replay with a fresh %s answered %s", p.idHeader, a.raw)
				}
				wantDuplicates++
			}

			// Refusals.
			tamperedBody := bytes.Replace(body, []byte("hello"), []byte("howdy"), 1)
			wh, wb := p.deliver(t, p.newSecret(), randomHex(6), target, now)
			nh, nb := p.deliver(t, newSecret, randomHex(6), target, now)
			for _, c := range []struct {
				name   string
				header http.Header
				body   []byte
				reason string
			}{
				{"tampered body", header, tamperedBody, "bad_signature"},
				{"wrong secret", wh, wb, "bad_signature"},
				{"no signature", http.Header{"Content-Type": nh["Content-Type"]}, nb, "missing_signature"},
			} {
				a := h.ingest(path, c.header, c.body)
				if a.status != 401 || a.Reason != c.reason || a.header.Get("Content-Type") != "application/problem+json" {
					t.Errorf("%s: %d %s, want 401 %s", c.name, a.status, a.raw, c.reason)
				}
			}
			if p.timestamped {
				sh, sb := p.deliver(t, newSecret, randomHex(6), target, now.Add(-10*time.Minute))
				if a := h.ingest(path, sh, sb); a.status != 401 || a.Reason != "stale_timestamp" {
					t.Errorf("stale timestamp: %d %s", a.status, a.raw)
				}
				fh, fb := p.deliver(t, newSecret, randomHex(6), target, now.Add(10*time.Minute))
				if a := h.ingest(path, fh, fb); a.status != 401 || a.Reason != "future_timestamp" {
					t.Errorf("future timestamp: %d %s", a.status, a.raw)
				}
			}

			// Rotation: the old secret still verifies while both are configured.
			oh, ob := p.deliver(t, oldSecret, randomHex(6), target, now)
			if a := h.mustIngest(200, path, oh, ob); a.Status != "accepted" {
				t.Errorf("old secret during the overlap: %s", a.raw)
			}
			eventually(t, 10*time.Second, "the second event", func() bool { return rc.count() == 2 })
			stays(t, 300*time.Millisecond, "two events at the endpoint", func() bool { return rc.count() == 2 })

			// What was stored.
			var statuses []string
			for _, r := range h.receivedOf(tenant, src.ID) {
				statuses = append(statuses, string(r.Status))
				if r.Status == store.ReceiveRejected && !strings.Contains(r.Reason, "_") {
					t.Errorf("rejected without a reason: %+v", r)
				}
				if strings.Contains(r.Path, src.Token) {
					t.Errorf("stored path %q holds the token", r.Path)
				}
				if v := r.Headers.Values(p.sigHeader); (len(v) > 0 || r.Status != store.ReceiveRejected) && (len(v) != 1 || v[0] != inbound.Redacted) {
					t.Errorf("%s request stored %s: %q", r.Status, p.sigHeader, v)
				}
			}
			slices.Sort(statuses)
			wantRejected := 3
			if p.timestamped {
				wantRejected = 5
			}
			want2 := append([]string{"accepted", "accepted"}, slices.Repeat([]string{"duplicate"}, wantDuplicates)...)
			want2 = append(want2, slices.Repeat([]string{"rejected"}, wantRejected)...)
			if !slices.Equal(statuses, want2) {
				t.Errorf("stored %v, want %v", statuses, want2)
			}
		})
	}
}
