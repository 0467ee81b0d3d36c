package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

func sourceSettings() store.SourceSettings {
	return store.SourceSettings{
		Description:  "GitHub pushes",
		Verification: json.RawMessage(`{"scheme":"github","secrets":["gh-secret-XYZ"]}`),
		AllowIPs:     []string{"192.30.252.0/22"},
		RateLimit:    5, RateBurst: 10,
		Dedup:           store.Dedup{By: store.DedupHeader, Header: "X-GitHub-Delivery", WindowSeconds: 3600},
		EventTypePrefix: "github.",
	}
}

func source(t *testing.T, s store.Store, tenantID, id string) *store.Source {
	t.Helper()
	n := now()
	src := &store.Source{ID: id, TenantID: tenantID, Name: "Source " + id, Token: "src_tok_" + tenantID + "_" + id, Enabled: true,
		Settings: sourceSettings(), CreatedAt: n, UpdatedAt: n}
	must(t, s.CreateSource(ctx, src))
	return src
}

// request makes a received request of a source; key "" opens no dedup window.
func request(id, tenantID, sourceID string, status store.ReceiveStatus, key string, at time.Time) *store.ReceivedRequest {
	r := &store.ReceivedRequest{
		ID: id, TenantID: tenantID, SourceID: sourceID, ReceivedAt: at, Method: http.MethodPost, Path: "/in/tok",
		Query: "a=1", Headers: http.Header{"Content-Type": {"application/json"}, "X-Github-Delivery": {key}},
		Body: []byte(`{"hello":"world"}`), RemoteAddr: "192.30.252.1", Status: status, DedupKey: key,
	}
	if key != "" {
		r.DedupUntil = at.Add(time.Hour)
	}
	switch status {
	case store.ReceiveQuarantined:
		r.Reason = "schema: missing property \"action\""
	case store.ReceiveRejected:
		r.Reason = "bad_signature: no signature matches"
	}
	return r
}

func receive(t *testing.T, s store.Store, r *store.ReceivedRequest, ev *store.Event) *store.ReceiveResult {
	t.Helper()
	res, err := s.Receive(ctx, r, ev)
	must(t, err)
	return res
}

func sameSource(t *testing.T, got, want *store.Source) {
	t.Helper()
	if got.ID != want.ID || got.TenantID != want.TenantID || got.Name != want.Name || got.Token != want.Token ||
		got.Enabled != want.Enabled || !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Fatalf("source = %+v, want %+v", got, want)
	}
	g, w := got.Settings, want.Settings
	if !sameJSON(g.Verification, w.Verification) || g.Description != w.Description || !slices.Equal(g.AllowIPs, w.AllowIPs) ||
		g.RateLimit != w.RateLimit || g.RateBurst != w.RateBurst || g.Dedup != w.Dedup || g.EventTypePrefix != w.EventTypePrefix {
		t.Fatalf("source settings = %+v, want %+v", g, w)
	}
}

