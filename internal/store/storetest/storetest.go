// Package storetest is the conformance suite of the store contract: every driver runs it, so that
// no behaviour exists in one driver only.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// Open returns a fresh, empty store for one test; the driver's test closes it in t.Cleanup.
type Open func(t *testing.T) store.Store

// Run runs every conformance test against the driver.
func Run(t *testing.T, open Open) {
	tests := map[string]func(*testing.T, store.Store){
		"TenantCRUD":                    testTenantCRUD,
		"EventTypeCRUDWithSchema":       testEventTypeCRUD,
		"Pagination":                    testPagination,
		"PublishFansOutToSubscribers":   testPublishFansOut,
		"PublishIsIdempotentByID":       testPublishIdempotent,
		"PublishUnknownTenant":          testPublishUnknownTenant,
		"ClaimLeasesAndReportsNextDue":  testClaim,
		"DueEndpointsEarliestOfEach":    testDueEndpoints,
		"ClaimRanksByPriority":          testClaimPriority,
		"ClaimOrderedTakesFirstPending": testClaimOrdered,
		"ClaimBatches":                  testClaimBatches,
		"RecordResultsMovesState":       testRecordResults,
		"RetryReplayResend":             testRetryReplayResend,
		"DisableEndpointDeadLetters":    testDisableEndpoint,
		"ReleaseClaims":                 testReleaseClaims,
		"RenewClaimsExtendsLeases":      testRenewClaims,
		"StatsCountsSince":              testStats,
		"RetentionDeletesOldEvents":     testRetention,
		"APIKeys":                       testAPIKeys,
		"FailingSinceTracksStreaks":     testFailingSince,
		"DeleteEndpointRemovesHistory":  testDeleteEndpoint,
		"AuditWrittenWithTheChange":     testAuditWithChange,
		"AuditListFiltersAndPages":      testAuditList,
		"AuditRetention":                testAuditRetention,
		"DeleteTenantRemovesAllItsData": testDeleteTenantCounts,
		"TenantRedactFieldsRoundTrip":   testTenantRedactFields,
		"SourceCRUDAndTokenLookup":      testSourceCRUD,
		"ReceiveAcceptedPublishes":      testReceiveAccepted,
		"ReceiveDeduplicatesByKey":      testReceiveDedup,
		"ReceiveDedupIsAtomic":          testReceiveDedupConcurrent,
		"AcceptReceivedQuarantined":     testAcceptReceived,
		"ListReceivedFiltersAndPages":   testListReceived,
		"ReceivedTenantIsolation":       testReceivedTenantIsolation,
		"DeleteSourceRemovesRequests":   testDeleteSourceRemovesRequests,
		"DeleteTenantRemovesSources":    testDeleteTenantSources,
		"RetentionRemovesReceived":      testRetentionReceived,
		"EndpointInternalRoundTrip":     testEndpointInternal,
		"EndpointDestinationRoundTrip":  testEndpointDestination,
		"EventsAfterInPublishOrder":     testEventsAfter,
		"EventsAfterMissesNoConcurrent": testEventsAfterConcurrent,
		"EventsAfterSurvivesRetention":  testEventsAfterRetention,
		"EventsAfterBoundsBytes":        testEventsAfterBoundsBytes,
		"ListEventsBoundsBytes":         testListEventsBoundsBytes,
		"FiltersDecideFanOut":           testFiltersDecideFanOut,
		"EndpointOptionsRoundTrip":      testEndpointOptionsRoundTrip,
		"EventTypeDocsRoundTrip":        testEventTypeDocsRoundTrip,
		"TenantInstanceBindsKeys":       testTenantInstanceBindsKeys,
		"LargeFanOutDoesNotHoldOthers":  testLargeFanOutDoesNotHoldOthers,
		"SlowFiltersRunOutsideTheWrite": testSlowFiltersRunOutsideTheWrite,
		"TenantMaxEndpoints":            testTenantMaxEndpoints,
		"ConcurrentCreatesRespectLimit": testConcurrentCreatesRespectMaxEndpoints,
		"BrokerSourceCRUDAndHealth":     testBrokerSourceCRUD,
		"BrokerSourceQuarantine":        testBrokerSourceReceived,
		"PlansCRUD":                     testPlansCRUD,
		"TenantPlanAndLimitsRoundTrip":  testTenantPlanAndLimits,
		"PlanLimitsEndpointsAndSources": testPlanLimitsEndpointsAndSources,
		"UsageCountedExactly":           testUsageExact,
		"UsageSurvivesRetention":        testUsageSurvivesRetention,
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, open(t))
		})
	}
}

