package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

func ptr[T any](v T) *T { return &v }

// Plans are created, read, listed, changed and deleted; one a tenant is on cannot be deleted.
func testPlansCRUD(t *testing.T, s store.Store) {
	n := now()
	pro := &store.TenantPlan{Name: "pro", Description: "Pro", CreatedAt: n, UpdatedAt: n, Limits: store.TenantLimits{
		EventsPerSecond: ptr(50.5), MaxEndpoints: ptr(20), MaxSources: ptr(3), MaxEventBytes: ptr(65536), RetentionHours: ptr(72),
		MaxAttempts: ptr(5), MaxRetrySeconds: ptr(3600), MaxEndpointRate: ptr(10.0), Batching: ptr(false), Transformations: ptr(true), Filters: ptr(false)}}
	must(t, s.CreatePlan(ctx, pro))
	must(t, s.CreatePlan(ctx, &store.TenantPlan{Name: "free", CreatedAt: n, UpdatedAt: n}))
	if err := s.CreatePlan(ctx, &store.TenantPlan{Name: "pro", CreatedAt: n, UpdatedAt: n}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate plan: got %v, want ErrConflict", err)
	}
	got, err := s.GetPlan(ctx, "pro")
	must(t, err)
	if fmt.Sprint(limitsText(got.Limits)) != fmt.Sprint(limitsText(pro.Limits)) || got.Description != "Pro" || !got.CreatedAt.Equal(n) {
		t.Fatalf("plan = %+v %s, want %s", got, limitsText(got.Limits), limitsText(pro.Limits))
	}
	all, err := s.ListPlans(ctx)
	must(t, err)
	if len(all) != 2 || all[0].Name != "free" || all[1].Name != "pro" || all[0].Limits.MaxEndpoints != nil {
		t.Fatalf("plans = %+v", all)
	}
	got.Limits.MaxEndpoints = ptr(30)
	got.Description = "Pro, more"
	got.UpdatedAt = n.Add(time.Second)
	must(t, s.UpdatePlan(ctx, got))
	again, err := s.GetPlan(ctx, "pro")
	must(t, err)
	if *again.Limits.MaxEndpoints != 30 || again.Description != "Pro, more" || !again.UpdatedAt.Equal(got.UpdatedAt) {
		t.Fatalf("updated plan = %+v", again)
	}
	if err := s.UpdatePlan(ctx, &store.TenantPlan{Name: "nope", UpdatedAt: n}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of a missing plan: %v", err)
	}
	must(t, s.CreateTenant(ctx, &store.Tenant{ID: "acme", Name: "Acme", Plan: "pro", CreatedAt: n, UpdatedAt: n}))
	if err := s.DeletePlan(ctx, "pro"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("delete of a plan in use: got %v, want ErrConflict", err)
	}
	ten, err := s.GetTenant(ctx, "acme")
	must(t, err)
	ten.Plan = ""
	must(t, s.UpdateTenant(ctx, ten))
	must(t, s.DeletePlan(ctx, "pro"))
	if _, err := s.GetPlan(ctx, "pro"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted plan: %v", err)
	}
	if err := s.DeletePlan(ctx, "pro"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete of a missing plan: %v", err)
	}
}

// limitsText shows a set of limits with the values behind its pointers.
func limitsText(l store.TenantLimits) string {
	v := func(p any) string {
		switch p := p.(type) {
		case *int:
			if p != nil {
				return fmt.Sprint(*p)
			}
		case *float64:
			if p != nil {
				return fmt.Sprint(*p)
			}
		case *bool:
			if p != nil {
				return fmt.Sprint(*p)
			}
		}
		return "-"
	}
	return fmt.Sprintf("eps=%s ep=%s src=%s size=%s ret=%s att=%s retry=%s rate=%s batch=%s tr=%s filt=%s",
		v(l.EventsPerSecond), v(l.MaxEndpoints), v(l.MaxSources), v(l.MaxEventBytes), v(l.RetentionHours), v(l.MaxAttempts),
		v(l.MaxRetrySeconds), v(l.MaxEndpointRate), v(l.Batching), v(l.Transformations), v(l.Filters))
}

