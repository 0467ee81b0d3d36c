package api_test

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/dispatch"
)

// getDocs reads the generated documentation with key and extra request headers.
func (a *testAPI) getDocs(key, query string, header map[string]string) answer {
	a.t.Helper()
	req, err := http.NewRequest("GET", a.srv.URL+"/v1/event-types/docs"+query, nil)
	if err != nil {
		a.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := a.srv.Client().Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// docsCatalog registers a small catalog with a versioned family, a deprecated version with a
// sunset, a hostile description and a type without a schema.
func docsCatalog(t *testing.T, a *testAPI) {
	t.Helper()
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{
		"name": "invoice.paid", "description": "An invoice was paid.", "trigger": "The last payment of an invoice settles.",
		"deprecated": true, "sunset": "2027-03-01", "schema": json.RawMessage(invoiceSchema),
		"examples": []json.RawMessage{json.RawMessage(`{"id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","amount":4200}`)},
	}, nil)
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{
		"name": "invoice.paid.v2", "description": "An invoice was paid, with <script>alert(1)</script> & its currency.",
		"schema": json.RawMessage(`{"type":"object","required":["amount_cents"],"properties":{"amount_cents":{"type":"integer","examples":[1999]}}}`),
	}, nil)
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "customer.created", "description": "A customer signed up."}, nil)
}

// schedulePhrase is how the documentation writes the default retry schedule.
func schedulePhrase() string {
	var parts []string
	for _, d := range dispatch.DefaultSchedule {
		switch {
		case d == 0:
			parts = append(parts, "at once")
		case d%time.Hour == 0:
			parts = append(parts, strconv.Itoa(int(d/time.Hour))+" h")
		case d%time.Minute == 0:
			parts = append(parts, strconv.Itoa(int(d/time.Minute))+" min")
		default:
			parts = append(parts, strconv.Itoa(int(d/time.Second))+" s")
		}
	}
	return strings.Join(parts, ", ")
}

