package store

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/heraldhq/herald/internal/seal"
)

// Source is an inbound URL of a tenant: requests to /in/{Token} are verified by the source's
// settings and become events of the tenant, routed to its endpoints like any other event.
//
// The token is a credential (whoever knows it can post to the source), and Settings hold the
// sender's secrets: drivers store both sealed with the store's keyring (see EncodeSource), and
// find a source by the SHA-256 of its token (TokenHash), never by the token itself.
type Source struct {
	ID        string
	TenantID  string
	Name      string
	Token     string
	Enabled   bool
	Settings  SourceSettings
	CreatedAt time.Time
	UpdatedAt time.Time
}

// SourceSettings is how a source checks, limits, deduplicates and names what it receives. The
// API validates it; the store keeps it as one sealed document, so a new setting needs no
// migration.
type SourceSettings struct {
	Description string `json:"description,omitempty"`
	// Verification is the verify.Config as JSON (it holds the sender's secrets).
	Verification json.RawMessage `json:"verification"`
	// AllowIPs are CIDRs a request must come from; empty allows every address.
	AllowIPs []string `json:"allow_ips,omitempty"`
	// RateLimit is requests per second (0: none), in bursts of up to RateBurst.
	RateLimit float64 `json:"rate_limit,omitempty"`
	RateBurst int     `json:"rate_burst,omitempty"`
	// MaxBodyBytes bounds a request body (0: the server's default).
	MaxBodyBytes int `json:"max_body_bytes,omitempty"`
	// Schema is a JSON Schema the payload must satisfy; a request that does not is quarantined.
	Schema json.RawMessage `json:"schema,omitempty"`
	// Dedup says which value identifies a delivery, and for how long a repeat is a duplicate.
	Dedup Dedup `json:"dedup"`
	// EventTypePrefix is put before the provider's event type ("stripe." makes "stripe.invoice.paid");
	// DefaultEventType is the type of a request that carries none (default "webhook.received").
	EventTypePrefix  string `json:"event_type_prefix,omitempty"`
	DefaultEventType string `json:"default_event_type,omitempty"`
	// CloudEventsOrigins are the WebHook-Request-Origin values whose CloudEvents abuse-protection
	// handshake (OPTIONS) the source agrees to, "*" for any; empty refuses every handshake.
	CloudEventsOrigins []string `json:"cloudevents_origins,omitempty"`
	// ClientCert, when set, requires a verified client certificate on every request
	// (inbound.ClientCert: Herald's own TLS listener, or a trusted proxy's forwarded one).
	ClientCert *ClientCertRequirement `json:"client_cert,omitempty"`
}

// ClientCertRequirement is a source's client certificate requirement: a certificate verified
// (by Herald's listener against --tls-client-ca, or by a trusted proxy) must be presented, and,
// when Names is not empty, one of its names (subject common name, DNS or URI SANs) must be one
// of them.
type ClientCertRequirement struct {
	Names []string `json:"names,omitempty"`
}

// Dedup keys. DedupProviderID (the default) uses the provider's delivery id (verify.Event.ID)
// and, when a request carries none, does not deduplicate it.
const (
	DedupProviderID = "provider_id"
	DedupHeader     = "header"
	DedupJSONPath   = "json_path"
	DedupBodyHash   = "body_hash"
	DedupNone       = "none"
)

// Dedup windows.
const (
	DefaultDedupWindow = 7 * 24 * time.Hour
	MaxDedupWindow     = 30 * 24 * time.Hour
)

// Dedup is a source's duplicate rule.
type Dedup struct {
	By            string `json:"by,omitempty"`     // one of the Dedup* keys; "" is DedupProviderID
	Header        string `json:"header,omitempty"` // for DedupHeader
	Path          string `json:"path,omitempty"`   // for DedupJSONPath
	WindowSeconds int    `json:"window_seconds,omitempty"`
}

// Window is the effective dedup window.
func (d Dedup) Window() time.Duration {
	if d.WindowSeconds <= 0 {
		return DefaultDedupWindow
	}
	return time.Duration(d.WindowSeconds) * time.Second
}

// TokenHash is how a store finds a source by its token.
func TokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

func sourceAAD(sourceID, part string) []byte {
	return []byte("herald source " + part + "\x00" + sourceID)
}

// EncodeSource is the stored form of a source's token and settings, both sealed (bound to the
// source id). With keys nil they are stored in plaintext (only tests that need no encryption do).
func EncodeSource(keys *seal.Keyring, s *Source) (token, settings []byte, err error) {
	doc, err := json.Marshal(s.Settings)
	if err != nil {
		return nil, nil, fmt.Errorf("source %s: encode settings: %w", s.ID, err)
	}
	if keys == nil {
		return []byte(s.Token), doc, nil
	}
	t, err := keys.Seal([]byte(s.Token), sourceAAD(s.ID, "token"))
	if err != nil {
		return nil, nil, fmt.Errorf("source %s: encrypt token: %w", s.ID, err)
	}
	d, err := keys.Seal(doc, sourceAAD(s.ID, "settings"))
	if err != nil {
		return nil, nil, fmt.Errorf("source %s: encrypt settings: %w", s.ID, err)
	}
	return []byte(t), []byte(d), nil
}