var ctx = context.Background()

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func tenant(t *testing.T, s store.Store, id string) {
	t.Helper()
	n := now()
	must(t, s.CreateTenant(ctx, &store.Tenant{ID: id, Name: "Tenant " + id, CreatedAt: n, UpdatedAt: n}))
}

func endpoint(t *testing.T, s store.Store, tenantID, id string, types ...string) *store.Endpoint {
	t.Helper()
	n := now()
	e := &store.Endpoint{
		ID: id, TenantID: tenantID, URL: "https://example.com/" + id, EventTypes: types,
		Secrets: []store.Secret{{Key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, Timeout: 10 * time.Second,
		MaxConcurrency: 10, Enabled: true, Headers: map[string]string{"X-Team": "a"}, CreatedAt: n, UpdatedAt: n,
	}
	must(t, s.CreateEndpoint(ctx, e))
	return e
}

func event(id, typ string) *store.Event {
	n := now()
	return &store.Event{ID: id, Type: typ, Timestamp: n, CreatedAt: n,
		Payload: []byte(fmt.Sprintf(`{"id":%q,"type":%q,"data":{}}`, id, typ))}
}

func publish(t *testing.T, s store.Store, tenantID string, evs ...*store.Event) []store.PublishResult {
	t.Helper()
	res, err := s.Publish(ctx, tenantID, evs)
	must(t, err)
	return res
}

func claimAll(t *testing.T, s store.Store, endpointID string, limit int) store.ClaimResult {
	t.Helper()
	n := time.Now()
	res, err := s.ClaimDue(ctx, n, n.Add(time.Minute), []store.ClaimRequest{{EndpointID: endpointID, Limit: limit}})
	must(t, err)
	return res[0]
}

func testTenantCRUD(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	if err := s.CreateTenant(ctx, &store.Tenant{ID: "acme", Name: "again"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate tenant: got %v, want ErrConflict", err)
	}
	got, err := s.GetTenant(ctx, "acme")
	must(t, err)
	if got.Name != "Tenant acme" {
		t.Fatalf("name = %q", got.Name)
	}
	got.Name = "Acme Inc"
	must(t, s.UpdateTenant(ctx, got))
	got, err = s.GetTenant(ctx, "acme")
	must(t, err)
	if got.Name != "Acme Inc" {
		t.Fatalf("after update name = %q", got.Name)
	}
	_, err = s.DeleteTenant(ctx, "acme")
	must(t, err)
	if _, err := s.GetTenant(ctx, "acme"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted tenant: got %v, want ErrNotFound", err)
	}
	if _, err := s.DeleteTenant(ctx, "acme"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete missing tenant: got %v, want ErrNotFound", err)
	}
}

func testPagination(t *testing.T, s store.Store) {
	for i := range 7 {
		tenant(t, s, fmt.Sprintf("t%d", i))
	}
	var ids []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		ts, next, err := s.ListTenants(ctx, store.Page{Limit: 3, Cursor: cursor})
		must(t, err)
		for _, tn := range ts {
			ids = append(ids, tn.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if fmt.Sprint(ids) != "[t0 t1 t2 t3 t4 t5 t6]" {
		t.Fatalf("paged ids = %v", ids)
	}
	if _, _, err := s.ListTenants(ctx, store.Page{Cursor: "!!not-a-cursor"}); !errors.Is(err, store.ErrBadCursor) {
		t.Fatalf("bad cursor: got %v", err)
	}

	tenant(t, s, "ev")
	endpoint(t, s, "ev", "ep1", "*")
	for i := range 5 {
		publish(t, s, "ev", event(fmt.Sprintf("e%d", i), "a.b"))
	}
	evs, next, err := s.ListEvents(ctx, store.EventFilter{TenantID: "ev", Page: store.Page{Limit: 2}})
	must(t, err)
	if len(evs) != 2 || evs[0].ID != "e4" || evs[1].ID != "e3" || next == "" {
		t.Fatalf("first page of events = %v next %q", evs, next)
	}
	evs, _, err = s.ListEvents(ctx, store.EventFilter{TenantID: "ev", Page: store.Page{Limit: 2, Cursor: next}})
	must(t, err)
	if len(evs) != 2 || evs[0].ID != "e2" {
		t.Fatalf("second page of events = %v", evs)
	}
	ds, next, err := s.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "ev", Page: store.Page{Limit: 4}})
	must(t, err)
	if len(ds) != 4 || next == "" || ds[0].EventID != "e4" {
		t.Fatalf("deliveries page = %d next %q", len(ds), next)
	}
}

func testPublishFansOut(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	tenant(t, s, "other")
	endpoint(t, s, "acme", "all", "*")
	endpoint(t, s, "acme", "invoices", "invoice.*")
	endpoint(t, s, "acme", "paid", "invoice.paid")
	endpoint(t, s, "acme", "users", "user.created")
	off := endpoint(t, s, "acme", "off", "*")
	off.Enabled = false
	must(t, s.UpdateEndpoint(ctx, off))
	endpoint(t, s, "other", "elsewhere", "*")

	res := publish(t, s, "acme", event("e1", "invoice.paid"), event("e2", "invoice.paid.v2"), event("e3", "user.deleted"))
	want := []int{3, 2, 1}
	for i, r := range res {
		if r.Deliveries != want[i] || r.Duplicate || len(r.EndpointIDs) != want[i] {
			t.Errorf("event %d: %d deliveries to %v, want %d", i, r.Deliveries, r.EndpointIDs, want[i])
		}
	}
	ds, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "acme", EventID: "e1"})
	must(t, err)
	got := map[string]bool{}
	for _, d := range ds {
		got[d.EndpointID] = true
		if d.State != store.StatePending || d.NextAttemptAt == nil || d.EventType != "invoice.paid" {
			t.Errorf("new delivery %+v", d)
		}
	}
	if !got["all"] || !got["invoices"] || !got["paid"] || got["off"] || got["elsewhere"] {
		t.Fatalf("e1 delivered to %v", got)
	}
	ev, err := s.GetEvent(ctx, "acme", "e1")
	must(t, err)
	if string(ev.Payload) != string(event("e1", "invoice.paid").Payload) {
		t.Fatalf("payload = %s", ev.Payload)
	}
	if _, err := s.GetEvent(ctx, "other", "e1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("event of another tenant: %v", err)
	}
}

func testPublishIdempotent(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "ep", "*")
	first := publish(t, s, "acme", event("same", "invoice.paid"))[0]
	again := event("same", "user.created")
	again.Payload = []byte(`{"changed":true}`)
	second := publish(t, s, "acme", again)[0]
	if !second.Duplicate || second.Deliveries != 0 {
		t.Fatalf("second publish: %+v", second)
	}
	if second.Event.Type != "invoice.paid" || string(second.Event.Payload) != string(first.Event.Payload) {
		t.Fatalf("duplicate returned %s %s, want the original", second.Event.Type, second.Event.Payload)
	}
	ds, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "acme"})
	must(t, err)
	if len(ds) != 1 {
		t.Fatalf("%d deliveries after a duplicate publish, want 1", len(ds))
	}
	// The same id in another tenant is a different event.
	tenant(t, s, "other")
	if r := publish(t, s, "other", event("same", "invoice.paid"))[0]; r.Duplicate {
		t.Fatal("an id of another tenant counted as duplicate")
	}
}

