package api_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/inbound/schema"
)

// sameJSONDoc reports whether a and b are the same JSON value, whatever their spacing.
func sameJSONDoc(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("decode %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

type eventTypeAnswer struct {
	Name   string          `json:"name"`
	Schema json.RawMessage `json:"schema"`
}

const invoiceSchema = `{"type":"object","required":["id","amount"],"properties":{
	"id":{"type":"string","format":"uuid"},
	"amount":{"type":"integer","minimum":1},
	"currency":{"enum":["eur","usd"]},
	"customer":{"$ref":"#/$defs/customer"}},
	"$defs":{"customer":{"type":"object","required":["email"],"properties":{"email":{"type":"string","format":"email"}}}}}`

func TestEventTypes_SchemaRoundTripsAndMakesExamples(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	var created eventTypeAnswer
	a.must(http.StatusCreated, "POST", "/v1/event-types",
		map[string]any{"name": "invoice.paid", "schema": json.RawMessage(invoiceSchema)}, &created)
	if !sameJSONDoc(t, created.Schema, []byte(invoiceSchema)) {
		t.Fatalf("created schema = %s", created.Schema)
	}
	var got eventTypeAnswer
	a.must(http.StatusOK, "GET", "/v1/event-types/invoice.paid", nil, &got)
	if !sameJSONDoc(t, got.Schema, []byte(invoiceSchema)) {
		t.Fatalf("read schema = %s", got.Schema)
	}

	// The example satisfies the schema, and a tenant key (what herald trigger uses) may read it.
	var ex struct {
		Data json.RawMessage `json:"data"`
	}
	key := a.tenantKey("acme")
	ans := a.do(key, "GET", "/v1/event-types/invoice.paid/example", nil)
	if ans.status != http.StatusOK {
		t.Fatalf("example with a tenant key = %d: %s", ans.status, ans.body)
	}
	if err := json.Unmarshal(ans.body, &ex); err != nil {
		t.Fatalf("decode %s: %v", ans.body, err)
	}
	want := `{"id":"3fa85f64-5717-4562-b3fc-2c963f66afa6","amount":1,"currency":"eur","customer":{"email":"user@example.com"}}`
	if !sameJSONDoc(t, ex.Data, []byte(want)) {
		t.Errorf("example = %s, want %s", ex.Data, want)
	}
	compiled, err := schema.Compile([]byte(invoiceSchema))
	if err != nil {
		t.Fatal(err)
	}
	if err := compiled.Validate(ex.Data); err != nil {
		t.Errorf("example %s does not satisfy the schema: %v", ex.Data, err)
	}

	// PATCH without schema keeps it; {} removes it; a type without one gives {} as example.
	a.must(http.StatusOK, "PATCH", "/v1/event-types/invoice.paid", map[string]any{"description": "Paid."}, &got)
	if !sameJSONDoc(t, got.Schema, []byte(invoiceSchema)) {
		t.Fatalf("schema after a PATCH without one = %s", got.Schema)
	}
	ans = a.do(a.admin, "PATCH", "/v1/event-types/invoice.paid", `{"schema":{}}`)
	if ans.status != http.StatusOK || strings.Contains(string(ans.body), `"schema"`) {
		t.Fatalf("PATCH schema {} = %d %s, want 200 without a schema", ans.status, ans.body)
	}
	a.must(http.StatusOK, "GET", "/v1/event-types/invoice.paid/example", nil, &ex)
	if string(ex.Data) != "{}" {
		t.Errorf("example without a schema = %s, want {}", ex.Data)
	}
	a.must(http.StatusOK, "PATCH", "/v1/event-types/invoice.paid", map[string]any{"schema": json.RawMessage(`{"type":"object"}`)}, &got)
	if string(got.Schema) != `{"type":"object"}` {
		t.Errorf("schema after PATCH = %s", got.Schema)
	}

	// A type created without a schema answers none.
	ans = a.do(a.admin, "POST", "/v1/event-types", map[string]any{"name": "invoice.voided"})
	if ans.status != http.StatusCreated || strings.Contains(string(ans.body), `"schema"`) {
		t.Fatalf("create without schema = %d %s", ans.status, ans.body)
	}
}

func TestEventTypes_InvalidSchemaIs422(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid"}, nil)
	for name, body := range map[string]string{
		"create, bad type":          `{"name":"invoice.created","schema":{"type":"nope"}}`,
		"create, external ref":      `{"name":"invoice.created","schema":{"$ref":"https://example.com/s.json"}}`,
		"create, schema not object": `{"name":"invoice.created","schema":"string"}`,
		"update, bad type":          `{"schema":{"type":"object","properties":{"a":{"minimum":"one"}}}}`,
		"update, null":              `{"schema":null}`,
	} {
		method, path := "POST", "/v1/event-types"
		if strings.HasPrefix(name, "update") {
			method, path = "PATCH", "/v1/event-types/invoice.paid"
		}
		ans := a.do(a.admin, method, path, body)
		if ans.status != http.StatusUnprocessableEntity {
			t.Errorf("%s: %s %s = %d %s, want 422", name, method, path, ans.status, ans.body)
			continue
		}
		if msg, ok := ans.problem(t).find("body.schema"); !ok || msg == "" {
			t.Errorf("%s: no error at body.schema in %s", name, ans.body)
		}
	}
	// Nothing was created or changed.
	if ans := a.do(a.admin, "GET", "/v1/event-types/invoice.created", nil); ans.status != http.StatusNotFound {
		t.Errorf("invoice.created after refused creates = %d", ans.status)
	}
	var got eventTypeAnswer
	a.must(http.StatusOK, "GET", "/v1/event-types/invoice.paid", nil, &got)
	if got.Schema != nil {
		t.Errorf("schema after refused updates = %s", got.Schema)
	}
}

func TestEventTypes_ExampleOfUnknownOrImpossible(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	if ans := a.do(a.admin, "GET", "/v1/event-types/no.such/example", nil); ans.status != http.StatusNotFound {
		t.Errorf("example of an unknown type = %d %s, want 404", ans.status, ans.body)
	}
	// The schema compiles, but no document satisfies it.
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "never.happens",
		"schema": json.RawMessage(`{"type":"object","required":["x"],"properties":{"x":false}}`)}, nil)
	ans := a.do(a.admin, "GET", "/v1/event-types/never.happens/example", nil)
	if ans.status != http.StatusUnprocessableEntity {
		t.Fatalf("example of an impossible schema = %d %s, want 422", ans.status, ans.body)
	}
	if p := ans.problem(t); !strings.Contains(p.Title+p.Detail+string(ans.body), "accepts nothing") {
		t.Errorf("problem does not say why: %s", ans.body)
	}
}

