package verify_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/inbound/verify"
)

func TestVerifier_Event(t *testing.T) {
	t.Parallel()
	jsonCT := http.Header{"Content-Type": {"application/json"}}
	formCT := "application/x-www-form-urlencoded"
	tests := []struct {
		name   string
		cfg    verify.Config
		header http.Header
		body   string
		want   verify.Event
	}{
		{
			name:   "github with action",
			cfg:    verify.Config{Scheme: verify.SchemeGitHub},
			header: http.Header{"X-Github-Event": {"pull_request"}, "X-Github-Delivery": {"72d3162e-cc78-11e3-81ab-4c9367dc0958"}},
			body:   `{"action":"opened","number":1}`,
			want:   verify.Event{Type: "pull_request.opened", ID: "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		},
		{
			name:   "github without action",
			cfg:    verify.Config{Scheme: verify.SchemeGitHub},
			header: http.Header{"X-Github-Event": {"push"}, "X-Github-Delivery": {"d1"}},
			body:   `{"ref":"refs/heads/main"}`,
			want:   verify.Event{Type: "push", ID: "d1"},
		},
		{
			name:   "github form content type",
			cfg:    verify.Config{Scheme: verify.SchemeGitHub},
			header: http.Header{"X-Github-Event": {"issues"}, "X-Github-Delivery": {"d2"}, "Content-Type": {formCT}},
			body:   url.Values{"payload": {`{"action":"closed"}`}}.Encode(),
			want:   verify.Event{Type: "issues.closed", ID: "d2"},
		},
		{
			name: "stripe",
			cfg:  verify.Config{Scheme: verify.SchemeStripe},
			body: `{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"invoice.paid"}`,
			want: verify.Event{Type: "invoice.paid", ID: "evt_1NG8Du2eZvKYlo2CUI79vXWy"},
		},
		{
			name:   "shopify prefers the event id",
			cfg:    verify.Config{Scheme: verify.SchemeShopify},
			header: http.Header{"X-Shopify-Topic": {"orders/create"}, "X-Shopify-Event-Id": {"ev-1"}, "X-Shopify-Webhook-Id": {"wh-1"}},
			body:   `{}`,
			want:   verify.Event{Type: "orders/create", ID: "ev-1"},
		},
		{
			name:   "shopify falls back to the webhook id",
			cfg:    verify.Config{Scheme: verify.SchemeShopify},
			header: http.Header{"X-Shopify-Topic": {"orders/create"}, "X-Shopify-Webhook-Id": {"wh-1"}},
			want:   verify.Event{Type: "orders/create", ID: "wh-1"},
		},
		{
			name: "slack event callback",
			cfg:  verify.Config{Scheme: verify.SchemeSlack},
			body: `{"type":"event_callback","event_id":"Ev08MFMKH6","event":{"type":"app_mention","text":"hi"}}`,
			want: verify.Event{Type: "app_mention", ID: "Ev08MFMKH6"},
		},
		{
			name: "slack url verification",
			cfg:  verify.Config{Scheme: verify.SchemeSlack},
			body: `{"type":"url_verification","challenge":"abc"}`,
			want: verify.Event{Type: "url_verification"},
		},
		{
			name:   "slack interactivity form",
			cfg:    verify.Config{Scheme: verify.SchemeSlack},
			header: http.Header{"Content-Type": {formCT}},
			body:   url.Values{"payload": {`{"type":"block_actions"}`}}.Encode(),
			want:   verify.Event{Type: "block_actions"},
		},
		{
			name:   "standard webhooks",
			cfg:    verify.Config{Scheme: verify.SchemeStandardWebhooks},
			header: http.Header{"Webhook-Id": {"msg_1"}},
			body:   `{"type":"invoice.paid","data":{}}`,
			want:   verify.Event{Type: "invoice.paid", ID: "msg_1"},
		},
		{
			name:   "svix",
			cfg:    verify.Config{Scheme: verify.SchemeStandardWebhooks},
			header: http.Header{"Svix-Id": {"msg_2"}},
			body:   `{"type":"user.created"}`,
			want:   verify.Event{Type: "user.created", ID: "msg_2"},
		},
		{
			name:   "twilio idempotency token",
			cfg:    verify.Config{Scheme: verify.SchemeTwilio},
			header: http.Header{"I-Twilio-Idempotency-Token": {"tok-1"}, "Content-Type": {formCT}},
			body:   "MessageSid=SM1&MessageStatus=delivered",
			want:   verify.Event{ID: "tok-1"},
		},
		{
			name:   "twilio with a form field as type",
			cfg:    verify.Config{Scheme: verify.SchemeTwilio, EventTypePath: "MessageStatus"},
			header: http.Header{"Content-Type": {formCT}},
			body:   "MessageSid=SM1&MessageStatus=delivered",
			want:   verify.Event{Type: "delivered"},
		},
		{
			name:   "generic from headers",
			cfg:    verify.Config{Scheme: verify.SchemeHMAC, Header: "X-Sig", EventTypeHeader: "X-Event", EventIDHeader: "X-Delivery"},
			header: http.Header{"X-Event": {"build.finished"}, "X-Delivery": {"b-9"}},
			want:   verify.Event{Type: "build.finished", ID: "b-9"},
		},
		{
			name: "generic from nested paths",
			cfg:  verify.Config{Scheme: verify.SchemeBearer, EventTypePath: "meta.kind", EventIDPath: "items.1.id"},
			body: `{"meta":{"kind":"order.shipped"},"items":[{"id":1},{"id":12345678901234567890}]}`,
			want: verify.Event{Type: "order.shipped", ID: "12345678901234567890"},
		},
		{
			name:   "header wins over path; path when header absent",
			cfg:    verify.Config{Scheme: verify.SchemeNone, EventTypeHeader: "X-Event", EventTypePath: "type", EventIDHeader: "X-Id", EventIDPath: "id"},
			header: http.Header{"X-Event": {"from.header"}},
			body:   `{"type":"from.body","id":"from-body"}`,
			want:   verify.Event{Type: "from.header", ID: "from-body"},
		},
		{
			name:   "override replaces the provider rule",
			cfg:    verify.Config{Scheme: verify.SchemeStripe, EventIDHeader: "Idempotency-Key"},
			header: http.Header{"Idempotency-Key": {"k1"}},
			body:   `{"id":"evt_1","type":"charge.succeeded"}`,
			want:   verify.Event{Type: "charge.succeeded", ID: "k1"},
		},
		{
			name: "non-string values, missing paths and bad JSON give nothing",
			cfg:  verify.Config{Scheme: verify.SchemeHMAC, Header: "X-Sig", EventTypePath: "type", EventIDPath: "a.b.c"},
			body: `{"type":{"nested":true},"a":[1]}`,
		},
		{
			name: "body not JSON",
			cfg:  verify.Config{Scheme: verify.SchemeStripe},
			body: `not json`,
		},
		{
			name: "oversized value is dropped",
			cfg:  verify.Config{Scheme: verify.SchemeStripe},
			body: `{"type":"` + strings.Repeat("x", 300) + `","id":"evt_ok"}`,
			want: verify.Event{ID: "evt_ok"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			cfg.Secrets = secretsFor(cfg)
			v := mustNew(t, cfg)
			h := tt.header
			if h == nil {
				h = jsonCT.Clone()
			}
			got := v.Event(newRequest(http.MethodPost, sourceURL, h, []byte(tt.body)))
			if got != tt.want {
				t.Errorf("Event = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// secretsFor returns a valid secret for a scheme, so extraction tests can
// build a Verifier.
func secretsFor(cfg verify.Config) []string {
	switch cfg.Scheme {
	case verify.SchemeNone:
		return nil
	case verify.SchemeStandardWebhooks:
		return []string{swSecrets[0]}
	case verify.SchemeStripe:
		return []string{stripeSecrets[0]}
	case verify.SchemeBasic:
		return []string{basicCreds[0]}
	}
	return []string{plainSecrets[0]}
}

func TestPayloadValue(t *testing.T) {
	t.Parallel()
	jsonReq := &verify.Request{Header: http.Header{"Content-Type": {"application/json"}},
		Body: []byte(`{"data":{"object":{"id":"in_1","n":12.5,"list":["a","b"]}},"ok":true}`)}
	formReq := &verify.Request{Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		Body: []byte("MessageSid=SM1&payload=x")}
	for _, c := range []struct {
		req        *verify.Request
		path, want string
	}{
		{jsonReq, "data.object.id", "in_1"},
		{jsonReq, "data.object.n", "12.5"},
		{jsonReq, "data.object.list.1", "b"},
		{jsonReq, "data.object.list.2", ""},
		{jsonReq, "ok", ""}, // not a string or number
		{jsonReq, "data.missing", ""},
		{formReq, "MessageSid", ""}, // a "payload" field is read as the JSON payload
		{&verify.Request{Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, Body: []byte("MessageSid=SM1")}, "MessageSid", "SM1"},
		{&verify.Request{Body: []byte("not json")}, "a", ""},
	} {
		if got := verify.PayloadValue(c.req, c.path); got != c.want {
			t.Errorf("PayloadValue(%s, %q) = %q, want %q", c.req.Body, c.path, got, c.want)
		}
	}
}
