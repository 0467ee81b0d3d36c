// Package store defines the contract between Herald's engine and its databases, and the types that
// cross it. Drivers live in subpackages (sqlite, and later postgres); storetest holds the conformance
// suite every driver must pass, so that no behaviour exists in one driver only.
package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Errors every driver returns, so that callers can map them to HTTP answers without knowing the driver.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
	// ErrUnavailable means the store cannot take writes now (disk full, read-only, closed):
	// nothing was written, and the caller may try again later.
	ErrUnavailable = errors.New("store unavailable")
)

// UnavailableReporter is implemented by drivers that can tell, from an error one of their methods
// returned without wrapping it in ErrUnavailable, that the database could not be reached or was
// ending the session (PostgreSQL's 08xxx and 57P0x classes, a refused or reset connection): the
// caller answers "try again later", not "internal error".
type UnavailableReporter interface {
	Unavailable(err error) bool
}

// Unavailable reports whether err means st could not be reached: ErrUnavailable, or an error
// the driver recognises as such.
func Unavailable(st Store, err error) bool {
	if errors.Is(err, ErrUnavailable) {
		return true
	}
	r, ok := find[UnavailableReporter](st)
	return ok && err != nil && r.Unavailable(err)
}

// Wrapper is a Store that adds to another (redaction, say): the optional interfaces of the
// driver underneath (UnavailableReporter, Heartbeater) are found through it.
type Wrapper interface {
	Unwrap() Store
}

// find returns the first of st and the stores it wraps that implements T.
func find[T any](st Store) (T, bool) {
	for st != nil {
		if t, ok := st.(T); ok {
			return t, true
		}
		w, ok := st.(Wrapper)
		if !ok {
			break
		}
		st = w.Unwrap()
	}
	var zero T
	return zero, false
}

// HeartbeaterOf returns the Heartbeater of st or of a store it wraps, nil when there is none
// (a store of one process).
func HeartbeaterOf(st Store) Heartbeater {
	hb, _ := find[Heartbeater](st)
	return hb
}

