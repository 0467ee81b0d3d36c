package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/api"
)

type eventTypeDocsAnswer struct {
	Name     string            `json:"name"`
	Family   string            `json:"family"`
	Version  int               `json:"version"`
	Versions []string          `json:"versions"`
	Trigger  string            `json:"trigger"`
	Sunset   string            `json:"sunset"`
	Examples []json.RawMessage `json:"examples"`
	Schema   json.RawMessage   `json:"schema"`
}

// TestEventTypes_DocumentationFieldsRoundTrip: trigger, examples and sunset are stored and read
// back by create, patch, get and list; version and family are computed from the name.
func TestEventTypes_DocumentationFieldsRoundTrip(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	var got eventTypeDocsAnswer
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{
		"name": "invoice.paid", "trigger": "An invoice is paid in full.", "deprecated": true, "sunset": "2027-03-01",
		"schema":   json.RawMessage(invoiceSchema),
		"examples": []json.RawMessage{json.RawMessage(`{"id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "amount": 4200}`)},
	}, &got)
	if got.Trigger != "An invoice is paid in full." || got.Sunset != "2027-03-01" || len(got.Examples) != 1 ||
		got.Family != "invoice.paid" || got.Version != 1 {
		t.Fatalf("created = %+v", got)
	}
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid.v2", "sunset": "2027-03-01T15:04:05+02:00"}, &got)
	if got.Family != "invoice.paid" || got.Version != 2 || got.Sunset != "2027-03-01T13:04:05Z" {
		t.Fatalf("v2 = %+v", got)
	}
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "report.v3"}, &got)
	if got.Family != "report.v3" || got.Version != 1 {
		t.Errorf("report.v3 (no action before the suffix) = family %q version %d, want itself, 1", got.Family, got.Version)
	}

	// GET one names the family's other versions, newest first.
	a.must(http.StatusOK, "GET", "/v1/event-types/invoice.paid", nil, &got)
	if !slices.Equal(got.Versions, []string{"invoice.paid.v2"}) || got.Trigger == "" || len(got.Examples) != 1 {
		t.Errorf("get = %+v", got)
	}
	a.must(http.StatusOK, "GET", "/v1/event-types/invoice.paid.v2", nil, &got)
	if !slices.Equal(got.Versions, []string{"invoice.paid"}) {
		t.Errorf("versions of v2 = %v", got.Versions)
	}

	// The example route answers the first stored example.
	var ex struct {
		Data json.RawMessage `json:"data"`
	}
	a.must(http.StatusOK, "GET", "/v1/event-types/invoice.paid/example", nil, &ex)
	if !sameJSONDoc(t, ex.Data, []byte(`{"id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","amount":4200}`)) {
		t.Errorf("example = %s, want the stored one", ex.Data)
	}

	// PATCH changes each field; absent keeps it; "" and [] remove.
	a.must(http.StatusOK, "PATCH", "/v1/event-types/invoice.paid", map[string]any{"trigger": "Paid."}, &got)
	if got.Trigger != "Paid." || got.Sunset != "2027-03-01" || len(got.Examples) != 1 {
		t.Errorf("after PATCH trigger = %+v", got)
	}
	a.must(http.StatusOK, "PATCH", "/v1/event-types/invoice.paid", map[string]any{"sunset": "2028-01-31",
		"examples": []json.RawMessage{json.RawMessage(`{"id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","amount":1}`), json.RawMessage(`{"id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","amount":2}`)}}, &got)
	if got.Sunset != "2028-01-31" || len(got.Examples) != 2 {
		t.Errorf("after PATCH sunset, examples = %+v", got)
	}
	var page struct {
		Data []eventTypeDocsAnswer `json:"data"`
	}
	a.must(http.StatusOK, "GET", "/v1/event-types", nil, &page)
	if len(page.Data) != 3 || page.Data[0].Sunset != "2028-01-31" || len(page.Data[0].Examples) != 2 || page.Data[1].Version != 2 {
		t.Errorf("list = %+v", page.Data)
	}
	ans := a.do(a.admin, "PATCH", "/v1/event-types/invoice.paid", `{"trigger":"","sunset":"","examples":[]}`)
	if ans.status != http.StatusOK {
		t.Fatalf("PATCH removing = %d %s", ans.status, ans.body)
	}
	for _, field := range []string{`"trigger"`, `"sunset"`, `"examples"`} {
		if strings.Contains(string(ans.body), field) {
			t.Errorf("after removing, %s is still there: %s", field, ans.body)
		}
	}
	// Without stored examples the example route makes one from the schema again.
	a.must(http.StatusOK, "GET", "/v1/event-types/invoice.paid/example", nil, &ex)
	if !strings.Contains(string(ex.Data), "3fa85f64") {
		t.Errorf("generated example = %s", ex.Data)
	}
}