func testPublishUnknownTenant(t *testing.T, s store.Store) {
	if _, err := s.Publish(ctx, "nobody", []*store.Event{event("e", "a.b")}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("publish to unknown tenant: %v", err)
	}
}

func testClaim(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "ep", "*")
	endpoint(t, s, "acme", "quiet", "nothing.here")
	for i := range 5 {
		publish(t, s, "acme", event(fmt.Sprintf("e%d", i), "a.b"))
	}
	c := claimAll(t, s, "ep", 3)
	if len(c.Claimed) != 3 {
		t.Fatalf("claimed %d, want 3", len(c.Claimed))
	}
	if c.Claimed[0].EventID != "e0" || len(c.Claimed[0].Payload) == 0 || c.Claimed[0].EventType != "a.b" {
		t.Fatalf("first claimed = %+v", c.Claimed[0])
	}
	// Leased deliveries are not claimed again.
	c2 := claimAll(t, s, "ep", 10)
	if len(c2.Claimed) != 2 {
		t.Fatalf("second claim got %d, want the 2 unleased", len(c2.Claimed))
	}
	// Nothing else is pending: NextDue is zero, or (a driver that shares work between processes)
	// the end of the leases just taken, when another process could take them over.
	if !c2.NextDue.IsZero() && c2.NextDue.Before(time.Now().Add(50*time.Second)) {
		t.Fatalf("nothing else is pending, NextDue = %v", c2.NextDue)
	}
	// A delivery scheduled later is reported as the next due.
	later := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	must(t, s.RecordResults(ctx, []store.Result{{DeliveryID: c.Claimed[0].DeliveryID, EndpointID: "ep", State: store.StatePending, NextAttemptAt: later,
		Attempt: store.Attempt{At: time.Now(), StatusCode: 503, Error: "status 503", ErrorKind: "http_status"}}}))
	c3 := claimAll(t, s, "ep", 10)
	// The future delivery is next, unless (a driver shared by several processes) the leases still
	// held on the others end before it.
	leaseEnd := !c3.NextDue.Before(time.Now().Add(50*time.Second)) && c3.NextDue.Before(later)
	if len(c3.Claimed) != 0 || !(c3.NextDue.Equal(later) || leaseEnd) {
		t.Fatalf("claim with only a future delivery: %d claimed, next %v want %v", len(c3.Claimed), c3.NextDue, later)
	}
	if c := claimAll(t, s, "quiet", 10); len(c.Claimed) != 0 || !c.NextDue.IsZero() {
		t.Fatalf("endpoint without deliveries: %+v", c)
	}
	due, err := s.DueEndpoints(ctx, time.Now())
	must(t, err)
	// Leased deliveries may count here (a wake-up for them is harmless); the quiet endpoint must not.
	if _, ok := due["ep"]; !ok || len(due) != 1 {
		t.Fatalf("due endpoints = %v", due)
	}
}