// A tenant's plan and own limits are stored and read back as they were set.
func testTenantPlanAndLimits(t *testing.T, s store.Store) {
	n := now()
	own := store.TenantLimits{EventsPerSecond: ptr(2.5), MaxEndpoints: ptr(7), RetentionHours: ptr(24), Filters: ptr(false)}
	must(t, s.CreateTenant(ctx, &store.Tenant{ID: "acme", Name: "Acme", Plan: "pro", Limits: own, CreatedAt: n, UpdatedAt: n}))
	got, err := s.GetTenant(ctx, "acme")
	must(t, err)
	if got.Plan != "pro" || limitsText(got.Limits) != limitsText(own) {
		t.Fatalf("tenant plan %q limits %s, want pro %s", got.Plan, limitsText(got.Limits), limitsText(own))
	}
	got.Limits = store.TenantLimits{MaxSources: ptr(4)}
	got.Plan = ""
	must(t, s.UpdateTenant(ctx, got))
	ts, _, err := s.ListTenants(ctx, store.Page{})
	must(t, err)
	if len(ts) != 1 || ts[0].Plan != "" || limitsText(ts[0].Limits) != limitsText(store.TenantLimits{MaxSources: ptr(4)}) {
		t.Fatalf("listed tenant = %+v %s", ts, limitsText(ts[0].Limits))
	}
}

// A plan's endpoint and source limits bound its tenants, the tenant's own take precedence, and a
// plan's max_sources counts inbound and broker sources together.
func testPlanLimitsEndpointsAndSources(t *testing.T, s store.Store) {
	n := now()
	must(t, s.CreatePlan(ctx, &store.TenantPlan{Name: "small", Limits: store.TenantLimits{MaxEndpoints: ptr(2), MaxSources: ptr(2)}, CreatedAt: n, UpdatedAt: n}))
	must(t, s.CreateTenant(ctx, &store.Tenant{ID: "acme", Name: "Acme", Plan: "small", CreatedAt: n, UpdatedAt: n}))
	endpoint(t, s, "acme", "ep_0", "*")
	endpoint(t, s, "acme", "ep_1", "*")
	e := &store.Endpoint{ID: "ep_2", TenantID: "acme", URL: "https://example.com/", EventTypes: []string{"*"}, Enabled: true, CreatedAt: n, UpdatedAt: n}
	limitError(t, s.CreateEndpoint(ctx, e), "max_endpoints", 2)
	// The plan raised: the next create passes.
	p, err := s.GetPlan(ctx, "small")
	must(t, err)
	p.Limits.MaxEndpoints = ptr(3)
	must(t, s.UpdatePlan(ctx, p))
	must(t, s.CreateEndpoint(ctx, e))
	// The tenant's own bound wins over the plan's.
	ten, err := s.GetTenant(ctx, "acme")
	must(t, err)
	ten.Limits.MaxEndpoints = ptr(4)
	must(t, s.UpdateTenant(ctx, ten))
	e.ID = "ep_3"
	must(t, s.CreateEndpoint(ctx, e))
	e.ID = "ep_4"
	limitError(t, s.CreateEndpoint(ctx, e), "max_endpoints", 4)

	source(t, s, "acme", "src_1")
	brokerSource(t, s, "acme", "bsrc_1")
	limitError(t, s.CreateSource(ctx, &store.Source{ID: "src_2", TenantID: "acme", Name: "s", Token: "tok_acme_2", Enabled: true,
		Settings: sourceSettings(), CreatedAt: n, UpdatedAt: n}), "max_sources", 2)
	limitError(t, s.CreateBrokerSource(ctx, &store.BrokerSource{ID: "bsrc_2", TenantID: "acme", Type: "nats", CreatedAt: n, UpdatedAt: n}), "max_sources", 2)
	ten, err = s.GetTenant(ctx, "acme")
	must(t, err)
	ten.Limits.MaxSources = ptr(3)
	must(t, s.UpdateTenant(ctx, ten))
	source(t, s, "acme", "src_2")
	// Another tenant, on no plan, has the store's bounds.
	tenant(t, s, "other")
	source(t, s, "other", "src_o1")
	source(t, s, "other", "src_o2")
	source(t, s, "other", "src_o3")
}