func TestEventTypeDocs_HTMLDocumentsTheCatalog(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	docsCatalog(t, a)
	ans := a.getDocs(a.admin, "", nil)
	if ans.status != http.StatusOK {
		t.Fatalf("docs = %d %s", ans.status, ans.body)
	}
	if ct := ans.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type = %q", ct)
	}
	if csp := ans.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	raw := string(ans.body)
	// Self-contained: no scripts, no external resources.
	for _, bad := range []string{"<script", "<link", "<img", "<iframe", "src=", "@import", "url("} {
		if strings.Contains(strings.ToLower(raw), bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if !strings.Contains(raw, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; its currency") {
		t.Errorf("hostile description not escaped as text")
	}
	text := html.UnescapeString(raw)
	for _, want := range []string{
		"invoice.paid.v2", "customer.created", "An invoice was paid.", "A customer signed up.",
		"The last payment of an invoice settles.",
		"Deprecated: no longer sent after 2027-03-01",
		`"amount": {`, `"$defs": {`, // the schema, pretty-printed
		`"type": "invoice.paid",`, `"amount": 4200`, // the stored example, in its envelope
		`"type": "invoice.paid.v2",`, `"amount_cents": 1999`, // a generated example
		`"timestamp": "2026-03-01T12:00:00Z"`,
		schedulePhrase(), fmt.Sprintf("up to %d attempts", len(dispatch.DefaultSchedule)),
		"webhook-id", "webhook-timestamp", "webhook-signature", "v1,", "v1a", "whsec_",
		"X-Hub-Signature-256", "Stripe-Signature",
		"No schema: <code>data</code> is any JSON object.",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Versions of a family are together, newest first.
	if v2, v1 := strings.Index(raw, `id="type-invoice.paid.v2"`), strings.Index(raw, `id="type-invoice.paid"`); v2 < 0 || v1 < 0 || v2 > v1 {
		t.Errorf("invoice.paid.v2 at %d, invoice.paid at %d: want v2 first", v2, v1)
	}
	if c, i := strings.Index(raw, `id="type-customer.created"`), strings.Index(raw, `id="type-invoice.paid.v2"`); c > i {
		t.Errorf("families are not in name order")
	}

	// include_deprecated=false leaves the deprecated version out.
	ans = a.getDocs(a.admin, "?include_deprecated=false", nil)
	if ans.status != http.StatusOK || strings.Contains(string(ans.body), `id="type-invoice.paid"`) || !strings.Contains(string(ans.body), `id="type-invoice.paid.v2"`) {
		t.Errorf("include_deprecated=false = %d, deprecated type shown or v2 missing", ans.status)
	}
}

func TestEventTypeDocs_Markdown(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	docsCatalog(t, a)
	for name, req := range map[string]struct {
		query  string
		header map[string]string
	}{
		"format query":         {query: "?format=markdown"},
		"accept":               {header: map[string]string{"Accept": "text/markdown"}},
		"accept preferred":     {header: map[string]string{"Accept": "text/markdown, text/html;q=0.5"}},
		"query beats accept":   {query: "?format=markdown", header: map[string]string{"Accept": "text/html"}},
		"accept with wildcard": {header: map[string]string{"Accept": "text/markdown, */*;q=0.1"}},
	} {
		ans := a.getDocs(a.admin, req.query, req.header)
		if ans.status != http.StatusOK || !strings.HasPrefix(ans.header.Get("Content-Type"), "text/markdown") {
			t.Errorf("%s: %d %q", name, ans.status, ans.header.Get("Content-Type"))
			continue
		}
		md := string(ans.body)
		for _, want := range []string{
			"# Webhook events", "#### `invoice.paid.v2` (version 2)", "#### `invoice.paid` (version 1) — deprecated",
			"**Deprecated: no longer sent after 2027-03-01.**", "```json\n{\n  \"type\": \"object\"",
			`"type": "invoice.paid"`, schedulePhrase(), "X-Hub-Signature-256", "Stripe-Signature", "webhook-signature",
			`&lt;script&gt;alert(1)&lt;/script&gt; &amp; its currency`,
		} {
			if !strings.Contains(md, want) {
				t.Errorf("%s: markdown lacks %q", name, want)
			}
		}
		if strings.Contains(md, "<script>") {
			t.Errorf("%s: markdown carries raw HTML from a description", name)
		}
	}
	for name, accept := range map[string]string{"browser": "text/html,application/xhtml+xml,*/*;q=0.8", "none": "", "tie": "text/html, text/markdown"} {
		ans := a.getDocs(a.admin, "", map[string]string{"Accept": accept})
		if !strings.HasPrefix(ans.header.Get("Content-Type"), "text/html") {
			t.Errorf("Accept %s: Content-Type %q, want HTML", name, ans.header.Get("Content-Type"))
		}
	}
	if ans := a.getDocs(a.admin, "?format=pdf", nil); ans.status != http.StatusUnprocessableEntity {
		t.Errorf("format=pdf = %d, want 422", ans.status)
	}
}

// TestEventTypeDocs_RouteAndAccess: the documentation sits beside GET /v1/event-types/{name}
// without shadowing a type (names need a dot, so no type is called "docs"), and any key that may
// read the catalog may read it.
func TestEventTypeDocs_RouteAndAccess(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	docsCatalog(t, a)
	if ans := a.do(a.admin, "POST", "/v1/event-types", map[string]any{"name": "docs"}); ans.status != http.StatusUnprocessableEntity {
		t.Errorf("a type named docs = %d %s, want 422", ans.status, ans.body)
	}
	var got eventTypeAnswer
	a.must(http.StatusOK, "GET", "/v1/event-types/invoice.paid", nil, &got)
	if got.Name != "invoice.paid" {
		t.Errorf("GET one after docs registration = %+v", got)
	}

	key := a.tenantKey("acme")
	if ans := a.getDocs(key, "", nil); ans.status != http.StatusOK || !strings.Contains(string(ans.body), "invoice.paid.v2") {
		t.Errorf("docs with a tenant key = %d", ans.status)
	}
	if ans := a.do(key, "GET", "/v1/event-types", nil); ans.status != http.StatusOK {
		t.Errorf("list with a tenant key = %d: the docs should follow the list's rule", ans.status)
	}
	if ans := a.getDocs("", "", nil); ans.status != http.StatusUnauthorized {
		t.Errorf("docs without a key = %d, want 401", ans.status)
	}

	// The OpenAPI document describes the route with its media types.
	ans := a.do(a.admin, "GET", "/openapi.json", nil)
	if ans.status != http.StatusOK {
		t.Fatalf("openapi = %d", ans.status)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]struct {
				Content map[string]any `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(ans.body, &doc); err != nil {
		t.Fatal(err)
	}
	content := doc.Paths["/v1/event-types/docs"]["get"].Responses["200"].Content
	if content["text/html"] == nil || content["text/markdown"] == nil {
		t.Errorf("openapi 200 content of the docs = %v", content)
	}
}

// TestEventTypeDocs_ReadsEveryPage: a catalog larger than one store page is documented whole.
func TestEventTypeDocs_ReadsEveryPage(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	const n = 260 // more than store.MaxLimit
	for i := range n {
		a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": fmt.Sprintf("thing_%03d.happened", i)}, nil)
	}
	ans := a.getDocs(a.admin, "?format=markdown", nil)
	if got := strings.Count(string(ans.body), "#### `thing_"); got != n {
		t.Errorf("documented %d types, want %d", got, n)
	}
}
