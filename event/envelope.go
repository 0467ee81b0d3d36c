package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Envelope is the JSON body every endpoint receives for an event (and what Herald signs and
// stores as the event's payload): {"id","type","timestamp","data","source","resource","inbound"},
// in that order, the last three only when set. Published, received and operational events all
// have it, so an endpoint cannot tell them apart by shape.
type Envelope struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
	Source    string          `json:"source,omitempty"`
	Resource  *Resource       `json:"resource,omitempty"`
	// Inbound is set on an event the receiving gateway made of a request.
	Inbound *Origin `json:"inbound,omitempty"`
}

// Origin is what an event the gateway forwarded says of the request it came from: the received
// request (to find it in the API) and the sender's own id of the delivery (GitHub's
// X-GitHub-Delivery, Stripe's evt_…, …), which the event's id is not: ids of different senders
// could collide within a tenant, so Herald's event ids are its own.
type Origin struct {
	RequestID  string `json:"request_id"`
	ProviderID string `json:"provider_id,omitempty"`
}

// Encode writes the envelope as Herald sends it: data compacted, HTML characters unescaped, no
// trailing newline. Data must be valid JSON (none is written as null).
func (e *Envelope) Encode() ([]byte, error) { return e.encode(true) }

// EncodeVerbatim is Encode with data written byte for byte rather than compacted: the gateway
// forwards a sender's body exactly as it came. Data must be valid JSON; it is not checked.
func (e *Envelope) EncodeVerbatim() ([]byte, error) { return e.encode(false) }

func (e *Envelope) encode(compact bool) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(e.Data) + 160)
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	field := func(name string, v any) error {
		buf.WriteString(name)
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("encode event %s: %w", name[2:len(name)-2], err)
		}
		buf.Truncate(buf.Len() - 1) // Encode's newline
		return nil
	}
	if err := field(`{"id":`, e.ID); err != nil {
		return nil, err
	}
	if err := field(`,"type":`, e.Type); err != nil {
		return nil, err
	}
	if err := field(`,"timestamp":`, e.Timestamp); err != nil {
		return nil, err
	}
	buf.WriteString(`,"data":`)
	switch {
	case len(e.Data) == 0:
		buf.WriteString("null")
	case compact:
		if err := json.Compact(&buf, e.Data); err != nil {
			return nil, fmt.Errorf("encode event data: %w", err)
		}
	default:
		buf.Write(e.Data)
	}
	if e.Source != "" {
		if err := field(`,"source":`, e.Source); err != nil {
			return nil, err
		}
	}
	if e.Resource != nil {
		if err := field(`,"resource":`, e.Resource); err != nil {
			return nil, err
		}
	}
	if e.Inbound != nil {
		if err := field(`,"inbound":`, e.Inbound); err != nil {
			return nil, err
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// Marshal is json.Marshal without HTML escaping, as the envelope is written: for data that
// starts as a Go value (operational events, form fields the gateway turns into an object).
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// DecodeEnvelope reads a stored or received envelope.
func DecodeEnvelope(b []byte) (*Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("decode event envelope: %w", err)
	}
	return &e, nil
}
