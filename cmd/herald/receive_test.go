package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// The README's walkthrough: herald serve --dev, herald receive --secret, publish, see it verified.
func TestReceive_WalkthroughVerifiesSignatures(t *testing.T) {
	needBinary(t)
	t.Parallel()
	p := serve(t, "serve", t.TempDir(), []string{"HERALD_API_KEY=" + testKey}, "--dev")
	p.must("POST", "/v1/tenants", testKey, map[string]any{"id": "acme", "name": "Acme Inc"}, http.StatusCreated, nil)
	p.must("POST", "/v1/event-types", testKey, map[string]any{"name": "invoice.paid"}, http.StatusCreated, nil)
	rcvAddr := freeAddr(t)
	var ep struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	p.must("POST", "/v1/tenants/acme/endpoints", testKey, map[string]any{"url": "http://" + rcvAddr + "/webhooks", "event_types": []string{"invoice.*"}}, http.StatusCreated, &ep)
	rcv := run(t, "receive", nil, "receive", "--addr", rcvAddr, "--secret", ep.Secret)
	waitFor(t, 10*time.Second, "the receiver to listen", func() bool { return strings.Contains(rcv.stdout.String(), "receiving webhooks") }, rcv)
	var pub struct {
		ID string `json:"id"`
	}
	p.must("POST", "/v1/tenants/acme/events", testKey, map[string]any{"type": "invoice.paid", "data": map[string]any{"amount": 1200}}, http.StatusAccepted, &pub)
	waitFor(t, 10*time.Second, "the receiver to print the webhook", func() bool {
		return strings.Contains(rcv.stdout.String(), pub.ID+" invoice.paid signature ok -> 204")
	}, rcv)
	if !strings.Contains(rcv.stdout.String(), `"amount":1200`) {
		t.Fatalf("the body was not printed:\n%s", rcv.stdout.String())
	}

	// A receiver with another secret refuses the signature with 401, which Herald records.
	other := freeAddr(t)
	bad := run(t, "receive-bad", nil, "receive", "--addr", other, "--secret", newSecret(t))
	waitFor(t, 10*time.Second, "the second receiver to listen", func() bool { return strings.Contains(bad.stdout.String(), "receiving webhooks") }, bad)
	p.must("PATCH", "/v1/tenants/acme/endpoints/"+ep.ID, testKey, map[string]any{"url": "http://" + other + "/webhooks"}, http.StatusOK, nil)
	p.must("POST", "/v1/tenants/acme/events", testKey, map[string]any{"type": "invoice.paid", "data": map[string]any{}}, http.StatusAccepted, &pub)
	waitFor(t, 10*time.Second, "the bad signature to be refused", func() bool {
		return strings.Contains(bad.stdout.String(), pub.ID+" invoice.paid signature INVALID")
	}, bad)
}