// DueEndpoints names every endpoint with a pending delivery, with its earliest next attempt,
// and none whose deliveries are all settled.
func testDueEndpoints(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	for _, id := range []string{"ep_a", "ep_b", "ep_c", "ep_done"} {
		endpoint(t, s, "acme", id, "t."+id)
	}
	var evs []*store.Event
	for i := range 3 {
		for _, id := range []string{"ep_a", "ep_b", "ep_c", "ep_done"} {
			evs = append(evs, event(fmt.Sprintf("evt_%s_%d", id, i), "t."+id))
		}
	}
	publish(t, s, "acme", evs...)
	base := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	want := map[string]time.Time{}
	for k, id := range []string{"ep_a", "ep_b", "ep_c", "ep_done"} {
		c := claimAll(t, s, id, 10)
		if len(c.Claimed) != 3 {
			t.Fatalf("%s: claimed %d, want 3", id, len(c.Claimed))
		}
		var rs []store.Result
		for i, cl := range c.Claimed {
			r := store.Result{DeliveryID: cl.DeliveryID, EndpointID: id, State: store.StatePending,
				NextAttemptAt: base.Add(time.Duration(k)*time.Minute + time.Duration(3-i)*time.Second),
				Attempt:       store.Attempt{At: time.Now(), StatusCode: 503, Error: "status 503", ErrorKind: "http_status"}}
			if id == "ep_done" {
				r.State, r.NextAttemptAt = store.StateSucceeded, time.Time{}
				r.Attempt = store.Attempt{At: time.Now(), StatusCode: 200, Success: true}
			} else if w, ok := want[id]; !ok || r.NextAttemptAt.Before(w) {
				want[id] = r.NextAttemptAt
			}
			rs = append(rs, r)
		}
		must(t, s.RecordResults(ctx, rs))
	}
	due, err := s.DueEndpoints(ctx, time.Now())
	must(t, err)
	if len(due) != len(want) {
		t.Fatalf("due endpoints = %v, want %v", due, want)
	}
	for id, w := range want {
		if got, ok := due[id]; !ok || !got.Equal(w) {
			t.Errorf("due[%s] = %v, want %v", id, got, w)
		}
	}
}

