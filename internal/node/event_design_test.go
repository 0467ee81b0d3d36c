package node_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v84/github"
	stripewebhook "github.com/stripe/stripe-go/v82/webhook"

	"github.com/heraldhq/herald/webhook"
)

// at is the message of the problem's error at location ("" if none).
func (p problem) at(location string) string {
	for _, e := range p.Errors {
		if e.Location == location {
			return e.Message
		}
	}
	return ""
}

func TestFilters_OnlyMatchingEventsCreateDeliveries(t *testing.T) {
	h := start(t, nil)
	h.setup("acme", "invoice.paid")
	rcBig := newReceiver(t, nil)
	rcAll := newReceiver(t, nil)
	big := h.endpoint("acme", map[string]any{"url": rcBig.URL, "event_types": []string{"invoice.paid"},
		"filter": `data.amount > 1000 && data.currency == "EUR"`})
	h.endpoint("acme", map[string]any{"url": rcAll.URL, "event_types": []string{"invoice.paid"}})

	var bad problem
	if code := h.call("PATCH", "/v1/tenants/acme/endpoints/"+big.ID, map[string]any{"filter": `data.amount >`}, &bad); code != 422 || bad.at("body.filter") == "" {
		t.Fatalf("invalid filter: %d %+v, want 422 at body.filter", code, bad)
	}
	if code := h.call("PATCH", "/v1/tenants/acme/endpoints/"+big.ID, map[string]any{"filter": `data.amount + 1`}, &bad); code != 422 || bad.at("body.filter") == "" {
		t.Fatalf("non-boolean filter: %d %+v, want 422 at body.filter", code, bad)
	}

	want := []int{2, 1, 1, 1}
	for i, data := range []map[string]any{
		{"amount": 1500, "currency": "EUR"},
		{"amount": 500, "currency": "EUR"},
		{"amount": 1500, "currency": "USD"},
		{"currency": "EUR"},
	} {
		p := h.publish("acme", map[string]any{"type": "invoice.paid", "data": data})
		if p.Deliveries != want[i] {
			t.Errorf("event %d: %d deliveries, want %d", i, p.Deliveries, want[i])
		}
	}
	eventually(t, 5*time.Second, "4 deliveries to the unfiltered endpoint", func() bool { return rcAll.count() == 4 })
	eventually(t, 5*time.Second, "1 delivery to the filtered endpoint", func() bool { return rcBig.count() == 1 })
	time.Sleep(200 * time.Millisecond) // anything else would have been sent with the others
	got := rcBig.got()
	if len(got) != 1 || !strings.Contains(string(got[0].body), `"amount":1500,"currency":"EUR"`) {
		t.Fatalf("filtered endpoint got %d requests: %s", len(got), got[0].body)
	}
}

func TestTransform_ReshapesTheSignedBody(t *testing.T) {
	h := start(t, nil)
	h.setup("acme")
	h.must(201, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid", "description": "paid",
		"schema": map[string]any{"type": "object", "required": []string{"id", "amount"}, "properties": map[string]any{
			"id": map[string]any{"type": "string", "examples": []string{"inv_1"}}, "amount": map[string]any{"type": "integer"},
			"customer": map[string]any{"type": "object", "properties": map[string]any{"email": map[string]any{"type": "string"}}}}}}, nil)
	rc := newReceiver(t, nil)

	// Tested when saved against the type's example: a transformation that fails on it is refused.
	var bad problem
	code := h.call("POST", "/v1/tenants/acme/endpoints", map[string]any{"url": rc.URL, "event_types": []string{"invoice.*"},
		"transform": `{"total": data.missing.amount}`}, &bad)
	if msg := bad.at("body.transform"); code != 422 || !strings.Contains(msg, "invoice.paid") {
		t.Fatalf("transformation failing on the example: %d %+v, want 422 at body.transform naming invoice.paid", code, bad)
	}
	code = h.call("POST", "/v1/tenants/acme/endpoints", map[string]any{"url": rc.URL, "event_types": []string{"invoice.*"},
		"transform": `{"total": `}, &bad)
	if code != 422 || bad.at("body.transform") == "" {
		t.Fatalf("transformation that does not compile: %d %+v", code, bad)
	}

	ep := h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"invoice.*"}, "retry_schedule": []int{0, 0, 0},
		"transform": `{"kind": type, "invoice": data.id, "total": data.amount, "email": data.?customer.?email.orValue("none"), "version": 2}`})
	var shown struct {
		Transform string `json:"transform"`
	}
	h.must(200, "GET", "/v1/tenants/acme/endpoints/"+ep.ID, nil, &shown)
	if !strings.Contains(shown.Transform, `"kind": type`) {
		t.Fatalf("endpoint shows transform %q", shown.Transform)
	}
	p := h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{"id": "inv_9", "amount": 1200, "customer": map[string]any{"email": "a@example.com"}}})
	eventually(t, 5*time.Second, "the transformed delivery", func() bool { return rc.count() == 1 })
	r := rc.got()[0]
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	want := map[string]any{"kind": "invoice.paid", "invoice": "inv_9", "total": float64(1200), "email": "a@example.com", "version": float64(2)}
	if len(body) != len(want) {
		t.Fatalf("body %s, want %v", r.body, want)
	}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("body[%s] = %v, want %v (body %s)", k, body[k], v, r.body)
		}
	}
	v, err := webhook.NewVerifier(ep.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(r.body, r.header); err != nil {
		t.Errorf("the transformed body's signature: %v", err)
	}
	if r.header.Get("webhook-id") != p.ID {
		t.Errorf("webhook-id %q, want the event id %s", r.header.Get("webhook-id"), p.ID)
	}
}

