package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/store"
)

// receivedOut is a received request as the API answers it.
type receivedOut struct {
	ID          string              `json:"id"`
	SourceID    string              `json:"source_id"`
	Method      string              `json:"method"`
	Path        string              `json:"path"`
	Query       string              `json:"query"`
	Status      string              `json:"status"`
	Reason      string              `json:"reason"`
	DedupKey    string              `json:"dedup_key"`
	DuplicateOf string              `json:"duplicate_of"`
	EventID     string              `json:"event_id"`
	EventType   string              `json:"event_type"`
	Deliveries  int                 `json:"deliveries"`
	RemoteAddr  string              `json:"remote_addr"`
	BodySize    int                 `json:"body_size"`
	Headers     map[string][]string `json:"headers"`
	Body        *string             `json:"body"`
	BodyBase64  string              `json:"body_base64"`
	Forwarding  []struct {
		ID           string `json:"id"`
		EndpointID   string `json:"endpoint_id"`
		State        string `json:"state"`
		AttemptCount int    `json:"attempt_count"`
	} `json:"forwarding"`
}

// receivedWorld is a tenant with an endpoint, two sources and requests of every status, written
// with store.Receive as the receiving side writes them.
type receivedWorld struct {
	h                        *sourceHarness
	key                      string
	endpoint                 string
	src, other               string
	accepted, rejected, quar string
	duplicate, otherRejected string
	acceptedEvent            string
	t0                       time.Time
}

func newReceivedWorld(t *testing.T, h *sourceHarness) *receivedWorld {
	t.Helper()
	ctx := context.Background()
	w := &receivedWorld{h: h, key: h.tenantKey("acme"), t0: time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)}
	h.must(http.StatusOK, "PATCH", "/v1/tenants/acme", map[string]any{"redact_fields": []string{"card.number"}}, nil)
	var ep struct {
		ID string `json:"id"`
	}
	h.must(http.StatusCreated, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": "https://hooks.example.com/in", "event_types": []string{"*"}}, &ep)
	w.endpoint = ep.ID
	var src, other sourceOut
	h.must(http.StatusCreated, "POST", "/v1/tenants/acme/sources", map[string]any{
		"name": "payments", "verification": map[string]any{"scheme": "none"}, "event_type_prefix": "pay",
		"schema": map[string]any{"type": "object", "properties": map[string]any{"amount": map[string]any{"type": "number"}}},
	}, &src)
	h.must(http.StatusCreated, "POST", "/v1/tenants/acme/sources", map[string]any{"name": "other", "verification": map[string]any{"scheme": "none"}}, &other)
	w.src, w.other = src.ID, other.ID

	n := 0
	receive := func(sourceID string, status store.ReceiveStatus, body []byte, dedup string, withEvent bool) *store.ReceivedRequest {
		t.Helper()
		n++
		at := w.t0.Add(time.Duration(n) * time.Minute)
		req := &store.ReceivedRequest{
			ID: "req_0" + string(rune('0'+n)), TenantID: "acme", SourceID: sourceID, ReceivedAt: at, Method: "POST",
			Path: "/in/[REDACTED]", Query: "via=test",
			Headers: http.Header{"Content-Type": {"application/json"}, "Authorization": {"[REDACTED]"}, "X-Delivery": {"d1"}},
			Body:    body, RemoteAddr: "203.0.113.7:4711", Status: status, DedupKey: dedup,
		}
		if dedup != "" {
			req.DedupUntil = at.Add(store.DefaultDedupWindow)
		}
		if status == store.ReceiveRejected {
			req.Reason = "bad_signature: no secret produces the signature"
		}
		if status == store.ReceiveQuarantined {
			req.Reason = "schema: /amount: got string, want number"
		}
		var ev *store.Event
		if withEvent {
			payload, err := json.Marshal(map[string]any{"id": "evt_" + req.ID, "type": "pay.charge", "timestamp": at, "data": json.RawMessage(body), "source": sourceID})
			if err != nil {
				t.Fatal(err)
			}
			ev = &store.Event{ID: "evt_" + req.ID, TenantID: "acme", Type: "pay.charge", Timestamp: at, Source: sourceID, Payload: payload, CreatedAt: at}
			req.EventID, req.EventType = ev.ID, ev.Type
		}
		res, err := h.st.Receive(ctx, req, ev)
		if err != nil {
			t.Fatalf("receive %s: %v", req.ID, err)
		}
		return res.Request
	}
	acc := receive(w.src, store.ReceiveAccepted, []byte(`{"amount":5,"card":{"number":"4242424242424242"}}`), "ch_1", true)
	w.accepted, w.acceptedEvent = acc.ID, acc.EventID
	w.rejected = receive(w.src, store.ReceiveRejected, []byte{0xff, 0xfe, 'x'}, "", false).ID
	w.quar = receive(w.src, store.ReceiveQuarantined, []byte(`{"amount":"five"}`), "ch_2", false).ID
	dup := receive(w.src, store.ReceiveAccepted, []byte(`{"amount":5}`), "ch_1", true)
	if dup.Status != store.ReceiveDuplicate || dup.DuplicateOf != w.accepted {
		t.Fatalf("the store did not make the repeat a duplicate: %+v", dup)
	}
	w.duplicate = dup.ID
	w.otherRejected = receive(w.other, store.ReceiveRejected, []byte("hello"), "", false).ID
	return w
}