// The usage counters count, exactly, the events published and received, the deliveries they
// made, the attempts recorded and the bytes, per hour and endpoint.
func testUsageExact(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	tenant(t, s, "other")
	endpoint(t, s, "acme", "ep_all", "*")
	endpoint(t, s, "acme", "ep_orders", "order.*")
	endpoint(t, s, "acme", "ep_users", "user.created")
	endpoint(t, s, "other", "ep_other", "*")
	source(t, s, "acme", "src")
	hour := store.UsageHour(time.Now())
	prev := hour.Add(-time.Hour)

	// Events: 6 order events and 4 user events this hour, 3 order events the hour before; one id
	// published twice (counted once).
	type key struct {
		hour time.Time
		ep   string
	}
	want := map[key]*store.UsageCounts{}
	add := func(at time.Time, ep string, c store.UsageCounts) {
		k := key{at, ep}
		if want[k] == nil {
			want[k] = &store.UsageCounts{}
		}
		want[k].Add(c)
	}
	var evs []*store.Event
	for i := range 13 {
		typ := "order.paid"
		if i >= 6 && i < 10 {
			typ = "user.created"
		}
		ev := event(fmt.Sprintf("evt_%d", i), typ)
		if i >= 10 {
			ev.CreatedAt = prev.Add(time.Minute)
		}
		evs = append(evs, ev)
		at := store.UsageHour(ev.CreatedAt)
		add(at, "", store.UsageCounts{Events: 1, EventBytes: int64(len(ev.Payload))})
		add(at, "ep_all", store.UsageCounts{Deliveries: 1})
		if typ == "order.paid" {
			add(at, "ep_orders", store.UsageCounts{Deliveries: 1})
		} else {
			add(at, "ep_users", store.UsageCounts{Deliveries: 1})
		}
	}
	publish(t, s, "acme", evs...)
	publish(t, s, "acme", event("evt_0", "order.paid")) // a duplicate: nothing counted
	publish(t, s, "other", event("evt_o", "order.paid"))

	// Received: an accepted request (an event and its deliveries), a duplicate and a rejected one.
	at := now()
	req := request("req_1", "acme", "src", store.ReceiveAccepted, "k1", at)
	ev := event("evt_in", "order.paid")
	receive(t, s, req, ev)
	add(store.UsageHour(ev.CreatedAt), "", store.UsageCounts{Events: 1, EventBytes: int64(len(ev.Payload))})
	add(store.UsageHour(ev.CreatedAt), "ep_all", store.UsageCounts{Deliveries: 1})
	add(store.UsageHour(ev.CreatedAt), "ep_orders", store.UsageCounts{Deliveries: 1})
	receive(t, s, request("req_2", "acme", "src", store.ReceiveAccepted, "k1", at), event("evt_in2", "order.paid"))
	receive(t, s, request("req_3", "acme", "src", store.ReceiveRejected, "", at), nil)
	add(store.UsageHour(at), "", store.UsageCounts{RequestsReceived: 3, BytesReceived: 3 * int64(len(req.Body))})

	// Attempts: every delivery of ep_orders fails once then succeeds; ep_all's succeed; ep_users'
	// fail and stay pending. The attempts are stamped in this hour and the one before.
	for _, ep := range []string{"ep_all", "ep_orders", "ep_users"} {
		c := claimAll(t, s, ep, 100)
		var results []store.Result
		for i, cl := range c.Claimed {
			atAt := hour.Add(time.Duration(i) * time.Second)
			if i%2 == 1 {
				atAt = prev.Add(time.Duration(i) * time.Second)
			}
			a := store.Attempt{At: atAt, StatusCode: 200, Success: ep != "ep_users", BytesSent: 100 + i}
			if i%3 == 0 {
				a.TenantID, a.EventID = "acme", cl.EventID // the dispatcher's results name them; others do not
			}
			st := store.StateSucceeded
			if ep == "ep_orders" || ep == "ep_users" {
				a.Success, a.StatusCode = false, 500
				st = store.StatePending
			}
			results = append(results, store.Result{DeliveryID: cl.DeliveryID, EndpointID: ep, State: st, NextAttemptAt: time.Now().Add(-time.Second), Attempt: a})
			c := store.UsageCounts{BytesSent: int64(a.BytesSent)}
			if a.Success {
				c.AttemptsOK = 1
			} else {
				c.AttemptsFailed = 1
			}
			add(store.UsageHour(atAt), ep, c)
		}
		must(t, s.RecordResults(ctx, results))
	}
	c := claimAll(t, s, "ep_orders", 100)
	var results []store.Result
	for _, cl := range c.Claimed {
		results = append(results, store.Result{DeliveryID: cl.DeliveryID, EndpointID: "ep_orders", State: store.StateSucceeded,
			Attempt: store.Attempt{At: hour, StatusCode: 200, Success: true, BytesSent: 50}})
		add(hour, "ep_orders", store.UsageCounts{AttemptsOK: 1, BytesSent: 50})
	}
	if len(c.Claimed) != 10 {
		t.Fatalf("ep_orders has %d deliveries to retry, want 10", len(c.Claimed))
	}
	must(t, s.RecordResults(ctx, results))

	from, to := prev.Add(-24*time.Hour), hour.Add(24*time.Hour)
	// By endpoint, hourly.
	rows, err := s.Usage(ctx, store.UsageFilter{TenantID: "acme", From: from, To: to, ByEndpoint: true})
	must(t, err)
	got := map[key]store.UsageCounts{}
	for _, r := range rows {
		if r.TenantID != "acme" || r.EndpointID == "" {
			t.Fatalf("by-endpoint row %+v", r)
		}
		got[key{r.Start, r.EndpointID}] = r.UsageCounts
	}
	for k, w := range want {
		if k.ep == "" {
			continue // the tenant's own figures: not in by-endpoint rows
		}
		if got[k] != *w {
			t.Errorf("usage %v = %+v, want %+v", k, got[k], *w)
		}
		delete(got, k)
	}
	if len(got) > 0 {
		t.Errorf("unexpected usage rows %+v", got)
	}
	// Totals, hourly: the sum of each hour's rows.
	totals := map[time.Time]store.UsageCounts{}
	for k, w := range want {
		c := totals[k.hour]
		c.Add(*w)
		totals[k.hour] = c
	}
	rows, err = s.Usage(ctx, store.UsageFilter{TenantID: "acme", From: from, To: to})
	must(t, err)
	if len(rows) != len(totals) {
		t.Fatalf("%d hourly rows, want %d: %+v", len(rows), len(totals), rows)
	}
	var all store.UsageCounts
	for _, r := range rows {
		if r.UsageCounts != totals[r.Start] || r.EndpointID != "" {
			t.Errorf("hour %s = %+v, want %+v", r.Start, r.UsageCounts, totals[r.Start])
		}
		all.Add(r.UsageCounts)
	}
	if all.Events != 14 || all.Deliveries != 28 || all.RequestsReceived != 3 || all.AttemptsOK != 14+10 || all.AttemptsFailed != 10+4 {
		t.Errorf("totals %+v", all)
	}
	// Daily: the same totals in one or two UTC days.
	rows, err = s.Usage(ctx, store.UsageFilter{TenantID: "acme", From: from.Truncate(24 * time.Hour), To: to, Daily: true})
	must(t, err)
	var daily store.UsageCounts
	for _, r := range rows {
		if !r.Start.Equal(r.Start.Truncate(24 * time.Hour)) {
			t.Errorf("daily bucket starts at %s", r.Start)
		}
		daily.Add(r.UsageCounts)
	}
	if daily != all {
		t.Errorf("daily totals %+v, hourly %+v", daily, all)
	}
	// One endpoint; another tenant's usage apart; a window that excludes the earlier hour.
	rows, err = s.Usage(ctx, store.UsageFilter{TenantID: "acme", From: hour, To: to, EndpointID: "ep_users"})
	must(t, err)
	var users store.UsageCounts
	for k, w := range want {
		if k.ep == "ep_users" && !k.hour.Before(hour) {
			users.Add(*w)
		}
	}
	var gotUsers store.UsageCounts
	for _, r := range rows {
		if r.EndpointID != "ep_users" {
			t.Fatalf("one endpoint's usage has a row of %q", r.EndpointID)
		}
		gotUsers.Add(r.UsageCounts)
	}
	if gotUsers != users {
		t.Fatalf("ep_users from this hour = %+v, want %+v", gotUsers, users)
	}
	rows, err = s.Usage(ctx, store.UsageFilter{From: from, To: to})
	must(t, err)
	var others int64
	for _, r := range rows {
		if r.TenantID == "other" {
			others += r.Events
		}
	}
	if others != 1 {
		t.Fatalf("other tenant's events %d, want 1", others)
	}
	// Deleting the tenant deletes its counters.
	_, err = s.DeleteTenant(ctx, "acme")
	must(t, err)
	rows, err = s.Usage(ctx, store.UsageFilter{TenantID: "acme", From: from, To: to})
	must(t, err)
	if len(rows) != 0 {
		t.Fatalf("usage of a deleted tenant: %+v", rows)
	}
}

