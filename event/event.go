// Package event is the home of a Herald event: what a publisher hands Herald (Input), the rules
// an input must satisfy before anything is stored (Input.Check, Decode), the ids Herald gives
// events (NewID), and the envelope every endpoint receives (Envelope), with the defaults that go
// with them. The REST API, the receiving gateway, operational webhooks, the outbox relay and the
// public client all build their events here, so an endpoint cannot tell where an event came from.
//
// The package depends on the standard library only: the public client exposes its types.
package event

import (
	"encoding/json"
	"time"
)

// The rules an event's fields follow. The API's OpenAPI document states them through Input's
// struct tags (which must repeat them as literals: the package's tests check that they agree).
const (
	// IDPattern is what an event id may contain.
	IDPattern = `^[A-Za-z0-9_.:-]+$`
	// MaxIDLength bounds an event id, in characters.
	MaxIDLength = 128
	// MaxTypeLength bounds an event type's name, in characters.
	MaxTypeLength = 128
	// MaxSourceLength bounds an event's source, in characters.
	MaxSourceLength = 200
	// MaxResourceIDLength, MaxResourceTypeLength and MaxResourceURLLength bound an event's
	// resource, in bytes.
	MaxResourceIDLength   = 200
	MaxResourceTypeLength = 200
	MaxResourceURLLength  = 2048
	// DefaultMaxBytes is the default bound on one event's envelope, in bytes (herald serve
	// --max-event-bytes).
	DefaultMaxBytes = 256 << 10
	// MaxBatch is the most events one batch publish holds.
	MaxBatch = 1000
)

// The priority names an input may carry; empty is PriorityNormal.
const (
	PriorityHigh   = "high"
	PriorityNormal = "normal"
	PriorityLow    = "low"
)

// ValidPriority reports whether name is a priority an input may carry: high, normal, low or
// empty (normal).
func ValidPriority(name string) bool {
	switch name {
	case "", PriorityHigh, PriorityNormal, PriorityLow:
		return true
	}
	return false
}

// IDPrefix starts every id Herald generates for an event ("evt_…").
const IDPrefix = "evt"

// Object is a JSON object kept as raw bytes: it is validated as an object and forwarded verbatim
// (compacted), never decoded into Go maps on the hot path.
type Object json.RawMessage

// MarshalJSON writes the raw object.
func (o Object) MarshalJSON() ([]byte, error) {
	if len(o) == 0 {
		return []byte("null"), nil
	}
	return o, nil
}

// UnmarshalJSON keeps a copy of the raw object.
func (o *Object) UnmarshalJSON(b []byte) error {
	*o = append((*o)[:0], b...)
	return nil
}

// Resource names the object an event is about.
type Resource struct {
	ID   string `json:"id"`
	Type string `json:"type,omitempty"`
	URL  string `json:"url,omitempty"`
}

// Input is one event to publish. Its struct tags describe it to the API's OpenAPI document; Check
// applies the same rules (and those a schema cannot state).
type Input struct {
	ID       string    `json:"id,omitempty" maxLength:"128" pattern:"^[A-Za-z0-9_.:-]+$" doc:"Your id for the event: publishing the same id again returns the original event and delivers nothing new. Generated if absent."`
	Type     string    `json:"type" maxLength:"128" doc:"A registered event type." example:"invoice.paid"`
	Data     Object    `json:"data" doc:"The event's payload: a JSON object."`
	Source   string    `json:"source,omitempty" maxLength:"200" doc:"Where the event comes from, e.g. a service name."`
	Resource *Resource `json:"resource,omitempty" doc:"The object the event is about."`
	Priority string    `json:"priority,omitempty" enum:"high,normal,low" doc:"Under backlog, higher priority deliveries go first; a lower priority one is never starved (see docs/events.md). Default normal."`
}

// Timestamp is the timestamp of an event made at now, at the precision the store keeps
// (microseconds), so that the envelope sent and the event read back later carry the same value.
func Timestamp(now time.Time) time.Time { return now.Truncate(time.Microsecond) }