func (w *receivedWorld) list(t *testing.T, query string) []receivedOut {
	t.Helper()
	ans := w.h.do(w.key, "GET", "/v1/tenants/acme/received-requests"+query, nil)
	if ans.status != http.StatusOK {
		t.Fatalf("list %s = %d: %s", query, ans.status, ans.body)
	}
	if strings.Contains(string(ans.body), `"headers"`) || strings.Contains(string(ans.body), `"body"`) {
		t.Errorf("the list shows headers or bodies: %.300s", ans.body)
	}
	var page struct {
		Data []receivedOut `json:"data"`
	}
	if err := json.Unmarshal(ans.body, &page); err != nil {
		t.Fatal(err)
	}
	return page.Data
}

func ids(rs []receivedOut) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return strings.Join(out, ",")
}

func TestReceived_ListAndGet(t *testing.T) {
	t.Parallel()
	h := newSourceAPI(t, api.Config{}, false)
	w := newReceivedWorld(t, h)

	all := w.list(t, "")
	if got, want := ids(all), strings.Join([]string{w.otherRejected, w.duplicate, w.quar, w.rejected, w.accepted}, ","); got != want {
		t.Fatalf("list = %s, want newest first %s", got, want)
	}
	acc := all[4]
	if acc.SourceID != w.src || acc.Status != "accepted" || acc.EventID != w.acceptedEvent || acc.EventType != "pay.charge" ||
		acc.Deliveries != 1 || acc.DedupKey != "ch_1" || acc.BodySize != len(`{"amount":5,"card":{"number":"4242424242424242"}}`) || acc.Method != "POST" ||
		acc.Path != "/in/[REDACTED]" || acc.Query != "via=test" || acc.RemoteAddr != "203.0.113.7:4711" {
		t.Errorf("accepted request in the list: %+v", acc)
	}
	if d := all[1]; d.Status != "duplicate" || d.DuplicateOf != w.accepted || d.EventID != "" {
		t.Errorf("duplicate in the list: %+v", d)
	}
	if r := all[3]; r.Status != "rejected" || !strings.HasPrefix(r.Reason, "bad_signature") {
		t.Errorf("rejected in the list: %+v", r)
	}
	for _, c := range []struct{ query, want string }{
		{"?status=rejected&status=quarantined", strings.Join([]string{w.otherRejected, w.quar, w.rejected}, ",")},
		{"?source_id=" + w.other, w.otherRejected},
		{"?source_id=" + w.src + "&status=rejected", w.rejected},
		{"?since=" + w.t0.Add(150*time.Second).Format(time.RFC3339Nano) + "&until=" + w.t0.Add(270*time.Second).Format(time.RFC3339Nano), strings.Join([]string{w.duplicate, w.quar}, ",")},
		{"?source_id=src_unknown", ""},
	} {
		if got := ids(w.list(t, c.query)); got != c.want {
			t.Errorf("list %s = %s, want %s", c.query, got, c.want)
		}
	}
	// Pagination.
	var page struct {
		Data       []receivedOut `json:"data"`
		NextCursor string        `json:"next_cursor"`
	}
	h.must(http.StatusOK, "GET", "/v1/tenants/acme/received-requests?limit=2", nil, &page)
	if len(page.Data) != 2 || page.NextCursor == "" {
		t.Fatalf("first page %+v", page)
	}
	if got := ids(w.list(t, "?limit=3&cursor="+page.NextCursor)); got != strings.Join([]string{w.quar, w.rejected, w.accepted}, ",") {
		t.Errorf("second page = %s", got)
	}
	for _, q := range []string{"?status=lost", "?since=yesterday", "?limit=0", "?cursor=%21%21"} {
		if ans := h.do(w.key, "GET", "/v1/tenants/acme/received-requests"+q, nil); ans.status != http.StatusUnprocessableEntity {
			t.Errorf("list %s = %d, want 422: %s", q, ans.status, ans.body)
		} else {
			ans.problem(t)
		}
	}

	var got receivedOut
	h.must(http.StatusOK, "GET", "/v1/tenants/acme/received-requests/"+w.accepted, nil, &got)
	if got.Body == nil || *got.Body != `{"amount":5,"card":{"number":"[REDACTED]"}}` || got.BodyBase64 != "" {
		t.Errorf("accepted body %v / %q: want the JSON with the tenant's redacted field hidden", got.Body, got.BodyBase64)
	}
	if got.Headers["Authorization"][0] != "[REDACTED]" || got.Headers["X-Delivery"][0] != "d1" {
		t.Errorf("headers %v", got.Headers)
	}
	if len(got.Forwarding) != 1 || got.Forwarding[0].EndpointID != w.endpoint || got.Forwarding[0].State != "pending" {
		t.Errorf("forwarding %+v: want the pending delivery to the endpoint", got.Forwarding)
	}
	var bin receivedOut
	h.must(http.StatusOK, "GET", "/v1/tenants/acme/received-requests/"+w.rejected, nil, &bin)
	if got := bin; got.Body != nil || got.BodyBase64 != "//54" || len(got.Forwarding) != 0 {
		t.Errorf("binary body %v %q: want base64 only, and no forwarding", got.Body, got.BodyBase64)
	}
	var text receivedOut
	h.must(http.StatusOK, "GET", "/v1/tenants/acme/received-requests/"+w.otherRejected, nil, &text)
	if got := text; got.Body == nil || *got.Body != "hello" {
		t.Errorf("text body %v", got.Body)
	}

	// Another tenant sees none of it, whichever way it asks.
	other := h.tenantKey("other")
	for _, path := range []string{
		"/v1/tenants/acme/received-requests",
		"/v1/tenants/acme/received-requests/" + w.accepted,
		"/v1/tenants/other/received-requests/" + w.accepted,
	} {
		if ans := h.do(other, "GET", path, nil); ans.status != http.StatusNotFound {
			t.Errorf("another tenant's key on %s = %d, want 404", path, ans.status)
		}
	}
	if rs := func() string {
		ans := h.do(other, "GET", "/v1/tenants/other/received-requests", nil)
		return string(ans.body)
	}(); strings.Contains(rs, "req_") {
		t.Errorf("another tenant's list shows acme's requests: %s", rs)
	}
	if ans := h.do(h.admin, "GET", "/v1/tenants/nobody/received-requests", nil); ans.status != http.StatusNotFound {
		t.Errorf("unknown tenant's list = %d, want 404", ans.status)
	}

	// Deleting the source removes its requests.
	h.must(http.StatusNoContent, "DELETE", "/v1/tenants/acme/sources/"+w.other, nil, nil)
	if got := ids(w.list(t, "")); strings.Contains(got, w.otherRejected) {
		t.Errorf("after deleting its source, the list still has %s: %s", w.otherRejected, got)
	}
}