func testSourceCRUD(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	tenant(t, s, "other")
	n := now()
	src := &store.Source{ID: "src_1", TenantID: "acme", Name: "GitHub", Token: "src_tok_one", Enabled: true,
		Settings: sourceSettings(), CreatedAt: n, UpdatedAt: n}
	a := auditEntry("source.create", "source", "src_1", "acme", "", `{"name":"GitHub"}`)
	must(t, s.CreateSource(audited(a), src))
	if a.ID == 0 {
		t.Fatal("CreateSource did not record its audit entry")
	}
	got, err := s.GetSource(ctx, "acme", "src_1")
	must(t, err)
	sameSource(t, got, src)
	byToken, err := s.SourceByToken(ctx, "src_tok_one")
	must(t, err)
	sameSource(t, byToken, src)

	for name, c := range map[string]*store.Source{
		"taken id":    {ID: "src_1", TenantID: "acme", Token: "src_tok_other", CreatedAt: n, UpdatedAt: n},
		"taken token": {ID: "src_2", TenantID: "acme", Token: "src_tok_one", CreatedAt: n, UpdatedAt: n},
	} {
		if err := s.CreateSource(ctx, c); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("create with a %s: %v, want ErrConflict", name, err)
		}
	}
	if err := s.CreateSource(ctx, &store.Source{ID: "src_3", TenantID: "nobody", Token: "src_tok_3", CreatedAt: n, UpdatedAt: n}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("create for a missing tenant: %v, want ErrNotFound", err)
	}
	bare := &store.Source{ID: "src_bare", TenantID: "other", Token: "src_tok_bare", CreatedAt: n, UpdatedAt: n}
	must(t, s.CreateSource(ctx, bare))
	if got, err := s.GetSource(ctx, "other", "src_bare"); err != nil || got.Settings.Verification != nil || got.Enabled {
		t.Fatalf("a source without settings reads back as %+v: %v", got, err)
	}
	if _, err := s.GetSource(ctx, "other", "src_1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("source of another tenant: %v, want ErrNotFound", err)
	}
	if _, err := s.SourceByToken(ctx, "src_tok_nothing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown token: %v, want ErrNotFound", err)
	}

	// Rotating the token: the old one finds nothing at once.
	src.Token, src.Name, src.Enabled, src.UpdatedAt = "src_tok_two", "GitHub (org)", false, n.Add(time.Second)
	src.Settings.Dedup.WindowSeconds = 60
	a = auditEntry("source.update", "source", "src_1", "acme", `{"name":"GitHub"}`, `{"name":"GitHub (org)"}`)
	must(t, s.UpdateSource(audited(a), src))
	if a.ID == 0 {
		t.Fatal("UpdateSource did not record its audit entry")
	}
	if _, err := s.SourceByToken(ctx, "src_tok_one"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the old token after rotation: %v, want ErrNotFound", err)
	}
	byToken, err = s.SourceByToken(ctx, "src_tok_two")
	must(t, err)
	sameSource(t, byToken, src)
	got, err = s.GetSource(ctx, "acme", "src_1")
	must(t, err)
	sameSource(t, got, src)

	other := source(t, s, "acme", "src_4")
	other.Token = "src_tok_two"
	if err := s.UpdateSource(ctx, other); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("update to a taken token: %v, want ErrConflict", err)
	}
	missing := *src
	missing.ID = "src_missing"
	missing.Token = "src_tok_missing"
	if err := s.UpdateSource(ctx, &missing); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of a missing source: %v, want ErrNotFound", err)
	}
	wrongTenant := *src
	wrongTenant.TenantID = "other"
	if err := s.UpdateSource(ctx, &wrongTenant); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update through another tenant: %v, want ErrNotFound", err)
	}

	// Oldest first, in pages.
	for i := range 3 {
		source(t, s, "acme", fmt.Sprintf("src_p%d", i))
	}
	source(t, s, "other", "src_elsewhere")
	var ids []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		list, next, err := s.ListSources(ctx, "acme", store.Page{Limit: 2, Cursor: cursor})
		must(t, err)
		for _, x := range list {
			ids = append(ids, x.ID)
			if x.ID == "src_1" {
				sameSource(t, &x, src)
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if fmt.Sprint(ids) != "[src_1 src_4 src_p0 src_p1 src_p2]" {
		t.Fatalf("listed sources = %v", ids)
	}
	if _, _, err := s.ListSources(ctx, "acme", store.Page{Cursor: "!!"}); !errors.Is(err, store.ErrBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}

	if err := s.DeleteSource(ctx, "other", "src_1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete through another tenant: %v, want ErrNotFound", err)
	}
	a = auditEntry("source.delete", "source", "src_1", "acme", `{"name":"GitHub (org)"}`, "")
	must(t, s.DeleteSource(audited(a), "acme", "src_1"))
	if a.ID == 0 {
		t.Fatal("DeleteSource did not record its audit entry")
	}
	if _, err := s.GetSource(ctx, "acme", "src_1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted source: %v, want ErrNotFound", err)
	}
	if _, err := s.SourceByToken(ctx, "src_tok_two"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("token of a deleted source: %v, want ErrNotFound", err)
	}
	if err := s.DeleteSource(ctx, "acme", "src_1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleting twice: %v, want ErrNotFound", err)
	}
	// A failed write records nothing.
	fail := auditEntry("source.delete", "source", "src_1", "acme", "", "")
	if err := s.DeleteSource(audited(fail), "acme", "src_1"); !errors.Is(err, store.ErrNotFound) || fail.ID != 0 {
		t.Fatalf("a failed delete: %v, audit id %d", err, fail.ID)
	}
	var actions []string
	for _, e := range auditLog(t, s, store.AuditFilter{ResourceType: "source"}) {
		actions = append(actions, e.Action)
	}
	if fmt.Sprint(actions) != "[source.delete source.update source.create]" {
		t.Fatalf("audit log of sources = %v", actions)
	}
}