// TestEventTypes_PublishedDataMustSatisfyTheSchema: an event whose data does not satisfy its
// type's schema is refused with 422 naming each failing place, and nothing is stored; a batch
// with one such event stores none; a changed schema applies at once.
func TestEventTypes_PublishedDataMustSatisfyTheSchema(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "order.placed", "schema": json.RawMessage(`{
		"type":"object","required":["amount"],
		"properties":{"amount":{"type":"integer","minimum":0},
			"items":{"type":"array","items":{"type":"object","properties":{"sku":{"type":"string"}}}}}}`)}, nil)
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "order.noted"}, nil)
	a.must(http.StatusCreated, "POST", "/v1/tenants", map[string]any{"id": "acme", "name": "Acme"}, nil)
	publish := func(data string) answer {
		return a.do(a.admin, "POST", "/v1/tenants/acme/events", `{"type":"order.placed","data":`+data+`}`)
	}
	if ans := publish(`{"amount":5,"items":[{"sku":"a"}]}`); ans.status != http.StatusAccepted {
		t.Fatalf("valid data: %d %s", ans.status, ans.body)
	}
	ans := publish(`{"amount":-1,"items":[{"sku":"a"},{"sku":7}]}`)
	if ans.status != http.StatusUnprocessableEntity {
		t.Fatalf("invalid data: %d %s", ans.status, ans.body)
	}
	p := ans.problem(t)
	for _, loc := range []string{"body.data.amount", "body.data.items[1].sku"} {
		if msg, ok := p.find(loc); !ok || !strings.Contains(msg, "order.placed") {
			t.Errorf("no error at %s naming the type: %s", loc, ans.body)
		}
	}
	if ans := publish(`{"items":[]}`); ans.status != http.StatusUnprocessableEntity || !strings.Contains(string(ans.body), "amount") {
		t.Errorf("missing required field: %d %s", ans.status, ans.body)
	}
	// A type without a schema takes any object.
	if ans := a.do(a.admin, "POST", "/v1/tenants/acme/events", `{"type":"order.noted","data":{"anything":[1,"x"]}}`); ans.status != http.StatusAccepted {
		t.Errorf("type without a schema: %d %s", ans.status, ans.body)
	}

	// A batch with one bad event stores none of them.
	ans = a.do(a.admin, "POST", "/v1/tenants/acme/events/batch", `{"events":[
		{"id":"b1","type":"order.placed","data":{"amount":1}},
		{"id":"b2","type":"order.placed","data":{"amount":"one"}}]}`)
	if ans.status != http.StatusUnprocessableEntity {
		t.Fatalf("batch with a bad event: %d %s", ans.status, ans.body)
	}
	if _, ok := ans.problem(t).find("body.events[1].data.amount"); !ok {
		t.Errorf("no error at body.events[1].data.amount: %s", ans.body)
	}
	if ans := a.do(a.admin, "GET", "/v1/tenants/acme/events/b1", nil); ans.status != http.StatusNotFound {
		t.Errorf("the batch's valid event was stored: %d", ans.status)
	}

	// A changed schema applies at once.
	a.must(http.StatusOK, "PATCH", "/v1/event-types/order.placed", map[string]any{"schema": json.RawMessage(`{"type":"object","required":["currency"]}`)}, nil)
	if ans := publish(`{"amount":5}`); ans.status != http.StatusUnprocessableEntity {
		t.Errorf("after the schema changed, data without currency: %d %s", ans.status, ans.body)
	}
	a.must(http.StatusOK, "PATCH", "/v1/event-types/order.placed", map[string]any{"schema": json.RawMessage(`{}`)}, nil)
	if ans := publish(`{"amount":"any"}`); ans.status != http.StatusAccepted {
		t.Errorf("after the schema was removed: %d %s", ans.status, ans.body)
	}
}
