package node_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/store"
)

type auditOut struct {
	ID    string `json:"id"`
	At    string `json:"at"`
	Actor struct {
		KeyID    string `json:"key_id"`
		Role     string `json:"role"`
		TenantID string `json:"tenant_id"`
	} `json:"actor"`
	Action   string `json:"action"`
	Resource struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"resource"`
	TenantID string          `json:"tenant_id"`
	Before   json.RawMessage `json:"before"`
	After    json.RawMessage `json:"after"`
}

type auditPage struct {
	Data       []auditOut `json:"data"`
	NextCursor string     `json:"next_cursor"`
}

func (h *harness) auditAs(key, path string) auditPage {
	h.t.Helper()
	var p auditPage
	if s := h.callAs(key, "GET", path, nil, &p); s != 200 {
		h.t.Fatalf("GET %s = %d", path, s)
	}
	return p
}

func actions(es []auditOut) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[len(es)-1-i] = e.Action // oldest first, to read like the test
	}
	return out
}

// Every change through the API leaves an audit entry naming the key, the action, the resource
// and its state before and after, and no entry holds a secret.
func TestAPI_AuditLogRecordsChangesWithoutSecrets(t *testing.T) {
	t.Parallel()
	auditLogRecordsChangesWithoutSecrets(t, nil)
}

func TestPostgres_AuditLogRecordsChangesWithoutSecrets(t *testing.T) {
	t.Parallel()
	auditLogRecordsChangesWithoutSecrets(t, onPostgres(t))
}

func auditLogRecordsChangesWithoutSecrets(t *testing.T, mod func(*node.Config)) {
	h := start(t, mod)
	rc := newReceiver(t, func(n int, r *http.Request) int { return 503 })
	h.setup("acme", "a.happened")
	h.must(200, "PATCH", "/v1/event-types/a.happened", map[string]any{"deprecated": true}, nil)
	var key struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	h.must(201, "POST", "/v1/api-keys", map[string]any{"role": "tenant", "tenant_id": "acme", "name": "acme backend"}, &key)
	tk := key.Key
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	const headerValue = "Bearer receiver-credential-123"
	var ep endpointOut
	if s := h.callAs(tk, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": rc.URL, "event_types": []string{"*"}, "secret": secret,
		"headers": map[string]string{"Authorization": headerValue}, "retry_schedule": []int{0}}, &ep); s != 201 {
		t.Fatalf("create endpoint: %d", s)
	}
	epPath := "/v1/tenants/acme/endpoints/" + ep.ID
	h.callAs(tk, "PATCH", epPath, map[string]any{"description": "billing"}, nil)
	h.callAs(tk, "PATCH", epPath, map[string]any{"enabled": false}, nil)
	h.callAs(tk, "PATCH", epPath, map[string]any{"enabled": true}, nil)
	var rotated struct {
		Key string `json:"key"`
	}
	h.callAs(tk, "POST", epPath+"/secret/rotate", map[string]any{"overlap_seconds": 60}, &rotated)
	h.callAs(tk, "GET", epPath+"/secret", nil, nil)
	p := h.publish("acme", map[string]any{"id": "evt-1", "type": "a.happened", "data": map[string]any{}})
	var dead []deliveryOut
	eventually(t, 10*time.Second, "a dead delivery", func() bool {
		dead = h.deliveries("/v1/tenants/acme/deliveries?state=dead")
		return len(dead) == 1
	})
	h.callAs(tk, "POST", "/v1/tenants/acme/deliveries/"+dead[0].ID+"/retry", nil, nil)
	h.callAs(tk, "POST", "/v1/tenants/acme/events/"+p.ID+"/resend", map[string]any{"endpoint_id": ep.ID}, nil)
	h.callAs(tk, "POST", "/v1/tenants/acme/replays", map[string]any{"states": []string{"dead", "pending"}}, nil)
	h.callAs(tk, "DELETE", epPath, nil, nil)
	h.must(200, "PATCH", "/v1/tenants/acme", map[string]any{"redact_fields": []string{"card.number"}}, nil)
	h.must(204, "DELETE", "/v1/api-keys/"+key.ID, nil, nil)
	h.must(204, "DELETE", "/v1/event-types/a.happened", nil, nil)

	all := h.auditAs(adminKey, "/v1/audit?limit=250")
	want := []string{"tenant.create", "event_type.create", "event_type.update", "api_key.create", "endpoint.create", "endpoint.update",
		"endpoint.disable", "endpoint.enable", "endpoint.secret_rotate", "endpoint.secret_read", "delivery.retry", "event.resend",
		"delivery.replay", "endpoint.delete", "tenant.update", "api_key.revoke", "event_type.delete"}
	if got := actions(all.Data); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("audit actions\n got %v\nwant %v", got, want)
	}
	raw, _ := json.Marshal(all)
	for _, leak := range []string{secret, rotated.Key, headerValue, tk} {
		if strings.Contains(string(raw), leak) {
			t.Errorf("the audit log holds a secret: %q", leak)
		}
	}
	byAction := map[string]auditOut{}
	for _, e := range all.Data {
		byAction[e.Action] = e
	}
	upd := byAction["endpoint.update"]
	if upd.Actor.KeyID != key.ID || upd.Actor.Role != "tenant" || upd.Actor.TenantID != "acme" || upd.TenantID != "acme" ||
		upd.Resource.Type != "endpoint" || upd.Resource.ID != ep.ID {
		t.Fatalf("endpoint.update entry = %+v", upd)
	}
	var before, after struct {
		Description string            `json:"description"`
		Headers     map[string]string `json:"headers"`
		Secrets     []struct {
			Key string `json:"key"`
		} `json:"secrets"`
	}
	if err := json.Unmarshal(upd.Before, &before); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(upd.After, &after); err != nil {
		t.Fatal(err)
	}
	if before.Description != "" || after.Description != "billing" || after.Headers["Authorization"] != "[REDACTED]" ||
		len(after.Secrets) != 1 || after.Secrets[0].Key != "[REDACTED]" {
		t.Fatalf("endpoint.update before %s after %s", upd.Before, upd.After)
	}
	if e := byAction["endpoint.secret_rotate"]; !strings.Contains(string(e.After), `"expires_at"`) || strings.Count(string(e.After), "[REDACTED]") < 3 {
		t.Fatalf("rotation entry after = %s (two secret markers and a header)", e.After)
	}
	if e := byAction["tenant.create"]; e.Actor.KeyID == "" || e.Actor.Role != "admin" || e.Before != nil || e.After == nil {
		t.Fatalf("tenant.create entry = %+v", e)
	}
	if e := byAction["endpoint.delete"]; e.Before == nil || e.After != nil {
		t.Fatalf("endpoint.delete entry = %+v", e)
	}
	if e := byAction["delivery.replay"]; !strings.Contains(string(e.After), `"queued":`) {
		t.Fatalf("replay entry after = %s", e.After)
	}
	if e := byAction["event_type.update"]; e.TenantID != "" || !strings.Contains(string(e.Before), `"deprecated":false`) || !strings.Contains(string(e.After), `"deprecated":true`) {
		t.Fatalf("event_type.update entry = %+v", e)
	}

	// Filters, and pages newest first.
	if got := h.auditAs(adminKey, "/v1/audit?tenant_id=acme&resource_type=endpoint&action=endpoint.enable").Data; len(got) != 1 {
		t.Fatalf("filtered admin audit = %+v", got)
	}
	var paged []string
	for cursor := ""; ; {
		pg := h.auditAs(adminKey, "/v1/audit?limit=5&cursor="+cursor)
		for _, e := range pg.Data {
			paged = append(paged, e.ID)
		}
		if cursor = pg.NextCursor; cursor == "" {
			break
		}
	}
	if len(paged) != len(want) || paged[0] != all.Data[0].ID {
		t.Fatalf("paged %d entries, want %d", len(paged), len(want))
	}
	if got := h.auditAs(adminKey, "/v1/audit?until="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)).Data; len(got) != 0 {
		t.Fatalf("entries before an hour ago: %d", len(got))
	}
	if s, _, pr := h.raw(adminKey, "GET", "/v1/audit?action=a%00b", ""); s != 422 || !pr.has("query.action") {
		t.Fatalf("NUL in a filter: %d %+v", s, pr)
	}
	if s, _, pr := h.raw(adminKey, "GET", "/v1/audit?cursor=nope", ""); s != 422 || !pr.has("query.cursor") {
		t.Fatalf("bad cursor: %d %+v", s, pr)
	}

	// A tenant key sees its own tenant's entries, and nothing of others.
	h.setup("globex")
	var gk struct {
		Key string `json:"key"`
	}
	h.must(201, "POST", "/v1/api-keys", map[string]any{"role": "tenant", "tenant_id": "acme"}, &gk)
	own := h.auditAs(gk.Key, "/v1/tenants/acme/audit?limit=250").Data
	for _, e := range own {
		if e.TenantID != "acme" {
			t.Fatalf("the tenant's audit log shows %+v", e)
		}
	}
	if len(own) != len(want)-3+1 { // less the event type entries, plus the new key
		t.Fatalf("tenant audit has %d entries: %v", len(own), actions(own))
	}
	if s, _, _ := h.raw(gk.Key, "GET", "/v1/tenants/globex/audit", ""); s != 404 {
		t.Fatalf("another tenant's audit log: %d, want 404", s)
	}
	if s, _, _ := h.raw(gk.Key, "GET", "/v1/audit", ""); s != 403 {
		t.Fatalf("the whole audit log with a tenant key: %d, want 403", s)
	}
	if s, _, _ := h.raw(adminKey, "GET", "/v1/tenants/nobody/audit", ""); s != 404 {
		t.Fatalf("audit log of a missing tenant: %d, want 404", s)
	}
}

// Deleting a tenant removes all of its data and says how much; a tenant created again with the
// same id starts empty, its audit log included, while the operator's log keeps the deletion.
func TestAPI_DeleteTenantRemovesAllItsData(t *testing.T) {
	t.Parallel()
	deleteTenantRemovesAllItsData(t, nil)
}

func TestPostgres_DeleteTenantRemovesAllItsData(t *testing.T) {
	t.Parallel()
	deleteTenantRemovesAllItsData(t, onPostgres(t))
}

func deleteTenantRemovesAllItsData(t *testing.T, mod func(*node.Config)) {
	h := start(t, mod)
	rc := newReceiver(t, nil)
	h.setup("acme", "a.happened")
	h.setup("globex", "a.happened")
	var key struct {
		Key string `json:"key"`
	}
	h.must(201, "POST", "/v1/api-keys", map[string]any{"role": "tenant", "tenant_id": "acme"}, &key)
	h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}})
	h.endpoint("acme", map[string]any{"url": rc.URL + "/second", "event_types": []string{"*"}})
	h.endpoint("globex", map[string]any{"url": rc.URL + "/globex", "event_types": []string{"*"}})
	for range 3 {
		h.publish("acme", map[string]any{"type": "a.happened", "data": map[string]any{}})
	}
	h.publish("globex", map[string]any{"type": "a.happened", "data": map[string]any{}})
	eventually(t, 10*time.Second, "7 deliveries", func() bool { return rc.count() == 7 })
	eventually(t, 5*time.Second, "recorded attempts", func() bool {
		return len(h.deliveries("/v1/tenants/acme/deliveries?state=succeeded")) == 6
	})

	var out struct {
		TenantID string               `json:"tenant_id"`
		Deleted  store.TenantDeletion `json:"deleted"`
	}
	h.must(200, "DELETE", "/v1/tenants/acme", nil, &out)
	want := store.TenantDeletion{Events: 3, Deliveries: 6, Attempts: 6, Endpoints: 2, APIKeys: 1}
	if out.TenantID != "acme" || out.Deleted != want {
		t.Fatalf("delete answered %+v, want %+v", out, want)
	}
	if s, _, _ := h.raw(key.Key, "GET", "/v1/tenants/acme/endpoints", ""); s != 401 {
		t.Fatalf("the deleted tenant's key: %d, want 401", s)
	}
	if s, _, _ := h.raw(adminKey, "DELETE", "/v1/tenants/acme", ""); s != 404 {
		t.Fatalf("deleting again: %d, want 404", s)
	}
	if d := h.deliveries("/v1/tenants/globex/deliveries"); len(d) != 1 {
		t.Fatalf("the other tenant has %d deliveries", len(d))
	}
	log := h.auditAs(adminKey, "/v1/audit?action=tenant.delete").Data
	if len(log) != 1 || !strings.Contains(string(log[0].After), `"deliveries":6`) || log[0].Before == nil {
		t.Fatalf("tenant.delete entry = %+v", log)
	}

	h.must(201, "POST", "/v1/tenants", map[string]any{"id": "acme", "name": "Acme again"}, nil)
	for _, path := range []string{"/v1/tenants/acme/endpoints", "/v1/tenants/acme/events", "/v1/tenants/acme/deliveries", "/v1/tenants/acme/attempts"} {
		var page struct {
			Data []json.RawMessage `json:"data"`
		}
		h.must(200, "GET", path, nil, &page)
		if len(page.Data) != 0 {
			t.Errorf("the re-created tenant sees %d items at %s", len(page.Data), path)
		}
	}
	if got := actions(h.auditAs(adminKey, "/v1/tenants/acme/audit").Data); strings.Join(got, " ") != "tenant.create" {
		t.Fatalf("the re-created tenant's audit log = %v", got)
	}
}

// readExport reads an export and groups its lines by kind.
func readExport(t *testing.T, body io.Reader) map[string][]map[string]any {
	t.Helper()
	lines := map[string][]map[string]any{}
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		kind, _ := l["kind"].(string)
		lines[kind] = append(lines[kind], l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func export(t *testing.T, h *harness, key, query string) (int, string, map[string][]map[string]any) {
	t.Helper()
	req, err := http.NewRequest("GET", h.node.URL()+"/v1/tenants/acme/export"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return resp.StatusCode, resp.Header.Get("Content-Type"), nil
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), readExport(t, resp.Body)
}

// An export streams a tenant's events, deliveries and attempts as JSON lines, across pages,
// ending with the counts; only the tenant's own, only in the range, redacted.
func TestAPI_ExportStreamsTheTenantsHistory(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	rc := newReceiver(t, nil)
	h.setup("acme", "a.happened")
	h.setup("globex", "a.happened")
	h.must(200, "PATCH", "/v1/tenants/acme", map[string]any{"redact_fields": []string{"password"}}, nil)
	h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}})
	h.endpoint("globex", map[string]any{"url": rc.URL, "event_types": []string{"*"}})
	start := time.Now().UTC()
	var events []map[string]any
	for i := range 300 { // more than one page of each list
		events = append(events, map[string]any{"type": "a.happened", "data": map[string]any{"i": i, "password": "hunter2"}})
	}
	h.must(202, "POST", "/v1/tenants/acme/events/batch", map[string]any{"events": events}, nil)
	h.publish("globex", map[string]any{"type": "a.happened", "data": map[string]any{}})
	eventually(t, 20*time.Second, "301 deliveries", func() bool { return rc.count() == 301 })
	eventually(t, 5*time.Second, "recorded attempts", func() bool {
		var st struct {
			Attempts int `json:"attempts"`
		}
		h.must(200, "GET", "/v1/tenants/acme/stats", nil, &st)
		return st.Attempts == 300
	})
	var key struct {
		Key string `json:"key"`
	}
	h.must(201, "POST", "/v1/api-keys", map[string]any{"role": "tenant", "tenant_id": "acme"}, &key)

	status, ct, lines := export(t, h, key.Key, "?since="+start.Add(-time.Second).Format(time.RFC3339Nano))
	if status != 200 || ct != "application/x-ndjson" {
		t.Fatalf("export: %d %s", status, ct)
	}
	if len(lines["event"]) != 300 || len(lines["delivery"]) != 300 || len(lines["attempt"]) != 300 || len(lines["error"]) != 0 {
		t.Fatalf("export has %d events, %d deliveries, %d attempts, %d errors", len(lines["event"]), len(lines["delivery"]), len(lines["attempt"]), len(lines["error"]))
	}
	end := lines["end"]
	if len(end) != 1 || end[0]["events"] != float64(300) || end[0]["deliveries"] != float64(300) || end[0]["attempts"] != float64(300) {
		t.Fatalf("end line = %v", end)
	}
	ev := lines["event"][0]["event"].(map[string]any)
	data := ev["data"].(map[string]any)
	if data["password"] != "[REDACTED]" || data["i"] != float64(299) {
		t.Fatalf("newest exported event = %v", ev)
	}
	att := lines["attempt"][0]["attempt"].(map[string]any)
	if att["delivery_id"] == nil || att["event_id"] == nil || att["success"] != true {
		t.Fatalf("exported attempt = %v", att)
	}
	if _, _, lines := export(t, h, key.Key, "?since="+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); len(lines["event"])+len(lines["delivery"])+len(lines["attempt"]) != 0 || len(lines["end"]) != 1 {
		t.Fatalf("an export of the future = %v", lines)
	}
	if s, _, p := h.raw(key.Key, "GET", "/v1/tenants/acme/export?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", ""); s != 422 || !p.has("query.until") {
		t.Fatalf("until before since: %d %+v", s, p)
	}
	if log := h.auditAs(adminKey, "/v1/audit?action=tenant.export").Data; len(log) != 2 || log[0].Actor.Role != "tenant" {
		t.Fatalf("export audit entries = %+v", log)
	}
}

// echoReceiver answers every webhook with its body, as some receivers do, so that what Herald
// keeps of the answer holds the payload.
func echoReceiver(t *testing.T) (*httptest.Server, func() [][]byte, func() []http.Header) {
	var mu sync.Mutex
	var bodies [][]byte
	var headers []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, b)
		headers = append(headers, r.Header.Clone())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv, func() [][]byte {
			mu.Lock()
			defer mu.Unlock()
			return append([][]byte(nil), bodies...)
		}, func() []http.Header {
			mu.Lock()
			defer mu.Unlock()
			return append([]http.Header(nil), headers...)
		}
}

// A tenant's redacted fields reach its endpoint intact (signed), but API reads show them as
// [REDACTED], and the attempt's stored response never holds them.
func TestAPI_RedactionHidesFieldsButDeliversThem(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	srv, bodies, headers := echoReceiver(t)
	h.must(201, "POST", "/v1/tenants", map[string]any{"id": "acme", "name": "Acme", "redact_fields": []string{"card.number", "password"}}, nil)
	h.must(201, "POST", "/v1/event-types", map[string]any{"name": "order.paid"}, nil)
	ep := h.endpoint("acme", map[string]any{"url": srv.URL, "event_types": []string{"*"}})
	p := h.publish("acme", map[string]any{"type": "order.paid", "data": map[string]any{
		"amount": 1200, "card": map[string]any{"number": "4242424242424242", "brand": "visa"}, "user": map[string]any{"password": "hunter2"},
	}})
	eventually(t, 10*time.Second, "the delivery", func() bool { return len(h.deliveries("/v1/tenants/acme/deliveries?state=succeeded")) == 1 })

	got := bodies()
	if len(got) != 1 || !strings.Contains(string(got[0]), "4242424242424242") || !strings.Contains(string(got[0]), "hunter2") {
		t.Fatalf("the endpoint got %s; the payload must arrive intact", got)
	}
	wh, err := standardwebhooks.NewWebhook(ep.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(got[0], headers()[0]); err != nil {
		t.Fatalf("the delivered payload's signature: %v", err)
	}

	var ev struct {
		Data struct {
			Amount float64           `json:"amount"`
			Card   map[string]string `json:"card"`
			User   map[string]string `json:"user"`
		} `json:"data"`
	}
	h.must(200, "GET", "/v1/tenants/acme/events/"+p.ID, nil, &ev)
	if ev.Data.Card["number"] != "[REDACTED]" || ev.Data.User["password"] != "[REDACTED]" || ev.Data.Card["brand"] != "visa" || ev.Data.Amount != 1200 {
		t.Fatalf("event as the API shows it = %+v", ev.Data)
	}
	var list struct {
		Data []json.RawMessage `json:"data"`
	}
	h.must(200, "GET", "/v1/tenants/acme/events", nil, &list)
	ds := h.deliveries("/v1/tenants/acme/deliveries")
	var atts struct {
		Data []attemptOut `json:"data"`
	}
	h.must(200, "GET", "/v1/tenants/acme/attempts", nil, &atts)
	shown, _ := json.Marshal([]any{list, ds, atts})
	if strings.Contains(string(shown), "4242424242424242") || strings.Contains(string(shown), "hunter2") || !strings.Contains(string(shown), "[REDACTED]") {
		t.Fatalf("API reads show a redacted field: %s", shown)
	}
	stored, _, err := h.node.Store.ListAttempts(context.Background(), store.AttemptFilter{TenantID: "acme"})
	if err != nil || len(stored) != 1 {
		t.Fatalf("stored attempts: %v %+v", err, stored)
	}
	if r := stored[0].Response; strings.Contains(r, "4242424242424242") || strings.Contains(r, "hunter2") || !strings.Contains(r, `"number":"[REDACTED]"`) {
		t.Fatalf("the stored response = %s", r)
	}

	// The setting is checked field by field.
	if s, _, pr := h.raw(adminKey, "PATCH", "/v1/tenants/acme", `{"redact_fields":["ok","a..b"]}`); s != 422 || !pr.has("body.redact_fields[1]") {
		t.Fatalf("a bad path: %d %+v", s, pr)
	}
	var tn struct {
		RedactFields []string `json:"redact_fields"`
	}
	h.must(200, "PATCH", "/v1/tenants/acme", map[string]any{"redact_fields": []string{}}, &tn)
	if tn.RedactFields == nil || len(tn.RedactFields) != 0 {
		t.Fatalf("cleared redact_fields = %v", tn.RedactFields)
	}
	h.must(200, "GET", "/v1/tenants/acme/events/"+p.ID, nil, &ev)
	if ev.Data.Card["number"] != "4242424242424242" {
		t.Fatalf("without redaction the event shows %+v", ev.Data)
	}
}