func testReceiveAccepted(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "all", "*")
	endpoint(t, s, "acme", "pushes", "github.*")
	endpoint(t, s, "acme", "issues", "github.issues")
	off := endpoint(t, s, "acme", "off", "*")
	off.Enabled = false
	must(t, s.UpdateEndpoint(ctx, off))
	source(t, s, "acme", "src")
	at := now()
	req := request("req_1", "acme", "src", store.ReceiveAccepted, "d-1", at)
	ev := event("evt_1", "github.push")
	res := receive(t, s, req, ev)
	if res.Published == nil || res.Published.Duplicate || res.Published.Deliveries != 2 || len(res.Published.EndpointIDs) != 2 {
		t.Fatalf("published = %+v", res.Published)
	}
	r := res.Request
	if r.Status != store.ReceiveAccepted || r.EventID != "evt_1" || r.EventType != "github.push" || r.Deliveries != 2 || r.DuplicateOf != "" {
		t.Fatalf("stored request = %+v", r)
	}
	ds, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "acme", EventID: "evt_1"})
	must(t, err)
	var got []string
	for _, d := range ds {
		got = append(got, d.EndpointID)
	}
	slices.Sort(got)
	want := slices.Clone(res.Published.EndpointIDs)
	slices.Sort(want)
	if !slices.Equal(got, want) || fmt.Sprint(got) != "[all pushes]" {
		t.Fatalf("deliveries to %v, published to %v", got, want)
	}
	stored, err := s.GetEvent(ctx, "acme", "evt_1")
	must(t, err)
	if string(stored.Payload) != string(ev.Payload) || stored.Type != "github.push" {
		t.Fatalf("event = %+v", stored)
	}

	back, err := s.GetReceived(ctx, "acme", "req_1")
	must(t, err)
	if back.ID != req.ID || back.SourceID != "src" || !back.ReceivedAt.Equal(at) || back.Method != "POST" || back.Path != req.Path ||
		back.Query != req.Query || back.Headers.Get("Content-Type") != "application/json" || string(back.Body) != string(req.Body) ||
		back.RemoteAddr != req.RemoteAddr || back.Status != store.ReceiveAccepted || back.DedupKey != "d-1" ||
		!back.DedupUntil.Equal(req.DedupUntil) || back.EventID != "evt_1" || back.EventType != "github.push" || back.Deliveries != 2 {
		t.Fatalf("read back %+v, want %+v", back, r)
	}
	if req.Status != store.ReceiveAccepted || req.EventID != "" {
		t.Fatal("Receive changed the caller's request")
	}

	// An accepted request without a key is never a duplicate; an event id the tenant already has is
	// a duplicate publish, as with Publish.
	res = receive(t, s, request("req_2", "acme", "src", store.ReceiveAccepted, "", at), event("evt_1", "github.other"))
	if res.Published == nil || !res.Published.Duplicate || res.Published.Deliveries != 0 || res.Request.EventID != "evt_1" ||
		res.Request.EventType != "github.push" || res.Request.Deliveries != 0 {
		t.Fatalf("an event id already stored: %+v %+v", res.Request, res.Published)
	}
	if back, err := s.GetReceived(ctx, "acme", "req_2"); err != nil || back.EventType != "github.push" || back.Status != store.ReceiveAccepted {
		t.Fatalf("an event id already stored, read back: %+v %v", back, err)
	}
	if _, err := s.Receive(ctx, request("req_2", "acme", "src", store.ReceiveRejected, "", at), nil); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a request id already stored: %v, want ErrConflict", err)
	}
	if _, err := s.Receive(ctx, request("req_3", "acme", "nowhere", store.ReceiveAccepted, "d-3", at), event("evt_3", "a.b")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("receive for a missing source: %v, want ErrNotFound", err)
	}
	if _, err := s.GetEvent(ctx, "acme", "evt_3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a receive that failed stored its event: %v", err)
	}
}

