package source

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpheader"
	"github.com/heraldhq/herald/internal/inbound"
	"github.com/heraldhq/herald/internal/inbound/schema"
	"github.com/heraldhq/herald/internal/inbound/verify"
)

// Where a mapping takes the event type from.
const (
	TypeFromSubject = "subject" // the message's Subject, Prefix stripped (the default)
	TypeFromHeader  = "header"  // the header Name
	TypeFromField   = "field"   // the dotted Path in the JSON body
	TypeFromFixed   = "fixed"   // Value, for every message
)

// Where a mapping takes the event id from.
const (
	IDFromMessage = "message" // derived from the broker's Message.ID, else the body (the default)
	IDFromHeader  = "header"  // the header Name
	IDFromField   = "field"   // the dotted Path in the JSON body
)

// Mapping is how a broker source turns a message into an event. It is stored as JSON with the
// source (store.BrokerSource.Mapping).
type Mapping struct {
	EventType TypeRule `json:"event_type"`
	EventID   IDRule   `json:"event_id"`
}

// TypeRule says where the event type comes from.
type TypeRule struct {
	From   string `json:"from"`
	Prefix string `json:"prefix,omitempty"` // subject: stripped when the subject starts with it
	Name   string `json:"name,omitempty"`   // header
	Path   string `json:"path,omitempty"`   // field
	Value  string `json:"value,omitempty"`  // fixed
}

// IDRule says where the event id comes from. When the header or field is absent (or not a
// usable id) the id is derived from the message, as for IDFromMessage.
type IDRule struct {
	From string `json:"from"`
	Name string `json:"name,omitempty"` // header
	Path string `json:"path,omitempty"` // field
}

var (
	// idRe is the publish API's event id pattern.
	idRe = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)
	// typeRe is an event type as the mapping may name one (the API checks it is registered).
	typeRe = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)
)

// CheckMapping decodes a mapping strictly, fills its defaults and validates it field by field
// (Field "mapping.event_type.name" and so on).
func CheckMapping(raw json.RawMessage) (Mapping, []*destination.FieldError) {
	var m Mapping
	if len(bytes.TrimSpace(raw)) > 0 && string(bytes.TrimSpace(raw)) != "null" {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			return m, []*destination.FieldError{{Field: "mapping", Message: "must be an object with event_type and event_id: " + decodeMessage(err)}}
		}
	}
	var errs []*destination.FieldError
	bad := func(field, msg string, v any) {
		errs = append(errs, &destination.FieldError{Field: "mapping." + field, Message: msg, Value: v})
	}
	t := &m.EventType
	if t.From == "" {
		t.From = TypeFromSubject
	}
	switch t.From {
	case TypeFromSubject:
	case TypeFromHeader:
		if t.Name == "" {
			bad("event_type.name", "the header to read the event type from is required", nil)
		}
	case TypeFromField:
		if t.Path == "" {
			bad("event_type.path", "the dotted path of the JSON field to read the event type from is required", nil)
		}
	case TypeFromFixed:
		if !typeRe.MatchString(t.Value) {
			bad("event_type.value", "the fixed event type is required: letters, digits, _ . : - (at most 128)", t.Value)
		}
	default:
		bad("event_type.from", "must be subject, header, field or fixed", t.From)
	}
	id := &m.EventID
	if id.From == "" {
		id.From = IDFromMessage
	}
	switch id.From {
	case IDFromMessage:
	case IDFromHeader:
		if id.Name == "" {
			bad("event_id.name", "the header to read the event id from is required", nil)
		}
	case IDFromField:
		if id.Path == "" {
			bad("event_id.path", "the dotted path of the JSON field to read the event id from is required", nil)
		}
	default:
		bad("event_id.from", "must be message, header or field", id.From)
	}
	return m, errs
}

func decodeMessage(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s must be a %s", te.Field, te.Type)
	}
	return err.Error()
}

// Event is what the runner makes of one message.
type Event struct {
	// ID and Type name the event; Data is its data, a JSON object.
	ID, Type string
	Data     json.RawMessage
	// Message is the message the event comes from.
	Message *Message
	// Quarantine, when not empty, says why the message is held instead of published (its data
	// fails the source's schema, or the mapping finds no event type): the publisher stores it as
	// a quarantined received message of the source, which can be replayed once fixed.
	Quarantine string
	// Invalid is the schema's error when the data fails the source's schema (a
	// *schema.Violation, with its problems): a replay shows them.
	Invalid error
}

