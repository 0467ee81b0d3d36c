package destination

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// DialerFor is the guarded dialer of a target: InternalDial for one an admin marked internal,
// Dial otherwise (nil if the node gave none).
func (e Env) DialerFor(internal bool) Dialer {
	if internal {
		return e.InternalDial
	}
	return e.Dial
}

// Decoding says how DecodeSettings words its errors for one type's settings.
type Decoding struct {
	// Required names what an empty document lacks ("url and subject").
	Required string
	// Known lists the setting names, for an unknown one ("url, subject, stream").
	Known string
	// Hint says what a setting must be when the JSON has another type, by setting name
	// (`a duration in a string, such as "30s"`); without one the Go type says it ("a string",
	// "a whole number", "true or false").
	Hint map[string]string
}

// DecodeSettings decodes a type's settings into v strictly: one JSON object, unknown fields and
// trailing data refused. The error names the JSON field it is about (for a field of an embedded
// struct, its own name, not the Go path) and says what is wrong in words a person understands.
func DecodeSettings(raw json.RawMessage, v any, d Decoding) *FieldError {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		msg := "the settings must be a JSON object"
		if len(trimmed) == 0 {
			msg = "the settings are required: a JSON object"
		}
		if d.Required != "" {
			msg += " with at least " + d.Required
		}
		return &FieldError{Message: msg}
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return d.decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &FieldError{Message: "the settings must be a single JSON object: unexpected data after the settings object"}
	}
	return nil
}

func (d Decoding) decodeError(err error) *FieldError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		// A field of an embedded struct comes as "Conn.url": the setting is the last part.
		field := te.Field[strings.LastIndex(te.Field, ".")+1:]
		want := d.Hint[field]
		if want == "" {
			want = jsonWant(te.Type)
		}
		return &FieldError{Field: field, Message: fmt.Sprintf("must be %s, not a JSON %s", want, te.Value)}
	}
	// encoding/json reports an unknown field as `json: unknown field "name"`.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if n, uerr := strconv.Unquote(name); uerr == nil {
			name = n
		}
		msg := "unknown setting"
		if d.Known != "" {
			msg += " (known: " + d.Known + ")"
		}
		return &FieldError{Field: name, Message: msg}
	}
	return &FieldError{Message: "the settings are not a valid JSON object: " + err.Error()}
}

// jsonWant is what a Go type takes, in JSON words.
func jsonWant(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false (a JSON boolean)"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a JSON array"
	case reflect.Map, reflect.Struct:
		return "a JSON object"
	}
	return "a " + t.String()
}

// FieldErrors collects the problems of a type's settings, field by field.
type FieldErrors []*FieldError

// Add records that field is wrong: msg says why, value is the offending value (never a
// secret's; nil not to echo it).
func (e *FieldErrors) Add(field, msg string, value any) {
	*e = append(*e, &FieldError{Field: field, Message: msg, Value: value})
}

// Duration checks a duration setting given as a Go duration string ("30s", "2m"): def when
// empty, else one from lo to hi. meaning says what the duration is, for the error. It rewrites
// *raw in its normal form (so that Check returns it) and returns the duration.
func (e *FieldErrors) Duration(field string, raw *string, def, lo, hi time.Duration, meaning string) time.Duration {
	d := def
	if *raw != "" {
		v, err := time.ParseDuration(*raw)
		switch {
		case err != nil:
			e.Add(field, `must be a duration such as "30s", "2m" or "1m30s"`, *raw)
			return def
		case v < lo || v > hi:
			e.Add(field, fmt.Sprintf("must be from %v to %v (%s)", lo, hi, meaning), *raw)
			return def
		}
		d = v
	}
	*raw = d.String()
	return d
}

// EncodeSettings is what a type's Check returns: the settings normalised as JSON, or errs when
// there are any.
func EncodeSettings(s any, errs []*FieldError) (json.RawMessage, []*FieldError) {
	if len(errs) > 0 {
		return nil, errs
	}
	out, err := json.Marshal(s)
	if err != nil {
		return nil, []*FieldError{{Message: "the settings cannot be encoded: " + err.Error()}}
	}
	return out, nil
}