func testReceiveDedup(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "all", "*")
	source(t, s, "acme", "src")
	source(t, s, "acme", "src_b")
	t0 := now()

	first := receive(t, s, request("req_1", "acme", "src", store.ReceiveAccepted, "k", t0), event("evt_1", "a.b"))
	if first.Request.Status != store.ReceiveAccepted {
		t.Fatalf("first = %+v", first.Request)
	}
	dup := receive(t, s, request("req_2", "acme", "src", store.ReceiveAccepted, "k", t0.Add(time.Minute)), event("evt_2", "a.b"))
	if dup.Request.Status != store.ReceiveDuplicate || dup.Request.DuplicateOf != "req_1" || dup.Published != nil ||
		dup.Request.EventID != "" || dup.Request.Deliveries != 0 {
		t.Fatalf("duplicate = %+v, published %+v", dup.Request, dup.Published)
	}
	if _, err := s.GetEvent(ctx, "acme", "evt_2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a duplicate stored its event: %v", err)
	}
	back, err := s.GetReceived(ctx, "acme", "req_2")
	must(t, err)
	if back.Status != store.ReceiveDuplicate || back.DuplicateOf != "req_1" || back.DedupKey != "k" {
		t.Fatalf("duplicate read back = %+v", back)
	}
	// A quarantined request is deduplicated too; a rejected one never (nor does it take a key).
	q := receive(t, s, request("req_3", "acme", "src", store.ReceiveQuarantined, "k", t0.Add(2*time.Minute)), nil)
	if q.Request.Status != store.ReceiveDuplicate || q.Request.DuplicateOf != "req_1" {
		t.Fatalf("quarantined with a held key = %+v", q.Request)
	}
	rej := receive(t, s, request("req_4", "acme", "src", store.ReceiveRejected, "k", t0.Add(3*time.Minute)), nil)
	if rej.Request.Status != store.ReceiveRejected || rej.Request.DuplicateOf != "" || rej.Published != nil {
		t.Fatalf("rejected = %+v", rej.Request)
	}
	rej = receive(t, s, request("req_5", "acme", "src", store.ReceiveRejected, "fresh", t0.Add(3*time.Minute)), nil)
	if rej.Request.Status != store.ReceiveRejected {
		t.Fatalf("rejected = %+v", rej.Request)
	}
	if r := receive(t, s, request("req_6", "acme", "src", store.ReceiveAccepted, "fresh", t0.Add(4*time.Minute)), event("evt_6", "a.b")); r.Request.Status != store.ReceiveAccepted {
		t.Fatalf("a key a rejected request carried was taken: %+v", r.Request)
	}
	// Keys are per source.
	if r := receive(t, s, request("req_7", "acme", "src_b", store.ReceiveAccepted, "k", t0.Add(5*time.Minute)), event("evt_7", "a.b")); r.Request.Status != store.ReceiveAccepted {
		t.Fatalf("the key of another source: %+v", r.Request)
	}
	// After the window (an hour) the key is taken again, and opens a new window.
	again := receive(t, s, request("req_8", "acme", "src", store.ReceiveAccepted, "k", t0.Add(time.Hour)), event("evt_8", "a.b"))
	if again.Request.Status != store.ReceiveAccepted || again.Published == nil || again.Published.Deliveries != 1 {
		t.Fatalf("after the window = %+v", again.Request)
	}
	dup = receive(t, s, request("req_9", "acme", "src", store.ReceiveAccepted, "k", t0.Add(time.Hour+time.Minute)), event("evt_9", "a.b"))
	if dup.Request.Status != store.ReceiveDuplicate || dup.Request.DuplicateOf != "req_8" {
		t.Fatalf("a duplicate in the new window = %+v", dup.Request)
	}
	evs, _, err := s.ListEvents(ctx, store.EventFilter{TenantID: "acme"})
	must(t, err)
	if len(evs) != 4 {
		t.Fatalf("%d events, want 4 (evt_1, evt_6, evt_7, evt_8)", len(evs))
	}
}

