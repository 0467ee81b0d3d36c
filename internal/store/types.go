package store

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Tenant is a customer of the operator; it owns endpoints and events.
type Tenant struct {
	ID   string
	Name string
	// RedactFields are JSON field paths ("card.number") whose values API reads and stored attempt
	// responses show as "[REDACTED]"; see internal/redact.
	RedactFields []string
	// Plan names the TenantPlan whose limits the tenant has ("" for none), and Limits are the
	// tenant's own, which take precedence over the plan's (ResolveLimits); only an admin sets
	// them. Limits.MaxEndpoints (nil or above zero) is stored in its own column, older than plans.
	Plan      string
	Limits    TenantLimits
	CreatedAt time.Time
	UpdatedAt time.Time
	// UID names this instance of the tenant: CreateTenant gives every new tenant a random one
	// (NewTenantUID), never reused and never changed, so that a credential bound to it (an API
	// key, a portal link) dies with the tenant, even if a tenant of the same ID is created later.
	UID string
}

// EventType is an entry of the event catalog, named resource.action with an optional .vN suffix.
type EventType struct {
	Name        string
	Description string
	Deprecated  bool
	// Schema is the JSON Schema of the events' data, nil for none. It documents the type and
	// makes examples; publishing does not check events against it yet.
	Schema json.RawMessage
	// Docs is what the generated documentation shows beyond the description.
	Docs      EventTypeDocs
	CreatedAt time.Time
	UpdatedAt time.Time
}

// EventTypeDocs documents an event type for the operator's integrators (GET /v1/event-types/docs).
type EventTypeDocs struct {
	// Trigger says what makes the event happen ("An invoice was paid in full").
	Trigger string `json:"trigger,omitempty"`
	// Examples are example data payloads, each valid against the schema; the first is the one
	// `herald trigger` and the generated documentation use (a generated one when there are none).
	Examples []json.RawMessage `json:"examples,omitempty"`
	// Sunset is the date after which a deprecated type (usually an old version) is no longer
	// published; shown in the documentation and the dashboard.
	Sunset *time.Time `json:"sunset,omitempty"`
}

// Priorities of a publish: under backlog, higher priority deliveries go first.
const (
	PriorityHigh   = 0
	PriorityNormal = 1
	PriorityLow    = 2
)