// Retention deletes events, not the usage counted for them.
func testUsageSurvivesRetention(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "ep", "*")
	old := event("old", "a.b")
	old.CreatedAt = time.Now().Add(-48 * time.Hour)
	publish(t, s, "acme", old, event("new", "a.b")) // SQLite keeps the newest event whatever its age
	c := claimAll(t, s, "ep", 10)
	must(t, s.RecordResults(ctx, []store.Result{{DeliveryID: c.Claimed[0].DeliveryID, EndpointID: "ep", State: store.StateSucceeded,
		Attempt: store.Attempt{At: old.CreatedAt, Success: true, StatusCode: 200, BytesSent: 10}}}))
	_, err := s.DeleteOlderThan(ctx, time.Now().Add(-24*time.Hour), 100)
	must(t, err)
	if _, err := s.GetEvent(ctx, "acme", "old"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old event still there: %v", err)
	}
	h := store.UsageHour(old.CreatedAt)
	rows, err := s.Usage(ctx, store.UsageFilter{TenantID: "acme", From: h, To: h.Add(time.Hour)})
	must(t, err)
	if len(rows) != 1 || rows[0].Events != 1 || rows[0].Deliveries != 1 || rows[0].AttemptsOK != 1 || rows[0].BytesSent != 10 ||
		!rows[0].Start.Equal(store.UsageHour(old.CreatedAt)) {
		t.Fatalf("usage after retention = %+v", rows)
	}
}