// Concurrent receives of one key: exactly one takes it, whatever the driver's concurrency.
func testReceiveDedupConcurrent(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "all", "*")
	source(t, s, "acme", "src")
	at := now()
	const n = 20
	results := make([]*store.ReceiveResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = s.Receive(ctx, request(fmt.Sprintf("req_%d", i), "acme", "src", store.ReceiveAccepted, "same", at),
				event(fmt.Sprintf("evt_%d", i), "a.b"))
		})
	}
	wg.Wait()
	accepted := ""
	for i, err := range errs {
		must(t, err)
		if results[i].Request.Status == store.ReceiveAccepted {
			if accepted != "" {
				t.Fatalf("both %s and %s were accepted", accepted, results[i].Request.ID)
			}
			accepted = results[i].Request.ID
		}
	}
	if accepted == "" {
		t.Fatal("no request was accepted")
	}
	for _, r := range results {
		if r.Request.ID != accepted && (r.Request.Status != store.ReceiveDuplicate || r.Request.DuplicateOf != accepted || r.Published != nil) {
			t.Fatalf("request %s = %+v, want a duplicate of %s", r.Request.ID, r.Request, accepted)
		}
	}
	evs, _, err := s.ListEvents(ctx, store.EventFilter{TenantID: "acme"})
	must(t, err)
	ds, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "acme"})
	must(t, err)
	if len(evs) != 1 || len(ds) != 1 {
		t.Fatalf("%d events and %d deliveries, want 1 each", len(evs), len(ds))
	}
	dups, _, err := s.ListReceived(ctx, store.ReceivedFilter{TenantID: "acme", Statuses: []store.ReceiveStatus{store.ReceiveDuplicate}, Page: store.Page{Limit: 100}})
	must(t, err)
	if len(dups) != n-1 {
		t.Fatalf("%d duplicates stored, want %d", len(dups), n-1)
	}
}

func testAcceptReceived(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	tenant(t, s, "other")
	endpoint(t, s, "acme", "all", "*")
	endpoint(t, s, "acme", "pushes", "github.push")
	endpoint(t, s, "acme", "none", "nothing.else")
	source(t, s, "acme", "src")
	at := now()
	q := receive(t, s, request("req_q", "acme", "src", store.ReceiveQuarantined, "k", at), event("evt_ignored", "github.push"))
	if q.Request.Status != store.ReceiveQuarantined || q.Published != nil || q.Request.EventID != "" {
		t.Fatalf("quarantined = %+v %+v", q.Request, q.Published)
	}
	if _, err := s.GetEvent(ctx, "acme", "evt_ignored"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a quarantined request stored its event: %v", err)
	}
	if _, err := s.AcceptReceived(ctx, "other", "req_q", event("evt_q", "github.push")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("accept through another tenant: %v, want ErrNotFound", err)
	}
	if _, err := s.AcceptReceived(ctx, "acme", "req_missing", event("evt_q", "github.push")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("accept of a missing request: %v, want ErrNotFound", err)
	}

	a := auditEntry("received.accept", "received_request", "req_q", "acme", `{"status":"quarantined"}`, `{"status":"accepted"}`)
	res, err := s.AcceptReceived(audited(a), "acme", "req_q", event("evt_q", "github.push"))
	must(t, err)
	if a.ID == 0 {
		t.Fatal("AcceptReceived did not record the audit entry ctx carries")
	}
	r := res.Request
	if res.Published == nil || res.Published.Deliveries != 2 || r.Status != store.ReceiveAccepted || r.EventID != "evt_q" ||
		r.EventType != "github.push" || r.Deliveries != 2 || r.Reason != q.Request.Reason || r.ID != "req_q" || string(r.Body) != string(q.Request.Body) {
		t.Fatalf("accepted = %+v, published %+v", r, res.Published)
	}
	back, err := s.GetReceived(ctx, "acme", "req_q")
	must(t, err)
	if back.Status != store.ReceiveAccepted || back.EventID != "evt_q" || back.EventType != "github.push" || back.Deliveries != 2 {
		t.Fatalf("accepted read back = %+v", back)
	}
	ds, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "acme", EventID: "evt_q"})
	must(t, err)
	if len(ds) != 2 {
		t.Fatalf("%d deliveries of the accepted event, want 2", len(ds))
	}
	if _, err := s.AcceptReceived(ctx, "acme", "req_q", event("evt_q2", "github.push")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("accepting twice: %v, want ErrConflict", err)
	}
	if _, err := s.GetEvent(ctx, "acme", "evt_q2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused accept stored its event: %v", err)
	}
	// The key it took stays taken: a repeat is a duplicate of it.
	if d := receive(t, s, request("req_again", "acme", "src", store.ReceiveAccepted, "k", at.Add(time.Second)), event("evt_again", "a.b")); d.Request.DuplicateOf != "req_q" {
		t.Fatalf("after accept, a repeat = %+v", d.Request)
	}
	// A rejected request is accepted too (the caller decides whether it may be: a broker
	// source's refused message once fixed, never an HTTP request that did not verify).
	receive(t, s, request("req_r", "acme", "src", store.ReceiveRejected, "", at), nil)
	rej, err := s.AcceptReceived(ctx, "acme", "req_r", event("evt_r", "github.push"))
	must(t, err)
	if rej.Published == nil || rej.Published.Duplicate || rej.Published.Deliveries != 2 || rej.Request.Status != store.ReceiveAccepted || rej.Request.EventID != "evt_r" {
		t.Fatalf("accepted rejected request = %+v, published %+v", rej.Request, rej.Published)
	}
	if _, err := s.AcceptReceived(ctx, "acme", "req_r", event("evt_r", "github.push")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("accepting a rejected request twice: %v, want ErrConflict", err)
	}
	// An event of that id exists already: the request becomes that event's, a duplicate with no
	// new delivery.
	receive(t, s, request("req_q2", "acme", "src", store.ReceiveQuarantined, "k2", at), nil)
	dup, err := s.AcceptReceived(ctx, "acme", "req_q2", event("evt_q", "github.push"))
	must(t, err)
	if dup.Published == nil || !dup.Published.Duplicate || dup.Published.Deliveries != 0 || dup.Request.Status != store.ReceiveAccepted || dup.Request.EventID != "evt_q" {
		t.Fatalf("accept of an existing event = %+v, published %+v", dup.Request, dup.Published)
	}
	ds, _, err = s.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "acme", EventID: "evt_q"})
	must(t, err)
	if len(ds) != 2 {
		t.Fatalf("%d deliveries of evt_q after a duplicate accept, want 2", len(ds))
	}
}