// Secret is one signing key of an endpoint. During rotation an endpoint has the new secret and the
// old one until ExpiresAt; every delivery in that window is signed with both.
type Secret struct {
	Key       string     `json:"key"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Endpoint is a URL of a tenant that receives the events it subscribes to.
type Endpoint struct {
	ID             string
	TenantID       string
	URL            string
	Description    string
	EventTypes     []string // exact names, "prefix.*" or "*"
	Secrets        []Secret // the current secret first
	Timeout        time.Duration
	MaxConcurrency int
	RateLimit      float64         // requests per second, 0 for none
	RetrySchedule  []time.Duration // nil for the default schedule
	Headers        map[string]string
	Enabled        bool
	DisabledReason string
	FailingSince   *time.Time // first failure since the last success
	// Internal marks an endpoint on the operator's own network: only an admin sets it, and only
	// such endpoints may reach the ranges the operator opens with --internal-cidr.
	Internal bool
	// Options are the endpoint's delivery options beyond the basics.
	Options EndpointOptions
	// Type is the endpoint's destination type (a destination.Type's name): TypeWebhook (also
	// for "") POSTs to URL; the others deliver to a message broker as Settings say.
	Type string
	// Settings are the type's settings as its Check returned them (nil for a webhook), with the
	// secret fields in clear: the store seals those at rest (see EncodeEndpointSettings).
	Settings json.RawMessage
	// SecretFields name the top-level Settings fields that are credentials (the type's
	// Secrets()). On write, whoever sets Settings sets it, and the store seals those fields;
	// on read, the store names the sealed fields it found (the credentials that are set).
	SecretFields []string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// EndpointOptions shape what an endpoint receives and how (stored as one JSON document).
type EndpointOptions struct {
	// Filter is a CEL expression over the envelope (internal/expr); an event whose envelope does
	// not make it true creates no delivery for the endpoint. Empty: every subscribed event.
	Filter string `json:"filter,omitempty"`
	// Transform is a CEL expression whose value becomes the body sent instead of the envelope
	// (internal/expr). Empty: the envelope as published.
	Transform string `json:"transform,omitempty"`
	// Signature is the signature scheme: SignatureStandard (also for ""), SignatureGitHub or
	// SignatureStripe.
	Signature string `json:"signature,omitempty"`
	// Batch, when set, sends up to MaxEvents events per request, a JSON array of envelopes.
	Batch *Batching `json:"batch,omitempty"`
	// Ordered delivers events in publish order, one at a time: a later event waits while an
	// earlier one is retried.
	Ordered bool `json:"ordered,omitempty"`
	// Format is the body's format: FormatHerald (also for "") sends the envelope (or the
	// transformation's output); the CloudEvents formats map it to a CloudEvent (issue 17).
	Format string `json:"format,omitempty"`
}

// Body formats an endpoint may choose.
const (
	FormatHerald                = "herald"
	FormatCloudEventsStructured = "cloudevents-structured"
	FormatCloudEventsBinary     = "cloudevents-binary"
)

// Signature schemes an endpoint may choose.
const (
	SignatureStandard = "standard-webhooks"
	SignatureGitHub   = "github"
	SignatureStripe   = "stripe"
)

// Batching groups an endpoint's events: a request leaves when MaxEvents are due or the oldest due
// one has waited MaxWait, whichever comes first.
type Batching struct {
	MaxEvents int           `json:"max_events"`
	MaxWait   time.Duration `json:"max_wait"`
}

// Subscribes reports whether the endpoint wants events of the given type.
func (e *Endpoint) Subscribes(eventType string) bool {
	return MatchAny(e.EventTypes, eventType)
}

// MatchAny reports whether eventType matches one of the patterns: an exact name, "*", or a prefix
// ending in ".*" that matches any name below it ("invoice.*" matches "invoice.paid" and
// "invoice.paid.v2").
func MatchAny(patterns []string, eventType string) bool {
	for _, p := range patterns {
		switch {
		case p == "*" || p == eventType:
			return true
		case strings.HasSuffix(p, ".*"):
			prefix := p[:len(p)-1] // keep the dot
			if strings.HasPrefix(eventType, prefix) {
				return true
			}
		}
	}
	return false
}

// ActiveSecrets returns the keys valid at now, current first.
func (e *Endpoint) ActiveSecrets(now time.Time) []string {
	keys := make([]string, 0, len(e.Secrets))
	for _, s := range e.Secrets {
		if s.ExpiresAt == nil || s.ExpiresAt.After(now) {
			keys = append(keys, s.Key)
		}
	}
	return keys
}

// Event is one occurrence, immutable once published. Payload is the exact JSON envelope sent to
// endpoints (and signed), built once at publish time.
type Event struct {
	ID        string
	TenantID  string
	Type      string
	Timestamp time.Time
	Source    string
	Payload   json.RawMessage
	CreatedAt time.Time
	// Traceparent and Tracestate are the W3C trace context of the request that published the
	// event (empty when it had none and tracing is off): its delivery attempts, which run later
	// and maybe on another node, continue that trace.
	Traceparent string
	Tracestate  string
	// Priority is the priority its deliveries get (PriorityHigh, PriorityNormal, PriorityLow);
	// it is not stored with the event.
	Priority int
}

// PublishResult tells what Publish did with one event.
type PublishResult struct {
	Event      *Event
	Deliveries int
	Duplicate  bool
	// EndpointIDs are the endpoints that got a new delivery, so the dispatcher can be woken for them.
	EndpointIDs []string
}

// DeliveryState is where a delivery is in its life.
type DeliveryState string

const (
	StatePending   DeliveryState = "pending"
	StateSucceeded DeliveryState = "succeeded"
	StateDead      DeliveryState = "dead"
)

// Valid reports whether s is a known state.
func (s DeliveryState) Valid() bool {
	return s == StatePending || s == StateSucceeded || s == StateDead
}

// Delivery is one event to one endpoint.
type Delivery struct {
	ID            int64
	TenantID      string
	EventID       string
	EventType     string
	EndpointID    string
	State         DeliveryState
	Attempts      int
	NextAttemptAt *time.Time // set while pending
	Priority      int
	LastStatus    int
	LastError     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Attempt is one HTTP try of a delivery.
type Attempt struct {
	ID         int64
	DeliveryID int64
	TenantID   string
	EndpointID string
	EventID    string
	At         time.Time
	StatusCode int
	Latency    time.Duration
	Response   string
	ErrorKind  string
	Error      string
	Success    bool
	// BytesSent is the size of the body sent (for usage metering; not stored with the attempt).
	// A batch's body counts with one of its attempts.
	BytesSent int
}

// Result is the outcome of one attempt and what follows from it.
type Result struct {
	DeliveryID int64
	EndpointID string
	Attempt    Attempt
	// State after the attempt: succeeded, dead, or pending with NextAttemptAt.
	State         DeliveryState
	NextAttemptAt time.Time
	// BatchID is set when the attempt sent a batch: the batch's id (its smallest delivery id),
	// stored with a pending delivery so that its retries send the same batch.
	BatchID int64
}

// EventFilter selects events of a tenant.
type EventFilter struct {
	TenantID string
	Types    []string
	Since    time.Time
	Until    time.Time
	Page
}

// DeliveryFilter selects deliveries of a tenant.
type DeliveryFilter struct {
	TenantID   string
	EventID    string
	EndpointID string
	EventTypes []string
	States     []DeliveryState
	Since      time.Time // created at or after
	Until      time.Time // created before
	Page
}

// AttemptFilter selects attempts of a tenant.
type AttemptFilter struct {
	TenantID   string
	DeliveryID int64
	EventID    string
	EndpointID string
	Since      time.Time
	Until      time.Time
	Page
}

// Stats counts a tenant's traffic since a moment.
type Stats struct {
	Since            time.Time `json:"since"`
	Events           int       `json:"events"`
	Deliveries       int       `json:"deliveries"`
	Succeeded        int       `json:"succeeded"`
	Pending          int       `json:"pending"`
	Dead             int       `json:"dead"`
	Attempts         int       `json:"attempts"`
	FailedAttempts   int       `json:"failed_attempts"`
	FailedDeliveries int       `json:"failed_deliveries"`
}

// NewTenantUID makes a tenant instance id: 128 random bits in hex, as migrations give the
// tenants that existed before instance ids did.
func NewTenantUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	return hex.EncodeToString(b[:])
}

// Role is what an API key may do.
type Role string

const (
	RoleAdmin  Role = "admin"
	RoleTenant Role = "tenant"
)

// APIKey is a stored key: only the SHA-256 of the secret is kept.
type APIKey struct {
	ID        string
	Name      string
	Role      Role
	TenantID  string // for RoleTenant
	Hash      []byte
	Prefix    string // the first characters of the key, to recognise it in lists
	CreatedAt time.Time
	RevokedAt *time.Time
	// TenantUID is the instance of the tenant a tenant key was made for (Tenant.UID): CreateAPIKey
	// sets it, and APIKeyByHash finds the key only while that instance exists.
	TenantUID string
}

// EncodeEndpointOptions and DecodeEndpointOptions convert an endpoint's options to and from the
// JSON document drivers store.
func EncodeEndpointOptions(o EndpointOptions) (string, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return "", fmt.Errorf("encode endpoint options: %w", err)
	}
	return string(b), nil
}

func DecodeEndpointOptions(s string) (EndpointOptions, error) {
	var o EndpointOptions
	if s == "" {
		return o, nil
	}
	if err := json.Unmarshal([]byte(s), &o); err != nil {
		return o, fmt.Errorf("decode endpoint options: %w", err)
	}
	return o, nil
}

// EncodeEventTypeDocs and DecodeEventTypeDocs convert an event type's documentation to and from
// the JSON document drivers store.
func EncodeEventTypeDocs(d EventTypeDocs) (string, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return "", fmt.Errorf("encode event type docs: %w", err)
	}
	return string(b), nil
}

func DecodeEventTypeDocs(s string) (EventTypeDocs, error) {
	var d EventTypeDocs
	if s == "" {
		return d, nil
	}
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return d, fmt.Errorf("decode event type docs: %w", err)
	}
	return d, nil
}