func TestTransform_FailureIsARecordedAttemptNotACrash(t *testing.T) {
	h := start(t, nil)
	h.setup("acme", "order.created")
	rc := newReceiver(t, nil)
	// The type has no schema: its example is empty data, on which this transformation works.
	h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"order.created"}, "retry_schedule": []int{0, 0, 0},
		"transform": `{"n": int(data.?n.orValue(0)) * 2}`})
	bad := h.publish("acme", map[string]any{"type": "order.created", "data": map[string]any{"n": "not a number"}})
	good := h.publish("acme", map[string]any{"type": "order.created", "data": map[string]any{"n": 21}})
	eventually(t, 5*time.Second, "the good event", func() bool { return rc.count() == 1 })
	if string(rc.got()[0].body) != `{"n":42}` {
		t.Fatalf("good event body %s", rc.got()[0].body)
	}
	var dead []deliveryOut
	eventually(t, 10*time.Second, "the failing delivery dead after its tries", func() bool {
		dead = h.deliveries("/v1/tenants/acme/deliveries?state=dead")
		return len(dead) == 1
	})
	if dead[0].EventID != bad.ID {
		t.Fatalf("dead delivery %+v, want the bad event's", dead[0])
	}
	var attempts struct {
		Data []attemptOut `json:"data"`
	}
	h.must(200, "GET", "/v1/tenants/acme/attempts?event_id="+bad.ID, nil, &attempts)
	if len(attempts.Data) != 3 {
		t.Fatalf("%d attempts recorded for the failing transformation, want 3 (permanent failures are tried 3 times)", len(attempts.Data))
	}
	for _, a := range attempts.Data {
		if a.ErrorKind != "transform_failed" || a.StatusCode != 0 || !strings.Contains(a.Error, "transformation failed") {
			t.Errorf("attempt %+v, want error_kind transform_failed and no status", a)
		}
	}
	if rc.count() != 1 {
		t.Errorf("the receiver got %d requests; a failed transformation must send nothing", rc.count())
	}
	if ok := h.deliveries("/v1/tenants/acme/deliveries?state=succeeded"); len(ok) != 1 || ok[0].EventID != good.ID {
		t.Errorf("succeeded deliveries %+v, want the good event's", ok)
	}
}