func testRecordResults(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "ep", "*")
	publish(t, s, "acme", event("ok", "a.b"), event("bad", "a.b"))
	c := claimAll(t, s, "ep", 10)
	at := now()
	must(t, s.RecordResults(ctx, []store.Result{
		{DeliveryID: c.Claimed[0].DeliveryID, EndpointID: "ep", State: store.StateSucceeded,
			Attempt: store.Attempt{At: at, StatusCode: 200, Latency: 1500 * time.Microsecond, Response: "ok", Success: true}},
		{DeliveryID: c.Claimed[1].DeliveryID, EndpointID: "ep", State: store.StateDead,
			Attempt: store.Attempt{At: at, StatusCode: 400, Response: "nope", ErrorKind: "http_status", Error: "status 400"}},
	}))
	d, err := s.GetDelivery(ctx, "acme", c.Claimed[0].DeliveryID)
	must(t, err)
	if d.State != store.StateSucceeded || d.Attempts != 1 || d.LastStatus != 200 || d.NextAttemptAt != nil {
		t.Fatalf("succeeded delivery = %+v", d)
	}
	d, err = s.GetDelivery(ctx, "acme", c.Claimed[1].DeliveryID)
	must(t, err)
	if d.State != store.StateDead || d.LastError != "status 400" {
		t.Fatalf("dead delivery = %+v", d)
	}
	atts, _, err := s.ListAttempts(ctx, store.AttemptFilter{TenantID: "acme", DeliveryID: c.Claimed[0].DeliveryID})
	must(t, err)
	if len(atts) != 1 || atts[0].StatusCode != 200 || atts[0].Latency != 1500*time.Microsecond || atts[0].Response != "ok" || !atts[0].Success || !atts[0].At.Equal(at) || atts[0].EventID != "ok" {
		t.Fatalf("attempt = %+v", atts)
	}
	dead, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "acme", States: []store.DeliveryState{store.StateDead}})
	must(t, err)
	if len(dead) != 1 || dead[0].EventID != "bad" {
		t.Fatalf("dead letters = %+v", dead)
	}
}