func testListReceived(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	tenant(t, s, "other")
	source(t, s, "acme", "src_a")
	source(t, s, "acme", "src_b")
	source(t, s, "other", "src_o")
	t0 := now().Add(-time.Hour)
	statuses := []store.ReceiveStatus{store.ReceiveAccepted, store.ReceiveRejected, store.ReceiveQuarantined}
	for i := range 9 {
		src := "src_a"
		if i%3 == 2 {
			src = "src_b"
		}
		receive(t, s, request(fmt.Sprintf("req_%d", i), "acme", src, statuses[i%3], "", t0.Add(time.Duration(i)*time.Minute)), nil)
	}
	receive(t, s, request("req_o", "other", "src_o", store.ReceiveAccepted, "", t0), nil)

	// A list gives each request's body size without reading the body (bodies may be 10 MiB each);
	// one request read alone has its body.
	list, _, err := s.ListReceived(ctx, store.ReceivedFilter{TenantID: "acme"})
	must(t, err)
	for _, r := range list {
		full, err := s.GetReceived(ctx, "acme", r.ID)
		must(t, err)
		if len(r.Body) != 0 || r.BodySize != len(full.Body) || full.BodySize != len(full.Body) || len(full.Body) == 0 {
			t.Fatalf("%s: listed with a body of %d bytes and size %d; read alone: %d bytes, size %d", r.ID, len(r.Body), r.BodySize, len(full.Body), full.BodySize)
		}
	}

	ids := func(f store.ReceivedFilter) []string {
		t.Helper()
		f.TenantID = "acme"
		var out []string
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatal("pagination does not end")
			}
			list, next, err := s.ListReceived(ctx, f)
			must(t, err)
			if f.Limit > 0 && len(list) > f.Limit {
				t.Fatalf("a page of %d, limit %d", len(list), f.Limit)
			}
			for _, r := range list {
				out = append(out, r.ID)
			}
			if next == "" {
				return out
			}
			f.Cursor = next
		}
	}
	for name, c := range map[string]struct {
		f    store.ReceivedFilter
		want string
	}{
		"all, newest first": {store.ReceivedFilter{}, "[req_8 req_7 req_6 req_5 req_4 req_3 req_2 req_1 req_0]"},
		"pages of two":      {store.ReceivedFilter{Page: store.Page{Limit: 2}}, "[req_8 req_7 req_6 req_5 req_4 req_3 req_2 req_1 req_0]"},
		"one source":        {store.ReceivedFilter{SourceID: "src_b", Page: store.Page{Limit: 1}}, "[req_8 req_5 req_2]"},
		"statuses": {store.ReceivedFilter{Statuses: []store.ReceiveStatus{store.ReceiveRejected, store.ReceiveQuarantined}, Page: store.Page{Limit: 4}},
			"[req_8 req_7 req_5 req_4 req_2 req_1]"},
		"source and status": {store.ReceivedFilter{SourceID: "src_a", Statuses: []store.ReceiveStatus{store.ReceiveAccepted}}, "[req_6 req_3 req_0]"},
		"since and until":   {store.ReceivedFilter{Since: t0.Add(2 * time.Minute), Until: t0.Add(5 * time.Minute)}, "[req_4 req_3 req_2]"},
		"other source":      {store.ReceivedFilter{SourceID: "src_o"}, "[]"},
	} {
		if got := fmt.Sprint(ids(c.f)); got != c.want {
			t.Errorf("%s: %s, want %s", name, got, c.want)
		}
	}
	if _, _, err := s.ListReceived(ctx, store.ReceivedFilter{TenantID: "acme", Page: store.Page{Cursor: "!!"}}); !errors.Is(err, store.ErrBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
}