func TestReceived_ReplayAnswers(t *testing.T) {
	t.Parallel()
	h := newSourceAPI(t, api.Config{}, false)
	w := newReceivedWorld(t, h)
	replay := func(id string, body any) answer {
		return h.do(w.key, "POST", "/v1/tenants/acme/received-requests/"+id+"/replay", body)
	}
	type replayed struct {
		RequestID  string `json:"request_id"`
		EventID    string `json:"event_id"`
		Deliveries int    `json:"deliveries"`
		Accepted   bool   `json:"accepted"`
	}
	decode := func(ans answer) replayed {
		t.Helper()
		if ans.status != http.StatusAccepted {
			t.Fatalf("replay = %d, want 202: %s", ans.status, ans.body)
		}
		var r replayed
		if err := json.Unmarshal(ans.body, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}

	if ans := replay(w.rejected, nil); ans.status != http.StatusConflict {
		t.Errorf("replay of a rejected request = %d, want 409: %s", ans.status, ans.body)
	} else {
		ans.problem(t)
	}
	ans := replay(w.quar, map[string]any{})
	if ans.status != http.StatusUnprocessableEntity {
		t.Fatalf("replay of a quarantined request still failing the schema = %d, want 422: %s", ans.status, ans.body)
	}
	if msg, ok := ans.problem(t).find("payload/amount"); !ok || !strings.Contains(msg, "number") {
		t.Errorf("problem %s: want the schema's complaint at payload/amount", ans.body)
	}
	for _, id := range []string{"req_unknown", w.quar + "x"} {
		if ans := replay(id, nil); ans.status != http.StatusNotFound {
			t.Errorf("replay of %s = %d, want 404", id, ans.status)
		}
	}

	r := decode(replay(w.quar, map[string]any{"force": true}))
	if r.RequestID != w.quar || !r.Accepted || r.EventID == "" || r.Deliveries != 1 {
		t.Errorf("forced replay %+v: want the request accepted as an event with one delivery", r)
	}
	var got receivedOut
	h.must(http.StatusOK, "GET", "/v1/tenants/acme/received-requests/"+w.quar, nil, &got)
	if got.Status != "accepted" || got.EventID != r.EventID || got.EventType != "pay.webhook.received" || len(got.Forwarding) != 1 {
		t.Errorf("after the forced replay: %+v", got)
	}

	r = decode(replay(w.accepted, nil))
	if r.RequestID != w.accepted || r.EventID != w.acceptedEvent || r.Accepted || r.Deliveries != 1 {
		t.Errorf("replay of an accepted request %+v: want its event queued again", r)
	}
	r = decode(replay(w.duplicate, map[string]any{"force": false}))
	if r.RequestID != w.accepted || r.EventID != w.acceptedEvent {
		t.Errorf("replay of a duplicate %+v: want its original replayed", r)
	}

	var audit struct {
		Data []struct {
			Action   string `json:"action"`
			Resource struct {
				ID string `json:"id"`
			} `json:"resource"`
		} `json:"data"`
	}
	h.must(http.StatusOK, "GET", "/v1/tenants/acme/audit?action=received_request.replay", nil, &audit)
	if len(audit.Data) != 3 {
		t.Errorf("audit has %d replay entries, want the 3 that succeeded: %+v", len(audit.Data), audit.Data)
	}

	// Without a receiving side, a replay is 503; an unknown id is still 404.
	bare := newSourceAPI(t, api.Config{}, true)
	bw := newReceivedWorld(t, bare)
	if ans := bare.do(bw.key, "POST", "/v1/tenants/acme/received-requests/"+bw.accepted+"/replay", nil); ans.status != http.StatusServiceUnavailable {
		t.Errorf("replay without Inbound = %d, want 503: %s", ans.status, ans.body)
	} else {
		ans.problem(t)
	}
	if ans := bare.do(bw.key, "POST", "/v1/tenants/acme/received-requests/req_unknown/replay", nil); ans.status != http.StatusNotFound {
		t.Errorf("replay of an unknown id without Inbound = %d, want 404", ans.status)
	}
}