func testRetryReplayResend(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "ep", "*")
	endpoint(t, s, "acme", "late", "nothing.else")
	publish(t, s, "acme", event("e1", "a.b"), event("e2", "a.b"), event("e3", "c.d"))
	c := claimAll(t, s, "ep", 10)
	var results []store.Result
	for _, cl := range c.Claimed {
		results = append(results, store.Result{DeliveryID: cl.DeliveryID, EndpointID: "ep", State: store.StateDead, Attempt: store.Attempt{At: now(), StatusCode: 500}})
	}
	must(t, s.RecordResults(ctx, results))

	d, err := s.Retry(ctx, "acme", c.Claimed[0].DeliveryID)
	must(t, err)
	if d.State != store.StatePending || d.NextAttemptAt == nil {
		t.Fatalf("retried = %+v", d)
	}
	if _, err := s.Retry(ctx, "other", c.Claimed[0].DeliveryID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("retry by another tenant: %v", err)
	}
	re := claimAll(t, s, "ep", 10)
	if len(re.Claimed) != 1 || re.Claimed[0].Tries != 0 || re.Claimed[0].Attempts != 1 {
		t.Fatalf("after retry claimed %+v", re.Claimed)
	}
	n, err := s.Replay(ctx, store.DeliveryFilter{TenantID: "acme", States: []store.DeliveryState{store.StateDead}, EventTypes: []string{"a.b"}})
	must(t, err)
	if n != 1 {
		t.Fatalf("replayed %d, want 1 (e2; e1 is in flight, e3 has another type)", n)
	}
	n, err = s.Replay(ctx, store.DeliveryFilter{TenantID: "acme", States: []store.DeliveryState{store.StateDead}})
	must(t, err)
	if n != 1 {
		t.Fatalf("second replay %d, want 1 (e3)", n)
	}
	rd, err := s.Resend(ctx, "acme", "e1", "late")
	must(t, err)
	if rd.EndpointID != "late" || rd.State != store.StatePending || rd.EventID != "e1" {
		t.Fatalf("resend = %+v", rd)
	}
	if _, err := s.Resend(ctx, "acme", "missing", "late"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("resend of unknown event: %v", err)
	}
}

func testDisableEndpoint(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "ep", "*")
	publish(t, s, "acme", event("e1", "a.b"), event("e2", "a.b"))
	n, err := s.DisableEndpoint(ctx, "ep", "the endpoint answered 410 Gone", true)
	must(t, err)
	if n != 2 {
		t.Fatalf("dead-lettered %d, want 2", n)
	}
	e, err := s.EndpointByID(ctx, "ep")
	must(t, err)
	if e.Enabled || e.DisabledReason != "the endpoint answered 410 Gone" {
		t.Fatalf("endpoint after disable = %+v", e)
	}
	ds, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "acme", States: []store.DeliveryState{store.StateDead}})
	must(t, err)
	if len(ds) != 2 || ds[0].LastError != "the endpoint answered 410 Gone" {
		t.Fatalf("dead deliveries = %+v", ds)
	}
	if r := publish(t, s, "acme", event("e3", "a.b"))[0]; r.Deliveries != 0 {
		t.Fatal("a disabled endpoint got a delivery")
	}
}

func testReleaseClaims(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "ep", "*")
	publish(t, s, "acme", event("e1", "a.b"), event("e2", "a.b"))
	c := claimAll(t, s, "ep", 10)
	must(t, s.ReleaseClaims(ctx, []int64{c.Claimed[0].DeliveryID}))
	if again := claimAll(t, s, "ep", 10); len(again.Claimed) != 1 {
		t.Fatalf("after releasing one claim, claimed %d", len(again.Claimed))
	}
	n, err := s.ReleaseAllClaims(ctx)
	must(t, err)
	if n != 2 {
		t.Fatalf("released %d, want 2", n)
	}
	if again := claimAll(t, s, "ep", 10); len(again.Claimed) != 2 {
		t.Fatalf("after releasing all, claimed %d", len(again.Claimed))
	}
}

