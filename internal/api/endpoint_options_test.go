package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/api"
)

type optionsOut struct {
	ID              string `json:"id"`
	Filter          string `json:"filter"`
	Transform       string `json:"transform"`
	SignatureFormat string `json:"signature_format"`
	Ordered         bool   `json:"ordered"`
	Batch           *struct {
		Enabled   bool `json:"enabled"`
		MaxEvents int  `json:"max_events"`
		MaxWaitMS int  `json:"max_wait_ms"`
	} `json:"batch"`
}

func TestEndpointOptions_ValidatedStoredAndShown(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	a.must(http.StatusCreated, "POST", "/v1/tenants", map[string]any{"id": "acme", "name": "Acme"}, nil)
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid", "examples": []map[string]any{{"amount": 5}}}, nil)

	var ep optionsOut
	a.must(http.StatusCreated, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": "https://hooks.example.com/a", "event_types": []string{"invoice.*"},
		"batch": map[string]any{"enabled": true}, "filter": "data.amount > 1", "transform": `{"total": data.amount}`}, &ep)
	if ep.Batch == nil || !ep.Batch.Enabled || ep.Batch.MaxEvents != 100 || ep.Batch.MaxWaitMS != 5000 {
		t.Fatalf("batch %+v, want enabled with the defaults 100 events, 5000 ms", ep.Batch)
	}
	if ep.Filter != "data.amount > 1" || ep.Transform != `{"total": data.amount}` || ep.SignatureFormat != "standard-webhooks" || ep.Ordered {
		t.Fatalf("options shown %+v", ep)
	}
	path := "/v1/tenants/acme/endpoints/" + ep.ID

	for _, c := range []struct {
		name     string
		body     map[string]any
		location string
	}{
		{"ordered and batched", map[string]any{"ordered": true}, "body.ordered"},
		{"filter syntax", map[string]any{"filter": "data.amount >"}, "body.filter"},
		{"filter not boolean", map[string]any{"filter": `"yes"`}, "body.filter"},
		// A regex whose RE2 program is too large to bound is refused at save.
		{"filter regex too large", map[string]any{"filter": `data.s.matches("(a{1,50}){1,50}zN")`}, "body.filter"},
		{"transform regex too large", map[string]any{"transform": `data.s.matches("(a{1,50}){1,50}zN") ? {"x": 1} : {"x": 2}`}, "body.transform"},
		{"transform failing on the example", map[string]any{"transform": `{"x": data.missing}`}, "body.transform"},
		{"batch too large", map[string]any{"batch": map[string]any{"enabled": true, "max_events": 5000}}, "body.batch.max_events"},
		{"unknown signature format", map[string]any{"signature_format": "sha1"}, "body.signature_format"},
	} {
		ans := a.do(a.admin, "PATCH", path, c.body)
		if ans.status != http.StatusUnprocessableEntity || !strings.Contains(string(ans.body), `"location":"`+c.location) {
			t.Errorf("%s: %d %s, want 422 at %s", c.name, ans.status, ans.body, c.location)
		}
	}
	// Nothing refused was stored.
	var got optionsOut
	a.must(http.StatusOK, "GET", path, nil, &got)
	if got.Filter != ep.Filter || got.Ordered || got.Batch == nil {
		t.Fatalf("after refused changes the endpoint shows %+v", got)
	}

	// Batching off, ordering on; custom sizes; a filter removed with "". (A fresh value for each
	// answer: decoding leaves fields the answer omits as they were.)
	got = optionsOut{}
	a.must(http.StatusOK, "PATCH", path, map[string]any{"batch": map[string]any{"enabled": false}, "ordered": true, "filter": "", "signature_format": "stripe"}, &got)
	if got.Batch != nil || !got.Ordered || got.Filter != "" || got.SignatureFormat != "stripe" {
		t.Fatalf("after the change %+v", got)
	}
	got = optionsOut{}
	a.must(http.StatusOK, "PATCH", path, map[string]any{"ordered": false, "batch": map[string]any{"enabled": true, "max_events": 10, "max_wait_ms": 250}}, &got)
	if got.Batch == nil || got.Batch.MaxEvents != 10 || got.Batch.MaxWaitMS != 250 || got.Ordered {
		raw, _ := json.Marshal(got)
		t.Fatalf("custom batch: %s", raw)
	}
}
