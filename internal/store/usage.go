package store

import (
	"cmp"
	"slices"
	"time"
)

// Usage metering: drivers keep counter rows per tenant, hour (UTC) and endpoint, incremented in
// the transactions that do the work (Publish, Receive and AcceptReceived count events,
// deliveries and received requests; RecordResults counts the attempts it writes), so that the
// figures are exact and reading a month is reading a few hundred rows per endpoint, never a scan
// of events. Retention (DeleteOlderThan) leaves them; DeleteTenant removes them with the tenant.

// UsageCounts are the metered figures of one bucket.
type UsageCounts struct {
	Events           int64 `json:"events" doc:"Events stored: published, or made of received requests (duplicates not counted)."`
	EventBytes       int64 `json:"event_bytes" doc:"Bytes of those events' envelopes."`
	RequestsReceived int64 `json:"requests_received" doc:"Requests (and broker messages) received by the tenant's sources, whatever became of them."`
	BytesReceived    int64 `json:"bytes_received" doc:"Bytes of those requests' bodies."`
	Deliveries       int64 `json:"deliveries" doc:"Deliveries created (one per event and matching endpoint)."`
	AttemptsOK       int64 `json:"attempts_ok" doc:"Attempts that succeeded."`
	AttemptsFailed   int64 `json:"attempts_failed" doc:"Attempts that failed."`
	BytesSent        int64 `json:"bytes_sent" doc:"Bytes of the bodies sent to endpoints (a batch's body counted once)."`
}

// Add adds o to c.
func (c *UsageCounts) Add(o UsageCounts) {
	c.Events += o.Events
	c.EventBytes += o.EventBytes
	c.RequestsReceived += o.RequestsReceived
	c.BytesReceived += o.BytesReceived
	c.Deliveries += o.Deliveries
	c.AttemptsOK += o.AttemptsOK
	c.AttemptsFailed += o.AttemptsFailed
	c.BytesSent += o.BytesSent
}

// UsageFilter selects usage.
type UsageFilter struct {
	TenantID string
	// From and To bound the buckets: hours starting at or after From and before To.
	From, To time.Time
	// Daily sums hours into UTC days.
	Daily bool
	// EndpointID keeps one endpoint's figures (deliveries, attempts, bytes sent).
	EndpointID string
	// ByEndpoint gives one row per endpoint and bucket (endpoints' figures only) instead of the
	// tenant's totals.
	ByEndpoint bool
}

// UsageRow is the usage of one bucket (and endpoint, with ByEndpoint or EndpointID).
type UsageRow struct {
	TenantID   string
	Start      time.Time // the bucket's first instant, UTC
	EndpointID string
	UsageCounts
}

// UsageKey names one counter row: a tenant, an hour and an endpoint ("" for the tenant's own
// figures: events and received requests).
type UsageKey struct {
	TenantID   string
	Hour       time.Time
	EndpointID string
}

// UsageHour is the hour whose counters t counts in.
func UsageHour(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// UsageDelta gathers the increments of one transaction, so that each counter row is written
// once, in key order (two transactions then lock rows in one order and cannot deadlock).
type UsageDelta map[UsageKey]*UsageCounts

// Add counts c against key.
func (d UsageDelta) Add(tenantID string, at time.Time, endpointID string, c UsageCounts) {
	k := UsageKey{TenantID: tenantID, Hour: UsageHour(at), EndpointID: endpointID}
	if cur, ok := d[k]; ok {
		cur.Add(c)
		return
	}
	d[k] = &c
}

// AddPublished counts what publishing results became (events stored and their deliveries).
func (d UsageDelta) AddPublished(tenantID string, results []PublishResult) {
	for _, r := range results {
		if r.Duplicate || r.Event == nil {
			continue
		}
		d.Add(tenantID, r.Event.CreatedAt, "", UsageCounts{Events: 1, EventBytes: int64(len(r.Event.Payload))})
		for _, id := range r.EndpointIDs {
			d.Add(tenantID, r.Event.CreatedAt, id, UsageCounts{Deliveries: 1})
		}
	}
}

// AddAttempt counts one recorded attempt.
func (d UsageDelta) AddAttempt(a Attempt) {
	c := UsageCounts{BytesSent: int64(a.BytesSent)}
	if a.Success {
		c.AttemptsOK = 1
	} else {
		c.AttemptsFailed = 1
	}
	d.Add(a.TenantID, a.At, a.EndpointID, c)
}

// Sorted lists the delta's rows in key order.
func (d UsageDelta) Sorted() []UsageKey {
	keys := make([]UsageKey, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b UsageKey) int {
		return cmp.Or(cmp.Compare(a.TenantID, b.TenantID), a.Hour.Compare(b.Hour), cmp.Compare(a.EndpointID, b.EndpointID))
	})
	return keys
}