func testReceivedTenantIsolation(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	tenant(t, s, "other")
	source(t, s, "acme", "src")
	at := now()
	receive(t, s, request("req_1", "acme", "src", store.ReceiveRejected, "", at), nil)
	if _, err := s.GetReceived(ctx, "other", "req_1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a request of another tenant: %v, want ErrNotFound", err)
	}
	if list, _, err := s.ListReceived(ctx, store.ReceivedFilter{TenantID: "other"}); err != nil || len(list) != 0 {
		t.Fatalf("another tenant lists %d requests: %v", len(list), err)
	}
	// A source is received into only for its own tenant.
	if _, err := s.Receive(ctx, request("req_2", "other", "src", store.ReceiveAccepted, "k", at), event("evt_2", "a.b")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("receive into another tenant's source: %v, want ErrNotFound", err)
	}
	if _, err := s.GetEvent(ctx, "other", "evt_2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused receive stored its event: %v", err)
	}
}

func testDeleteSourceRemovesRequests(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "all", "*")
	source(t, s, "acme", "src")
	source(t, s, "acme", "keep")
	at := now()
	receive(t, s, request("req_1", "acme", "src", store.ReceiveAccepted, "k", at), event("evt_1", "a.b"))
	receive(t, s, request("req_2", "acme", "src", store.ReceiveRejected, "", at), nil)
	receive(t, s, request("req_3", "acme", "keep", store.ReceiveAccepted, "k", at), event("evt_3", "a.b"))
	must(t, s.DeleteSource(ctx, "acme", "src"))
	for _, id := range []string{"req_1", "req_2"} {
		if _, err := s.GetReceived(ctx, "acme", id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("request %s of a deleted source: %v, want ErrNotFound", id, err)
		}
	}
	if _, err := s.GetReceived(ctx, "acme", "req_3"); err != nil {
		t.Fatalf("the request of another source: %v", err)
	}
	if _, err := s.GetEvent(ctx, "acme", "evt_1"); err != nil {
		t.Fatalf("the event a request became went with its source: %v", err)
	}
	if _, err := s.Receive(ctx, request("req_4", "acme", "src", store.ReceiveAccepted, "", at), event("evt_4", "a.b")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("receive on a deleted source: %v, want ErrNotFound", err)
	}
	// Its keys went with it: a source created again with the same id starts afresh.
	source(t, s, "acme", "src")
	if r := receive(t, s, request("req_5", "acme", "src", store.ReceiveAccepted, "k", at), event("evt_5", "a.b")); r.Request.Status != store.ReceiveAccepted {
		t.Fatalf("a key of the deleted source still held: %+v", r.Request)
	}
	if r := receive(t, s, request("req_6", "acme", "keep", store.ReceiveAccepted, "k", at), event("evt_6", "a.b")); r.Request.DuplicateOf != "req_3" {
		t.Fatalf("the key of another source was lost: %+v", r.Request)
	}
}