// DecodeSource reads what EncodeSource stored into s (whose ID must be set).
func DecodeSource(keys *seal.Keyring, s *Source, token, settings []byte) error {
	open := func(raw []byte, part string) ([]byte, error) {
		if !seal.IsSealed(string(raw)) {
			return raw, nil
		}
		if keys == nil {
			return nil, fmt.Errorf("source %s %s: %w", s.ID, part, ErrNoEncryptionKey)
		}
		plain, err := keys.Open(string(raw), sourceAAD(s.ID, part))
		if err != nil {
			return nil, fmt.Errorf("source %s %s: %w", s.ID, part, err)
		}
		return plain, nil
	}
	t, err := open(token, "token")
	if err != nil {
		return err
	}
	doc, err := open(settings, "settings")
	if err != nil {
		return err
	}
	s.Token = string(t)
	s.Settings = SourceSettings{}
	if err := json.Unmarshal(doc, &s.Settings); err != nil {
		return fmt.Errorf("source %s settings: %w", s.ID, err)
	}
	// EncodeSource writes a nil Verification as null, which would come back as the RawMessage
	// "null": a source reads back as it was written.
	if string(s.Settings.Verification) == "null" {
		s.Settings.Verification = nil
	}
	return nil
}

// ReceiveStatus is what became of a received request.
type ReceiveStatus string

const (
	// ReceiveAccepted: verified, stored, turned into an event (EventID).
	ReceiveAccepted ReceiveStatus = "accepted"
	// ReceiveDuplicate: its dedup key was seen within the window (DuplicateOf); acknowledged,
	// nothing forwarded.
	ReceiveDuplicate ReceiveStatus = "duplicate"
	// ReceiveQuarantined: verified but failed the source's schema (Reason); kept, nothing
	// forwarded, replayable.
	ReceiveQuarantined ReceiveStatus = "quarantined"
	// ReceiveRejected: refused (bad signature, IP not allowed, too large, ...; Reason).
	ReceiveRejected ReceiveStatus = "rejected"
)

// Valid reports whether s is a known status.
func (s ReceiveStatus) Valid() bool {
	switch s {
	case ReceiveAccepted, ReceiveDuplicate, ReceiveQuarantined, ReceiveRejected:
		return true
	}
	return false
}

// ReceivedRequest is one request to a source, stored raw.
type ReceivedRequest struct {
	ID         string // "req_…"
	TenantID   string
	SourceID   string
	ReceivedAt time.Time
	Method     string
	Path       string
	Query      string
	Headers    http.Header // credentials (Authorization, Cookie) replaced by the caller
	Body       []byte      // empty in lists, which read only BodySize
	BodySize   int         // the stored body's length, in lists too
	RemoteAddr string
	Status     ReceiveStatus
	// Reason says why a request was rejected or quarantined (machine-readable first word, such
	// as "bad_signature: …" or "schema: …").
	Reason string
	// DedupKey is the value this request was deduplicated on ("" for none); DedupUntil is when
	// the window it opened ends.
	DedupKey    string
	DedupUntil  time.Time
	DuplicateOf string // the request that first carried DedupKey, for a duplicate
	EventID     string // the event it became, once accepted
	EventType   string
	// Deliveries is how many deliveries the event got when it was stored.
	Deliveries int
}

// ReceivedFilter selects received requests of a tenant, newest first.
type ReceivedFilter struct {
	TenantID string
	SourceID string
	Statuses []ReceiveStatus
	Since    time.Time // received at or after
	Until    time.Time // received before
	Page
}

// ReceiveResult is what Receive and AcceptReceived did.
type ReceiveResult struct {
	// Request is the stored request; its Status is ReceiveDuplicate (with DuplicateOf) when the
	// dedup key was taken, whatever the caller asked.
	Request *ReceivedRequest
	// Published is the event's publish result, when an event was stored.
	Published *PublishResult
}

// The helpers below are how both drivers store a received request's headers and body.

// EncodeHeaders is the stored form of a request's headers: a JSON object of lists.
func EncodeHeaders(h http.Header) (string, error) {
	if h == nil {
		return "{}", nil
	}
	b, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("encode headers: %w", err)
	}
	return string(b), nil
}

// DecodeHeaders reads what EncodeHeaders stored; no headers is nil.
func DecodeHeaders(b []byte) (http.Header, error) {
	var h http.Header
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("headers: %w", err)
	}
	if len(h) == 0 {
		return nil, nil
	}
	return h, nil
}

// BodyArg is a body as a NOT NULL column takes it (pgx sends a nil slice as NULL).
func BodyArg(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