// Store is everything the engine and the API need from a database. Every method is safe for
// concurrent use. Writes that return nil are durable.
type Store interface {
	Ping(ctx context.Context) error
	Close() error

	// CreateTenant stores t with a new UID (NewTenantUID), set on t.
	CreateTenant(ctx context.Context, t *Tenant) error
	GetTenant(ctx context.Context, id string) (*Tenant, error)
	ListTenants(ctx context.Context, p Page) ([]Tenant, string, error)
	UpdateTenant(ctx context.Context, t *Tenant) error
	// DeleteTenant removes a tenant with everything it owns (endpoints and their secrets, events,
	// deliveries, attempts, API keys) in small transactions, the tenant itself last, and counts what
	// went. An audit entry in ctx (WithAudit) is written with the last one, its After the counts.
	DeleteTenant(ctx context.Context, id string) (*TenantDeletion, error)

	// Plans (see plans.go): named sets of limits. DeletePlan fails with ErrConflict while a
	// tenant is on the plan. Tenants name their plan (Tenant.Plan); a name that is no plan is none.
	CreatePlan(ctx context.Context, p *TenantPlan) error
	GetPlan(ctx context.Context, name string) (*TenantPlan, error)
	ListPlans(ctx context.Context) ([]TenantPlan, error)
	UpdatePlan(ctx context.Context, p *TenantPlan) error
	DeletePlan(ctx context.Context, name string) error

	// Usage reads the usage counters (see usage.go), in order of tenant, bucket and endpoint;
	// buckets with nothing counted are left out.
	Usage(ctx context.Context, f UsageFilter) ([]UsageRow, error)

	CreateEventType(ctx context.Context, et *EventType) error
	GetEventType(ctx context.Context, name string) (*EventType, error)
	ListEventTypes(ctx context.Context, p Page) ([]EventType, string, error)
	UpdateEventType(ctx context.Context, et *EventType) error
	DeleteEventType(ctx context.Context, name string) error

	CreateEndpoint(ctx context.Context, e *Endpoint) error
	GetEndpoint(ctx context.Context, tenantID, id string) (*Endpoint, error)
	// EndpointByID finds an endpoint whatever its tenant; the dispatcher uses it to load a lane.
	EndpointByID(ctx context.Context, id string) (*Endpoint, error)
	ListEndpoints(ctx context.Context, tenantID string, p Page) ([]Endpoint, string, error)
	UpdateEndpoint(ctx context.Context, e *Endpoint) error
	DeleteEndpoint(ctx context.Context, tenantID, id string) error
	// RekeySecrets re-encrypts with the store's current encryption key the secrets of one page of
	// endpoints (every tenant's, in creation order) that are plaintext or sealed with an older
	// key, and returns how many endpoints it rewrote and the next page's cursor ("" after the
	// last). An endpoint changed meanwhile is skipped: its new secrets were sealed when written.
	// After the endpoints the same cursor pages through the sources (tokens and settings), then
	// the broker sources (settings), so that a full pass leaves nothing an old key must open; the
	// count then includes them.
	RekeySecrets(ctx context.Context, p Page) (int, string, error)
	// DisableEndpoint marks the endpoint disabled with a reason; with deadLetter, its pending
	// deliveries become dead with that reason. It returns how many deliveries were dead-lettered.
	DisableEndpoint(ctx context.Context, id, reason string, deadLetter bool) (int, error)

	// Publish stores events and one delivery per enabled endpoint of the tenant whose subscriptions
	// match, in one transaction. An event whose id already exists for the tenant is returned as it
	// was stored, with Duplicate set and no new deliveries.
	Publish(ctx context.Context, tenantID string, events []*Event) ([]PublishResult, error)
	GetEvent(ctx context.Context, tenantID, id string) (*Event, error)
	ListEvents(ctx context.Context, f EventFilter) ([]Event, string, error)
	// EventsAfter lists a tenant's events in publish order after position after (0: from the
	// first), at most limit, only those whose type matches one of patterns (see MatchAny; no
	// patterns: every type). A reader that resumes from the Position of the last event it got
	// never misses an event, even one whose transaction commits after a later one's (see
	// feed.go).
	EventsAfter(ctx context.Context, tenantID string, after int64, patterns []string, limit int) ([]FeedEvent, error)
	// LatestPosition is the position of the tenant's newest visible event (0 if none): where a
	// reader that wants only events published from now on starts.
	LatestPosition(ctx context.Context, tenantID string) (int64, error)

	GetDelivery(ctx context.Context, tenantID string, id int64) (*Delivery, error)
	ListDeliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, string, error)
	ListAttempts(ctx context.Context, f AttemptFilter) ([]Attempt, string, error)
	// Retry puts one delivery back in the queue, due now, with a fresh retry schedule.
	Retry(ctx context.Context, tenantID string, id int64) (*Delivery, error)
	// Replay re-queues every delivery matching the filter and returns how many.
	Replay(ctx context.Context, f DeliveryFilter) (int, error)
	// Resend queues the event for one endpoint again (creating the delivery if there was none).
	Resend(ctx context.Context, tenantID, eventID, endpointID string) (*Delivery, error)
	Stats(ctx context.Context, tenantID string, since time.Time) (*Stats, error)

	// ClaimDue leases due deliveries of the given endpoints, at most Limit each, until leaseUntil.
	// For each endpoint it also reports when its next not-yet-due delivery is due.
	ClaimDue(ctx context.Context, now, leaseUntil time.Time, reqs []ClaimRequest) ([]ClaimResult, error)
	// RecordResults writes attempt outcomes and the deliveries' new states, and ends their leases.
	// A driver shared by several processes writes a result only while this handle's lease of
	// the delivery is still the one it wrote (fenced); the others it leaves alone and reports
	// in a *StaleResultsError, having written the rest.
	RecordResults(ctx context.Context, results []Result) error
	// RenewClaims extends every lease this handle holds (claimed, neither recorded nor released,
	// not yet ended at now) to until, and returns how many. A process renews periodically, so that
	// a lease can be short (it is how long other processes wait before taking over the work of one
	// that died) while claims wait in its queues for longer.
	RenewClaims(ctx context.Context, now, until time.Time) (int, error)
	// LeaseEnd is when this handle's lease of delivery id ends, as it last wrote it (by this
	// process's clock), or zero when it holds none: never claimed, recorded, released, ended, or
	// lost to another process (a renewal found it taken over). The dispatcher sends a claim only
	// while its lease outlasts the attempt, so that a process cut off from the database never
	// sends what another may have taken over.
	LeaseEnd(id int64) time.Time
	// ReleaseClaims ends leases without recording an attempt (shutdown, breaker refusal).
	ReleaseClaims(ctx context.Context, ids []int64) error
	// ReleaseAllClaims ends every lease; a single-process store calls it at start.
	ReleaseAllClaims(ctx context.Context) (int, error)
	// DueEndpoints lists endpoints that have pending deliveries, with the earliest due time (a
	// driver may count leased deliveries: waking a lane early is harmless).
	DueEndpoints(ctx context.Context, now time.Time) (map[string]time.Time, error)

	// Sources (see sources.go). Drivers store a source's token and settings sealed (EncodeSource)
	// and find it by TokenHash. Configuration writes record the audit entry ctx carries.
	CreateSource(ctx context.Context, s *Source) error
	GetSource(ctx context.Context, tenantID, id string) (*Source, error)
	// SourceByToken finds a source, enabled or not, by the token of its ingest URL.
	SourceByToken(ctx context.Context, token string) (*Source, error)
	ListSources(ctx context.Context, tenantID string, p Page) ([]Source, string, error)
	// UpdateSource writes name, token, enabled and settings; a new token replaces the old one at
	// once. It sets UpdatedAt from s.
	UpdateSource(ctx context.Context, s *Source) error
	// DeleteSource removes a source with its received requests (the events they became stay).
	DeleteSource(ctx context.Context, tenantID, id string) error

	// Receive stores a received request and what it became, in one transaction. A request with
	// Status accepted or quarantined and a DedupKey takes that key for its source until
	// DedupUntil; when the key is already taken by a request whose window has not ended at
	// ReceivedAt, the request is stored as a duplicate (Status duplicate, DuplicateOf set) and
	// nothing else is written. An accepted request that is not a duplicate is stored with ev and
	// its deliveries, exactly as Publish stores an event (EventID, EventType and Deliveries are
	// then set on the stored request). Fails with ErrNotFound when the source is gone.
	Receive(ctx context.Context, req *ReceivedRequest, ev *Event) (*ReceiveResult, error)
	GetReceived(ctx context.Context, tenantID, id string) (*ReceivedRequest, error)
	// ListReceived lists received requests newest first.
	ListReceived(ctx context.Context, f ReceivedFilter) ([]ReceivedRequest, string, error)
	// AcceptReceived turns a quarantined or rejected request into the event ev with its
	// deliveries, in one transaction, and marks it accepted; when the tenant already has an event
	// of ev's id, the request is marked accepted as that event's, and the result says Duplicate.
	// ErrConflict when it is neither quarantined nor rejected (another replay accepted it). The
	// caller decides what may be accepted: a rejected HTTP request never verified and is not
	// (internal/inbound); a rejected broker message was refused by Herald and is, once fixed.
	AcceptReceived(ctx context.Context, tenantID, id string, ev *Event) (*ReceiveResult, error)

	// Broker sources (see brokersources.go). Drivers store Settings sealed
	// (EncodeBrokerSettings). A new source's Health is starting. Creating one counts against the
	// tenant's MaxBrokerSources (Limits). Configuration writes record the audit entry ctx carries.
	CreateBrokerSource(ctx context.Context, s *BrokerSource) error
	GetBrokerSource(ctx context.Context, tenantID, id string) (*BrokerSource, error)
	ListBrokerSources(ctx context.Context, tenantID string, p Page) ([]BrokerSource, string, error)
	// EnabledBrokerSources lists every tenant's enabled broker sources: what the runners run.
	EnabledBrokerSources(ctx context.Context) ([]BrokerSource, error)
	// UpdateBrokerSource writes name, type, settings, mapping, schema and enabled, and sets
	// UpdatedAt from s; it leaves the health alone.
	UpdateBrokerSource(ctx context.Context, s *BrokerSource) error
	// SetBrokerSourceHealth records a runner's report; Since is kept when the state is the same
	// as the stored one. ErrNotFound when the source is gone.
	SetBrokerSourceHealth(ctx context.Context, tenantID, id string, h BrokerHealth) error
	// DeleteBrokerSource removes a broker source with its received (quarantined) messages.
	DeleteBrokerSource(ctx context.Context, tenantID, id string) error

	// CreateAPIKey stores a key. A tenant key is bound to its tenant's current instance (k.TenantUID
	// is set to it; one given must match): ErrNotFound when that instance does not exist.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// APIKeyByHash finds a key that is not revoked and, for a tenant key, whose tenant instance
	// (TenantUID) still exists; ErrNotFound otherwise.
	APIKeyByHash(ctx context.Context, hash []byte) (*APIKey, error)
	ListAPIKeys(ctx context.Context) ([]APIKey, error)
	RevokeAPIKey(ctx context.Context, id string) error
	CountAPIKeys(ctx context.Context) (int, error)

	// RecordAudit writes an audit entry on its own (for changes made in several transactions) and
	// sets its ID. ListAudit lists entries newest first. DeleteAuditOlderThan removes entries
	// recorded before t, at most limit at a time, and returns how many it removed.
	RecordAudit(ctx context.Context, e *AuditEntry) error
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, string, error)
	DeleteAuditOlderThan(ctx context.Context, t time.Time, limit int) (int, error)

	// DeleteOlderThan removes events (and their deliveries and attempts) created before t,
	// received requests received before t and dedup keys whose window ended before t, at most
	// limit of each kind at a time. It returns how many of those events, requests and keys it
	// removed together: less than limit means that none of the three had more to remove, so a
	// caller that repeats while it gets limit drains them all (counting events alone would leave
	// a source busier than limit requests an interval ever further behind).
	DeleteOlderThan(ctx context.Context, t time.Time, limit int) (int, error)
}