// RefusedError is why a held message of a broker source cannot become an event when it is
// replayed: the mapping finds no event type in it, or Herald refuses the event (its type is not
// registered, it is too large, …). Reason is a sentence a person understands.
type RefusedError struct {
	Reason string
}

func (e *RefusedError) Error() string { return "the message cannot become an event: " + e.Reason }

// Mapper maps the messages of one source.
type Mapper struct {
	sourceID string
	m        Mapping
	schema   *schema.Schema
}

// NewMapper compiles a source's mapping and schema (nil: none).
func NewMapper(sourceID string, m Mapping, schemaDoc json.RawMessage) (*Mapper, error) {
	mp := &Mapper{sourceID: sourceID, m: m}
	if len(schemaDoc) > 0 {
		s, err := schema.Compile(schemaDoc)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", sourceID, err)
		}
		mp.schema = s
	}
	return mp, nil
}

// Map makes the event of a message. It never fails: a message it cannot publish is returned
// with Quarantine set.
func (mp *Mapper) Map(msg *Message) Event {
	ev := Event{Message: msg, ID: mp.eventID(msg), Data: Data(msg.Header, msg.Body)}
	typ, why := mp.eventType(msg)
	ev.Type = typ
	if why != "" {
		ev.Quarantine = "mapping: " + why
		return ev
	}
	if mp.schema != nil {
		if err := mp.schema.Validate(ev.Data); err != nil {
			ev.Quarantine, ev.Invalid = "schema: "+err.Error(), err
		}
	}
	return ev
}

func (mp *Mapper) eventType(msg *Message) (string, string) {
	t := mp.m.EventType
	var typ, where string
	switch t.From {
	case TypeFromFixed:
		return t.Value, ""
	case TypeFromHeader:
		if vs := httpheader.Values(http.Header(msg.Header), t.Name); len(vs) > 0 {
			typ = strings.TrimSpace(vs[0])
		}
		where = "header " + t.Name
	case TypeFromField:
		typ = field(msg, t.Path)
		where = "field " + t.Path
	default:
		typ = strings.TrimPrefix(msg.Subject, t.Prefix)
		where = "subject"
	}
	if !typeRe.MatchString(typ) {
		if typ == "" {
			return "", "no event type in the message's " + where
		}
		return "", fmt.Sprintf("the message's %s (%.140q) is not an event type", where, typ)
	}
	return typ, ""
}

func (mp *Mapper) eventID(msg *Message) string {
	var v string
	switch mp.m.EventID.From {
	case IDFromHeader:
		if vs := httpheader.Values(http.Header(msg.Header), mp.m.EventID.Name); len(vs) > 0 {
			v = strings.TrimSpace(vs[0])
		}
	case IDFromField:
		v = field(msg, mp.m.EventID.Path)
	}
	if v != "" {
		if idRe.MatchString(v) {
			return v
		}
		return derivedID(mp.sourceID, "value", v)
	}
	if msg.ID != "" {
		return derivedID(mp.sourceID, "message", msg.ID)
	}
	sum := sha256.Sum256(msg.Body)
	return derivedID(mp.sourceID, "body", string(sum[:]))
}

// derivedID is an event id made of the source and a value that identifies the message: the same
// message, delivered again, gets the same id, and so fans out once.
func derivedID(sourceID, kind, v string) string {
	h := sha256.New()
	h.Write([]byte(sourceID))
	h.Write([]byte{0})
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(v))
	return "bmsg_" + hex.EncodeToString(h.Sum(nil)[:20])
}

func field(msg *Message, path string) string {
	return verify.PayloadValue(&verify.Request{Header: http.Header(msg.Header), Body: msg.Body}, path)
}

// Data is the event data of a message body: the body when it is a JSON object; otherwise what a
// received webhook's body becomes (inbound.EventData: a form body's fields, anything else
// {"content_type","body"} or "body_base64"), and a JSON value that is not an object (an array, a
// string) as {"content_type","body"} too, since an event's data is an object.
func Data(header map[string][]string, body []byte) json.RawMessage {
	if d := bytes.TrimSpace(body); len(d) > 0 && d[0] == '{' {
		if utf8.Valid(d) && json.Valid(d) {
			return d
		}
	}
	d := inbound.EventData(http.Header(header), body)
	if len(d) > 0 && d[0] == '{' {
		return d
	}
	var ct string
	if vs := httpheader.Values(http.Header(header), "Content-Type"); len(vs) > 0 {
		ct = vs[0]
	}
	out, err := json.Marshal(map[string]string{"content_type": ct, "body": string(body)})
	if err != nil {
		return json.RawMessage(`{}`)
	}
	return out
}
