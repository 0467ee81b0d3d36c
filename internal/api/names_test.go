package api_test

import (
	"net/http"
	"testing"

	"github.com/heraldhq/herald/internal/api"
)

// Sources spell the standard standard_webhooks and endpoints' signature_format standard-webhooks:
// each field takes both spellings and answers with its own.
func TestNames_StandardWebhooksEitherSpelling(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	a.tenantKey("acme")
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "order.created"}, nil)
	for _, spelling := range []string{"standard_webhooks", "standard-webhooks"} {
		var src struct {
			Verification map[string]any `json:"verification"`
		}
		a.must(http.StatusCreated, "POST", "/v1/tenants/acme/sources", map[string]any{
			"name":         "src " + spelling,
			"verification": map[string]any{"scheme": spelling, "secrets": []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}},
		}, &src)
		if src.Verification["scheme"] != "standard_webhooks" {
			t.Errorf("source with scheme %s: verification %v, want scheme standard_webhooks", spelling, src.Verification)
		}
		var ep struct {
			SignatureFormat string `json:"signature_format"`
		}
		a.must(http.StatusCreated, "POST", "/v1/tenants/acme/endpoints", map[string]any{
			"url": "https://hooks.example.com/" + spelling, "event_types": []string{"order.created"}, "signature_format": spelling,
		}, &ep)
		if ep.SignatureFormat != "standard-webhooks" {
			t.Errorf("endpoint with signature_format %s: answers %q, want standard-webhooks", spelling, ep.SignatureFormat)
		}
	}
	// Other misspellings are still refused, naming the field.
	ans := a.do(a.admin, "POST", "/v1/tenants/acme/endpoints", map[string]any{
		"url": "https://hooks.example.com/x", "event_types": []string{"order.created"}, "signature_format": "standardwebhooks",
	})
	if ans.status != http.StatusUnprocessableEntity {
		t.Fatalf("%d %.300s, want 422", ans.status, ans.body)
	}
	if _, ok := ans.problem(t).find("body.signature_format"); !ok {
		t.Errorf("no error at body.signature_format: %.300s", ans.body)
	}
}