func testRenewClaims(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "ep", "*")
	publish(t, s, "acme", event("e1", "a.b"), event("e2", "a.b"), event("e3", "a.b"))
	t0 := now()
	claim := func(at time.Time, limit int) store.ClaimResult {
		t.Helper()
		res, err := s.ClaimDue(ctx, at, at.Add(10*time.Second), []store.ClaimRequest{{EndpointID: "ep", Limit: limit}})
		must(t, err)
		return res[0]
	}
	c := claim(t0, 3)
	if len(c.Claimed) != 3 {
		t.Fatalf("claimed %d, want 3", len(c.Claimed))
	}
	// One is done and one given back: renewal extends only the third.
	must(t, s.RecordResults(ctx, []store.Result{{DeliveryID: c.Claimed[0].DeliveryID, EndpointID: "ep", State: store.StateSucceeded,
		Attempt: store.Attempt{At: t0, StatusCode: 200, Success: true}}}))
	must(t, s.ReleaseClaims(ctx, []int64{c.Claimed[1].DeliveryID}))
	n, err := s.RenewClaims(ctx, t0.Add(5*time.Second), t0.Add(60*time.Second))
	must(t, err)
	if n != 1 {
		t.Fatalf("renewed %d leases, want 1", n)
	}
	// Past the first lease's end, only the released delivery is claimable: the renewed lease holds.
	got := claim(t0.Add(30*time.Second), 10)
	if len(got.Claimed) != 1 || got.Claimed[0].DeliveryID != c.Claimed[1].DeliveryID {
		t.Fatalf("claim past the original lease: %+v, want only delivery %d", got.Claimed, c.Claimed[1].DeliveryID)
	}
	// Past the renewed end it is claimable again (with the one claimed just above, whose lease of
	// ten seconds has ended too).
	got = claim(t0.Add(61*time.Second), 10)
	if len(got.Claimed) != 2 || got.Claimed[1].DeliveryID != c.Claimed[2].DeliveryID {
		t.Fatalf("claim past the renewed lease: %+v, want deliveries %d and %d", got.Claimed, c.Claimed[1].DeliveryID, c.Claimed[2].DeliveryID)
	}
	// A lease that has ended is not renewed.
	n, err = s.RenewClaims(ctx, t0.Add(200*time.Second), t0.Add(300*time.Second))
	must(t, err)
	if n != 0 {
		t.Fatalf("renewed %d leases that had ended, want 0", n)
	}
}

func testStats(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "ep", "*")
	start := time.Now().Add(-time.Second)
	publish(t, s, "acme", event("e1", "a.b"), event("e2", "a.b"), event("e3", "a.b"))
	c := claimAll(t, s, "ep", 2)
	must(t, s.RecordResults(ctx, []store.Result{
		{DeliveryID: c.Claimed[0].DeliveryID, EndpointID: "ep", State: store.StateSucceeded, Attempt: store.Attempt{At: now(), StatusCode: 200, Success: true}},
		{DeliveryID: c.Claimed[1].DeliveryID, EndpointID: "ep", State: store.StateDead, Attempt: store.Attempt{At: now(), StatusCode: 500}},
	}))
	st, err := s.Stats(ctx, "acme", start)
	must(t, err)
	want := store.Stats{Since: start, Events: 3, Deliveries: 3, Succeeded: 1, Pending: 1, Dead: 1, Attempts: 2, FailedAttempts: 1, FailedDeliveries: 1}
	if *st != want {
		t.Fatalf("stats = %+v, want %+v", *st, want)
	}
	st, err = s.Stats(ctx, "acme", time.Now().Add(time.Minute))
	must(t, err)
	if st.Events != 0 || st.Deliveries != 0 || st.Attempts != 0 {
		t.Fatalf("stats of the future = %+v", st)
	}
}

func testRetention(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "ep", "*")
	old := event("old", "a.b")
	old.CreatedAt = time.Now().Add(-48 * time.Hour)
	publish(t, s, "acme", old, event("new", "a.b"))
	c := claimAll(t, s, "ep", 10)
	must(t, s.RecordResults(ctx, []store.Result{{DeliveryID: c.Claimed[0].DeliveryID, EndpointID: "ep", State: store.StateSucceeded, Attempt: store.Attempt{At: now(), Success: true, StatusCode: 200}}}))
	n, err := s.DeleteOlderThan(ctx, time.Now().Add(-24*time.Hour), 100)
	must(t, err)
	if n != 1 {
		t.Fatalf("deleted %d, want 1", n)
	}
	if _, err := s.GetEvent(ctx, "acme", "old"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old event still there: %v", err)
	}
	if _, err := s.GetEvent(ctx, "acme", "new"); err != nil {
		t.Fatalf("new event gone: %v", err)
	}
	ds, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "acme"})
	must(t, err)
	if len(ds) != 1 || ds[0].EventID != "new" {
		t.Fatalf("deliveries after retention = %+v", ds)
	}
	atts, _, err := s.ListAttempts(ctx, store.AttemptFilter{TenantID: "acme"})
	must(t, err)
	for _, a := range atts {
		if a.EventID == "old" {
			t.Fatal("attempt of a deleted event survived")
		}
	}
}

