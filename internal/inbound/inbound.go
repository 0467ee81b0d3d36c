// Package inbound is Herald's receiving side: it serves the ingest URLs of sources
// (/in/{token}), checks each request (allowlist, rate limit, size, signature, schema), stores it
// raw with the event it becomes in one transaction, drops duplicates, and answers; the delivery
// engine then forwards the event to the tenant's endpoints like any other.
package inbound

import "errors"

// ReplayResult is what Service.Replay did.
type ReplayResult struct {
	RequestID string `json:"request_id"`
	EventID   string `json:"event_id"`
	// Deliveries is how many deliveries were queued.
	Deliveries  int      `json:"deliveries"`
	EndpointIDs []string `json:"-"`
	// Accepted is true when a quarantined request became an event.
	Accepted bool `json:"accepted"`
	// Duplicate is true when the tenant already had an event of that id, so nothing new was
	// queued (a broker source's message replayed after it was published).
	Duplicate bool `json:"duplicate"`
}

// ErrNotReplayable is returned for a request that was rejected: it never verified, so it is
// never forwarded.
var ErrNotReplayable = errors.New("a rejected request cannot be replayed")