// TestEventTypes_ExamplesMustSatisfyTheSchema: an example that the type's schema refuses is a 422
// at body.examples[i] and the failing place; a new schema that stored examples do not satisfy
// is refused too, unless new examples come with it.
func TestEventTypes_ExamplesMustSatisfyTheSchema(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	ans := a.do(a.admin, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid", "schema": json.RawMessage(invoiceSchema),
		"examples": []json.RawMessage{
			json.RawMessage(`{"id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","amount":5}`),
			json.RawMessage(`{"id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","amount":"five","customer":{"email":7}}`),
		}})
	if ans.status != http.StatusUnprocessableEntity {
		t.Fatalf("create with a bad example = %d %s", ans.status, ans.body)
	}
	p := ans.problem(t)
	for _, loc := range []string{"body.examples[1].amount", "body.examples[1].customer.email"} {
		if msg, ok := p.find(loc); !ok || !strings.Contains(msg, "invoice.paid") {
			t.Errorf("no error at %s naming the type: %s", loc, ans.body)
		}
	}
	if _, ok := p.find("body.examples[0]"); ok {
		t.Errorf("the valid example is reported: %s", ans.body)
	}
	if ans := a.do(a.admin, "GET", "/v1/event-types/invoice.paid", nil); ans.status != http.StatusNotFound {
		t.Errorf("refused type was created: %d", ans.status)
	}

	for name, body := range map[string]string{
		"not an object":    `{"name":"x.y","examples":[[1,2]]}`,
		"eleven examples":  `{"name":"x.y","examples":[{},{},{},{},{},{},{},{},{},{},{}]}`,
		"bad sunset":       `{"name":"x.y","sunset":"next spring"}`,
		"trigger too long": `{"name":"x.y","trigger":"` + strings.Repeat("a", 501) + `"}`,
	} {
		if ans := a.do(a.admin, "POST", "/v1/event-types", body); ans.status != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d %s, want 422", name, ans.status, ans.body)
		} else if p := ans.problem(t); len(p.Errors) == 0 || !strings.HasPrefix(p.Errors[0].Location, "body.") {
			t.Errorf("%s: problem names no field: %s", name, ans.body)
		}
	}

	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid", "schema": json.RawMessage(invoiceSchema),
		"examples": []json.RawMessage{json.RawMessage(`{"id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","amount":5}`)}}, nil)
	// PATCH examples alone is checked against the stored schema.
	ans = a.do(a.admin, "PATCH", "/v1/event-types/invoice.paid", `{"examples":[{"amount":0}]}`)
	if ans.status != http.StatusUnprocessableEntity {
		t.Fatalf("PATCH a bad example = %d %s", ans.status, ans.body)
	}
	if _, ok := ans.problem(t).find("body.examples[0].amount"); !ok {
		t.Errorf("no error at body.examples[0].amount: %s", ans.body)
	}
	// A schema the stored example does not satisfy is refused, saying which example fails where.
	stricter := `{"type":"object","required":["currency"]}`
	ans = a.do(a.admin, "PATCH", "/v1/event-types/invoice.paid", `{"schema":`+stricter+`}`)
	if ans.status != http.StatusUnprocessableEntity {
		t.Fatalf("PATCH a schema the stored example fails = %d %s", ans.status, ans.body)
	}
	if msg, ok := ans.problem(t).find("body.schema"); !ok || !strings.Contains(msg, "examples[0]") {
		t.Errorf("problem does not name the stored example: %s", ans.body)
	}
	// With new examples (or none) in the same request it is accepted.
	a.must(http.StatusOK, "PATCH", "/v1/event-types/invoice.paid", map[string]any{"schema": json.RawMessage(stricter),
		"examples": []json.RawMessage{json.RawMessage(`{"currency":"eur"}`)}}, nil)
	a.must(http.StatusOK, "PATCH", "/v1/event-types/invoice.paid", map[string]any{"schema": json.RawMessage(`{"type":"object","required":["other"]}`),
		"examples": []json.RawMessage{}}, nil)
}