// Heartbeater is a store shared by several processes that tells a dead process by its missed
// heartbeats rather than by the end of its leases, so that its endpoints are taken over within
// seconds however long their timeouts (and so their leases) are. The dispatcher calls Heartbeat
// about every second when the store implements it.
type Heartbeater interface {
	// Heartbeat records this process alive until `until` (by its own clock, read before the
	// call), and fences every other process whose heartbeat ended before dead: their lanes and
	// leases are taken away, their work becomes claimable at once. fenced reports that another
	// process fenced this one since its previous heartbeat (it was cut off or paused): every
	// claim it holds is void, and it must drop them unsent (the store has forgotten them:
	// LeaseEnd is zero). A process must stop sending, and cut its attempts in flight short,
	// once its own clock passes the `until` of its last successful heartbeat (minus the skew
	// allowed between clocks); the others fence it only after that same `until` plus the skew.
	Heartbeat(ctx context.Context, now, until, dead time.Time) (fenced bool, err error)
}

// Page is a request for one page of a list: Limit items after the opaque Cursor.
type Page struct {
	Limit  int
	Cursor string
}

// ClaimRequest asks for up to Limit due deliveries of one endpoint.
//
// Unless Ordered or Batch, deliveries are taken by priority with ageing: a delivery's rank is
// its due time plus PriorityDelay(its priority), lowest rank first, so that a high priority
// delivery goes before normal ones due less than PriorityDelay(PriorityNormal) earlier, and nothing waits
// for ever behind a stream of higher priority work.
type ClaimRequest struct {
	EndpointID string
	Limit      int
	// Ordered: only the endpoint's first pending delivery in publish order, and only when it is
	// due and not leased (Limit is then at most 1).
	Ordered bool
	// Batch, when set, makes Limit count batches: each Claimed group is either a failed batch
	// again (all its pending members) or up to Batch.MaxEvents due deliveries not in a batch,
	// taken only when there are MaxEvents of them or the oldest has been due for MaxWait
	// (NextDue then says when it will have been).
	Batch *Batching
}