func testAPIKeys(t *testing.T, s store.Store) {
	k := &store.APIKey{ID: "key_1", Role: store.RoleAdmin, Hash: []byte("0123456789abcdef0123456789abcdef"), Prefix: "hk_admin_abc", CreatedAt: now()}
	must(t, s.CreateAPIKey(ctx, k))
	got, err := s.APIKeyByHash(ctx, k.Hash)
	must(t, err)
	if got.ID != "key_1" || got.Role != store.RoleAdmin {
		t.Fatalf("key = %+v", got)
	}
	n, err := s.CountAPIKeys(ctx)
	must(t, err)
	if n != 1 {
		t.Fatalf("count = %d", n)
	}
	must(t, s.RevokeAPIKey(ctx, "key_1"))
	if _, err := s.APIKeyByHash(ctx, k.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoked key still found: %v", err)
	}
	if err := s.RevokeAPIKey(ctx, "key_1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoking twice: %v", err)
	}
}

func testFailingSince(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "ep", "*")
	publish(t, s, "acme", event("e1", "a.b"), event("e2", "a.b"))
	c := claimAll(t, s, "ep", 10)
	failAt := now().Add(-time.Minute)
	must(t, s.RecordResults(ctx, []store.Result{{DeliveryID: c.Claimed[0].DeliveryID, EndpointID: "ep", State: store.StatePending, NextAttemptAt: time.Now().Add(time.Hour), Attempt: store.Attempt{At: failAt, StatusCode: 500}}}))
	must(t, s.RecordResults(ctx, []store.Result{{DeliveryID: c.Claimed[1].DeliveryID, EndpointID: "ep", State: store.StatePending, NextAttemptAt: time.Now().Add(time.Hour), Attempt: store.Attempt{At: now(), StatusCode: 500}}}))
	e, err := s.EndpointByID(ctx, "ep")
	must(t, err)
	if e.FailingSince == nil || !e.FailingSince.Equal(failAt) {
		t.Fatalf("failing since = %v, want the first failure %v", e.FailingSince, failAt)
	}
	// A success, of a delivery claimed as results are recorded (a driver shared by several
	// processes writes only the results of leases it holds).
	publish(t, s, "acme", event("e3", "a.b"))
	c3 := claimAll(t, s, "ep", 10)
	if len(c3.Claimed) != 1 {
		t.Fatalf("claimed %d, want the new event's delivery", len(c3.Claimed))
	}
	must(t, s.RecordResults(ctx, []store.Result{{DeliveryID: c3.Claimed[0].DeliveryID, EndpointID: "ep", State: store.StateSucceeded, Attempt: store.Attempt{At: now(), StatusCode: 200, Success: true}}}))
	e, err = s.EndpointByID(ctx, "ep")
	must(t, err)
	if e.FailingSince != nil {
		t.Fatalf("a success did not end the failing streak: %v", e.FailingSince)
	}
}

func testDeleteEndpoint(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "ep", "*")
	endpoint(t, s, "acme", "keep", "*")
	publish(t, s, "acme", event("e1", "a.b"))
	must(t, s.DeleteEndpoint(ctx, "acme", "ep"))
	if _, err := s.GetEndpoint(ctx, "acme", "ep"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted endpoint: %v", err)
	}
	ds, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "acme"})
	must(t, err)
	if len(ds) != 1 || ds[0].EndpointID != "keep" {
		t.Fatalf("deliveries after delete = %+v", ds)
	}
	e, err := s.GetEndpoint(ctx, "acme", "keep")
	must(t, err)
	if e.Headers["X-Team"] != "a" || len(e.Secrets) != 1 || e.Timeout != 10*time.Second {
		t.Fatalf("endpoint round trip = %+v", e)
	}
}