func testDeleteTenantSources(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	tenant(t, s, "other")
	endpoint(t, s, "acme", "all", "*")
	source(t, s, "acme", "src_1")
	source(t, s, "acme", "src_2")
	source(t, s, "other", "src_o")
	at := now()
	receive(t, s, request("req_1", "acme", "src_1", store.ReceiveAccepted, "k", at), event("evt_1", "a.b"))
	receive(t, s, request("req_2", "acme", "src_1", store.ReceiveAccepted, "k", at), event("evt_2", "a.b"))
	receive(t, s, request("req_3", "acme", "src_2", store.ReceiveQuarantined, "", at), nil)
	receive(t, s, request("req_o", "other", "src_o", store.ReceiveAccepted, "k", at), nil)
	del, err := s.DeleteTenant(ctx, "acme")
	must(t, err)
	if del.Sources != 2 || del.Received != 3 || del.Events != 1 || del.Deliveries != 1 || del.Endpoints != 1 {
		t.Fatalf("deletion = %+v, want 2 sources, 3 received requests, 1 event, 1 delivery, 1 endpoint", del)
	}
	if _, err := s.SourceByToken(ctx, "src_tok_acme_src_1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a source of a deleted tenant: %v, want ErrNotFound", err)
	}
	if _, err := s.GetReceived(ctx, "other", "req_o"); err != nil {
		t.Fatalf("another tenant's request: %v", err)
	}
	// A tenant created again with the same id starts afresh, keys included.
	tenant(t, s, "acme")
	if list, _, err := s.ListSources(ctx, "acme", store.Page{}); err != nil || len(list) != 0 {
		t.Fatalf("the re-created tenant has %d sources: %v", len(list), err)
	}
	source(t, s, "acme", "src_1")
	if r := receive(t, s, request("req_4", "acme", "src_1", store.ReceiveAccepted, "k", at), nil); r.Request.Status != store.ReceiveAccepted {
		t.Fatalf("a key of the deleted tenant still held: %+v", r.Request)
	}
}

func testRetentionReceived(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	source(t, s, "acme", "src")
	n := now()
	old := request("req_old", "acme", "src", store.ReceiveAccepted, "expired", n.Add(-48*time.Hour)) // window ended 47h ago
	receive(t, s, old, nil)
	held := request("req_held", "acme", "src", store.ReceiveAccepted, "held", n.Add(-48*time.Hour))
	held.DedupUntil = n.Add(time.Hour) // a long window outlives its request
	receive(t, s, held, nil)
	receive(t, s, request("req_new", "acme", "src", store.ReceiveAccepted, "new", n), nil)

	removed, err := s.DeleteOlderThan(ctx, n.Add(-24*time.Hour), 100)
	must(t, err)
	// Two requests and the key whose window ended; the key still in its window stays.
	if removed != 3 {
		t.Fatalf("retention removed %d rows, want 3 (two requests, one key)", removed)
	}
	for _, id := range []string{"req_old", "req_held"} {
		if _, err := s.GetReceived(ctx, "acme", id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("old request %s: %v, want ErrNotFound", id, err)
		}
	}
	if _, err := s.GetReceived(ctx, "acme", "req_new"); err != nil {
		t.Fatalf("new request: %v", err)
	}
	if r := receive(t, s, request("req_again", "acme", "src", store.ReceiveAccepted, "held", n), nil); r.Request.DuplicateOf != "req_held" {
		t.Fatalf("a key in its window was removed: %+v", r.Request)
	}
	if removed, err := s.DeleteOlderThan(ctx, n.Add(-24*time.Hour), 100); err != nil || removed != 0 {
		t.Fatalf("a second pass removed %d: %v", removed, err)
	}
	// Batches are bounded per kind.
	for i := range 5 {
		receive(t, s, request(fmt.Sprintf("req_b%d", i), "acme", "src", store.ReceiveRejected, "", n.Add(-30*time.Hour)), nil)
	}
	if removed, err := s.DeleteOlderThan(ctx, n.Add(-24*time.Hour), 2); err != nil || removed != 2 {
		t.Fatalf("a batch of 2 removed %d: %v", removed, err)
	}
	left, _, err := s.ListReceived(ctx, store.ReceivedFilter{TenantID: "acme", Statuses: []store.ReceiveStatus{store.ReceiveRejected}})
	must(t, err)
	if len(left) != 3 {
		t.Fatalf("%d old requests left after a batch of 2, want 3", len(left))
	}
}