// PriorityDelay is how far a priority's deliveries are set back when a claim ranks them: high 0,
// normal 10 s, low 60 s.
func PriorityDelay(priority int) time.Duration {
	switch priority {
	case PriorityHigh:
		return 0
	case PriorityLow:
		return 60 * time.Second
	}
	return 10 * time.Second
}

// ClaimResult is what ClaimDue found for one endpoint.
type ClaimResult struct {
	EndpointID string
	Claimed    []Claimed
	// NextDue is when the endpoint next has a delivery to claim: its earliest unleased pending
	// delivery not yet due, or (drivers shared by several processes) the earliest end of a lease
	// on a due one; zero if neither exists.
	NextDue time.Time
	// LaneWait (drivers shared by several processes) says why nothing was claimed although the
	// endpoint has due deliveries no one has leased: another node holds its lane, or this node
	// may not take it now. Empty otherwise; NextDue then says when to ask again.
	LaneWait string
}

// Claimed is a leased delivery with what is needed to send it.
type Claimed struct {
	DeliveryID int64
	EventID    string
	EventType  string
	EventTime  time.Time
	Payload    []byte
	Attempts   int // attempts made before this one, in all
	Tries      int // attempts made since the delivery was last (re)queued; indexes the schedule
	// Traceparent and Tracestate are the event's stored trace context (see Event).
	Traceparent string
	Tracestate  string
	// BatchID groups the deliveries of one batch (Batch claims): the smallest delivery id in it.
	BatchID int64
}

// StaleResultsError names the deliveries whose results RecordResults did not write: their
// leases had ended or passed to another process, which owns their outcome now.
type StaleResultsError struct {
	DeliveryIDs []int64
}

func (e *StaleResultsError) Error() string {
	return fmt.Sprintf("%d results not recorded: their deliveries' leases had ended or passed to another process", len(e.DeliveryIDs))
}

// ErrBadCursor is returned for a cursor that this store did not issue.
var ErrBadCursor = errors.New("invalid cursor")

// EncodeCursor makes an opaque cursor of a position in a list.
func EncodeCursor(pos int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(pos, 10)))
}

// DecodeCursor reads a cursor made by EncodeCursor; the empty cursor is position 0.
func DecodeCursor(c string) (int64, error) {
	if c == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, ErrBadCursor
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || v < 0 {
		return 0, ErrBadCursor
	}
	return v, nil
}

// DefaultLimit and MaxLimit bound list pages.
const (
	DefaultLimit = 50
	MaxLimit     = 250
)

// Clamp returns a usable page size.
func (p Page) Clamp() int {
	switch {
	case p.Limit <= 0:
		return DefaultLimit
	case p.Limit > MaxLimit:
		return MaxLimit
	}
	return p.Limit
}
