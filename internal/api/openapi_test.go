package api_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/api"
)

// The properties a linter (redocly's recommended rules, spectral:oas) and a code generator need
// of the document, checked here so that they hold without Node: docs/sdks.md lints the document
// itself.

func TestOpenAPI_SchemaNamesAreMeaningful(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	// A Go anonymous struct gave names such as `OutStruct { Queued int "json:\"queued\"" }Body`,
	// and an operation id with dashes `Replay-received-requestRequest`.
	name := regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
	schemas := a.api.OpenAPI().Components.Schemas.Map()
	if len(schemas) < 40 {
		t.Fatalf("only %d schemas", len(schemas))
	}
	for n := range schemas {
		if !name.MatchString(n) {
			t.Errorf("schema name %q is not a type name", n)
		}
	}
}

func TestOpenAPI_Servers(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ public, want string }{
		{"", "/"},
		{"https://hooks.example.com/", "https://hooks.example.com"},
	} {
		a := newTestAPI(t, api.Config{PublicURL: c.public})
		srv := a.api.OpenAPI().Servers
		if len(srv) != 1 || srv[0].URL != c.want {
			t.Errorf("public URL %q: servers %+v, want one, %q", c.public, srv, c.want)
		}
	}
}

func TestOpenAPI_EveryOperationDeclaresItsProblems(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	oapi := a.api.OpenAPI()
	n := 0
	for path, item := range oapi.Paths {
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Patch, item.Delete} {
			if op == nil {
				continue
			}
			n++
			want := []string{"401", "422", "429"}
			if strings.Contains(path, "{") {
				want = append(want, "404")
			}
			if op.RequestBody != nil {
				want = append(want, "400", "413", "415")
			}
			if op.Metadata["admin-only"] == true {
				want = append(want, "403")
			}
			for _, code := range want {
				r := op.Responses[code]
				if r == nil {
					t.Errorf("%s %s: no %s response", op.Method, path, code)
					continue
				}
				mt := r.Content["application/problem+json"]
				if mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/ErrorModel" {
					t.Errorf("%s %s: %s is not a problem document: %+v", op.Method, path, code, r.Content)
				}
			}
		}
	}
	if n < 50 {
		t.Fatalf("only %d operations", n)
	}
	// Every tag an operation uses is declared at the top.
	declared := map[string]bool{}
	for _, tag := range oapi.Tags {
		declared[tag.Name] = true
		if tag.Description == "" {
			t.Errorf("tag %q has no description", tag.Name)
		}
	}
	for path, item := range oapi.Paths {
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Patch, item.Delete} {
			for _, tag := range opTags(op) {
				if !declared[tag] {
					t.Errorf("%s: tag %q is not declared", path, tag)
				}
			}
		}
	}
	// 403 where a tenant key is refused (create-endpoint with internal: true).
	if oapi.Paths["/v1/tenants/{tenant}/endpoints"].Post.Responses["403"] == nil {
		t.Error("create-endpoint does not declare 403")
	}
}

// No array of the document is nullable: Herald refuses null in requests and answers [] for an
// empty list.
func TestOpenAPI_ArraysAreNotNullable(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	b, err := json.Marshal(a.api.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	arrays := 0
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch x := v.(type) {
		case map[string]any:
			if ts, ok := x["type"].([]any); ok && slices.Contains(ts, any("array")) {
				t.Errorf("%s: type %v", at, ts)
			}
			if x["type"] == "array" {
				arrays++
			}
			for k, e := range x {
				walk(e, at+"/"+k)
			}
		case []any:
			for _, e := range x {
				walk(e, at+"/[]")
			}
		}
	}
	walk(doc, "")
	if arrays < 30 {
		t.Fatalf("only %d arrays in the document", arrays)
	}
}

// A query parameter a route does not take is refused, naming it: ?status=dead on the deliveries
// (which filter by state) returned every delivery.
func TestOpenAPI_UnknownQueryParameterIsRefused(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	key := a.tenantKey("acme")
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "order.created"}, nil)
	for _, c := range []struct {
		key, method, path string
		body              any
		unknown           []string
	}{
		{key, "GET", "/v1/tenants/acme/deliveries?status=dead", nil, []string{"status"}},
		{key, "GET", "/v1/tenants/acme/deliveries?stat=dead&limit=5", nil, []string{"stat"}}, // a typo of state
		{a.admin, "GET", "/v1/tenants?limt=5", nil, []string{"limt"}},
		{key, "GET", "/v1/tenants/acme/events?event_type=order.created&evnt_type=x&cursr=y", nil, []string{"cursr", "evnt_type"}},
		{key, "GET", "/v1/tenants/acme/received-requests?state=rejected", nil, []string{"state"}},
		{key, "GET", "/v1/tenants/acme?verbose=1", nil, []string{"verbose"}},
		{key, "POST", "/v1/tenants/acme/events?dry_run=true", map[string]any{"type": "order.created", "data": map[string]any{}}, []string{"dry_run"}},
		{a.admin, "DELETE", "/v1/tenants/acme?force=true", nil, []string{"force"}},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			ans := a.do(c.key, c.method, c.path, c.body)
			if ans.status != http.StatusUnprocessableEntity {
				t.Fatalf("%d %.300s, want 422", ans.status, ans.body)
			}
			p := ans.problem(t)
			if len(p.Errors) != len(c.unknown) {
				t.Fatalf("errors %+v, want one for each of %v", p.Errors, c.unknown)
			}
			for i, name := range c.unknown {
				if p.Errors[i].Location != "query."+name || !strings.Contains(p.Errors[i].Message, "unknown query parameter") {
					t.Errorf("error %d: %+v, want query.%s unknown", i, p.Errors[i], name)
				}
			}
		})
	}
	// The tenant still exists (the refused DELETE did nothing), and known parameters still work.
	a.must(http.StatusOK, "GET", "/v1/tenants/acme", nil, nil)
	for _, path := range []string{
		"/v1/tenants/acme/deliveries?state=dead&limit=5",
		"/v1/tenants/acme/events?event_type=order.created",
		"/v1/tenants/acme/received-requests?status=rejected",
		"/v1/tenants?limit=1",
	} {
		if ans := a.do(a.admin, "GET", path, nil); ans.status != http.StatusOK {
			t.Errorf("GET %s = %d %.300s", path, ans.status, ans.body)
		}
	}
}

func opTags(op *huma.Operation) []string {
	if op == nil {
		return nil
	}
	return op.Tags
}