func TestSignatureFormats_VerifiedByTheProvidersOwnLibraries(t *testing.T) {
	h := start(t, nil)
	h.setup("acme", "invoice.paid")
	rcGH := newReceiver(t, nil)
	rcStripe := newReceiver(t, nil)
	rcStd := newReceiver(t, nil)
	gh := h.endpoint("acme", map[string]any{"url": rcGH.URL, "event_types": []string{"invoice.paid"}, "signature_format": "github",
		"headers": map[string]string{"X-Team": "billing"}})
	st := h.endpoint("acme", map[string]any{"url": rcStripe.URL, "event_types": []string{"invoice.paid"}, "signature_format": "stripe"})
	std := h.endpoint("acme", map[string]any{"url": rcStd.URL, "event_types": []string{"invoice.paid"}})

	var bad problem
	code := h.call("POST", "/v1/tenants/acme/endpoints", map[string]any{"url": rcStd.URL, "event_types": []string{"invoice.paid"},
		"signature_scheme": "ed25519", "signature_format": "github"}, &bad)
	if code != 422 || bad.at("body.signature_format") == "" {
		t.Fatalf("github format on an ed25519 endpoint: %d %+v, want 422 at body.signature_format", code, bad)
	}

	p := h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{"amount": 1}})
	eventually(t, 5*time.Second, "three deliveries", func() bool { return rcGH.count() == 1 && rcStripe.count() == 1 && rcStd.count() == 1 })

	r := rcGH.got()[0]
	if err := github.ValidateSignature(r.header.Get("X-Hub-Signature-256"), r.body, []byte(gh.Secret)); err != nil {
		t.Errorf("go-github refuses the github signature: %v", err)
	}
	if r.header.Get("X-Team") != "billing" || r.header.Get("X-Herald-Delivery") != p.ID || r.header.Get("webhook-signature") != "" {
		t.Errorf("github-format headers %v", r.header)
	}
	if err := github.ValidateSignature(r.header.Get("X-Hub-Signature-256"), r.body, []byte(st.Secret)); err == nil {
		t.Error("go-github accepts the signature with another endpoint's secret")
	}

	r = rcStripe.got()[0]
	if err := stripewebhook.ValidatePayload(r.body, r.header.Get("Stripe-Signature"), st.Secret); err != nil {
		t.Errorf("stripe-go refuses the stripe signature: %v", err)
	}
	if err := stripewebhook.ValidatePayload(append(r.body, ' '), r.header.Get("Stripe-Signature"), st.Secret); err == nil {
		t.Error("stripe-go accepts a changed body")
	}

	r = rcStd.got()[0]
	v, err := webhook.NewVerifier(std.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(r.body, r.header); err != nil {
		t.Errorf("standard webhooks signature: %v", err)
	}

	// The format shows on the endpoint and can be changed back.
	var shown struct {
		SignatureFormat string `json:"signature_format"`
	}
	h.must(200, "PATCH", "/v1/tenants/acme/endpoints/"+gh.ID, map[string]any{"signature_format": "standard-webhooks"}, &shown)
	if shown.SignatureFormat != "standard-webhooks" {
		t.Errorf("after the change the endpoint shows %q", shown.SignatureFormat)
	}
}

func TestVersions_EachEndpointGetsTheVersionItChose(t *testing.T) {
	h := start(t, nil)
	h.setup("acme", "invoice.paid", "invoice.paid.v2")
	v1 := newReceiver(t, nil)
	v2 := newReceiver(t, nil)
	wildV2 := newReceiver(t, nil)
	h.endpoint("acme", map[string]any{"url": v1.URL, "event_types": []string{"invoice.paid"}})
	h.endpoint("acme", map[string]any{"url": v2.URL, "event_types": []string{"invoice.paid.v2"}})
	// A wildcard subscriber receives every version; during a transition it keeps one with a filter.
	h.endpoint("acme", map[string]any{"url": wildV2.URL, "event_types": []string{"invoice.*"}, "filter": `type.endsWith(".v2")`})

	// During the transition the publisher publishes both versions of each occurrence.
	for i := range 3 {
		h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{"amount": i}})
		h.publish("acme", map[string]any{"type": "invoice.paid.v2", "data": map[string]any{"amount": map[string]any{"value": i, "currency": "EUR"}}})
	}
	eventually(t, 5*time.Second, "three events at each endpoint", func() bool {
		return v1.count() == 3 && v2.count() == 3 && wildV2.count() == 3
	})
	time.Sleep(200 * time.Millisecond) // a wrong version would have been sent with the others
	for _, c := range []struct {
		name string
		rc   *receiver
		want string
	}{{"v1", v1, `"type":"invoice.paid"`}, {"v2", v2, `"type":"invoice.paid.v2"`}, {"wildcard with filter", wildV2, `"type":"invoice.paid.v2"`}} {
		got := c.rc.got()
		if len(got) != 3 {
			t.Errorf("%s endpoint got %d events, want 3", c.name, len(got))
		}
		for _, r := range got {
			if !strings.Contains(string(r.body), c.want) {
				t.Errorf("%s endpoint got %s", c.name, r.body)
			}
		}
	}
}
