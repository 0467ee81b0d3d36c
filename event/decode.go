package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Decode reads one input from the JSON object b and checks it (Check) in the same pass over the
// bytes: it is what a publish needs to decode a request body once rather than once to validate
// and again into the struct. Every problem is reported, each at its JSON location under loc
// ("body", "body.events[3]"): a field of the wrong JSON type, an unknown field ("unexpected
// property"), a missing type or data ("expected required property type to be present", at loc),
// then the rules of Check. Wording follows the API's schema validator. The input is usable only
// when no problem is returned. Data keeps the bytes as sent (Envelope.Encode compacts them).
func Decode(b []byte, loc string) (Input, []*Problem) {
	var in Input
	var ps []*Problem
	bad := map[string]bool{} // locations with a decoding problem: Check does not repeat them
	add := func(at, msg string, v any) {
		ps = append(ps, &Problem{Location: at, Message: msg, Value: v})
		bad[at] = true
	}
	fields, err := object(b)
	if err != nil {
		add(loc, err.Error(), nil)
		return in, ps
	}
	var sawType, sawData bool
	for _, f := range fields {
		at := loc + "." + f.name
		str := func(dst *string) {
			if err := json.Unmarshal(f.value, dst); err != nil || f.value[0] != '"' {
				add(at, "expected string", nil)
			}
		}
		switch f.name {
		case "id":
			str(&in.ID)
		case "type":
			sawType = true
			str(&in.Type)
		case "source":
			str(&in.Source)
		case "priority":
			str(&in.Priority)
		case "data":
			sawData = true
			if f.value[0] != '{' {
				add(at, msgObject, nil)
				continue
			}
			in.Data = Object(f.value)
		case "resource":
			r, rps := resource(f.value, at)
			for _, p := range rps {
				add(p.Location, p.Message, p.Value)
			}
			in.Resource = r
		default:
			add(at, "unexpected property", nil)
		}
	}
	if !sawType {
		add(loc, "expected required property type to be present", nil)
	}
	if !sawData {
		add(loc, "expected required property data to be present", nil)
		bad[loc+".data"] = true
	}
	for _, p := range in.Check(loc) {
		if !bad[p.Location] {
			ps = append(ps, p)
		}
	}
	return in, ps
}

// field is one member of a JSON object: its name and its value's bytes.
type field struct {
	name  string
	value json.RawMessage
}

// notJSON is the problem of bytes that are not JSON.
func notJSON(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("not valid JSON: %w", err)
}

// object splits a JSON object into its members, in order, without decoding their values.
func object(b []byte) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, notJSON(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New(msgObject)
	}
	var fields []field
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, notJSON(err)
		}
		name, _ := tok.(string) // an object's keys are strings
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, notJSON(err)
		}
		fields = append(fields, field{name: name, value: v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, notJSON(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not valid JSON: data after the object")
	}
	return fields, nil
}

// resource decodes an input's resource at location at.
func resource(b []byte, at string) (*Resource, []*Problem) {
	fields, err := object(b)
	if err != nil {
		return nil, []*Problem{{Location: at, Message: err.Error()}}
	}
	var r Resource
	var ps []*Problem
	sawID := false
	for _, f := range fields {
		var dst *string
		switch f.name {
		case "id":
			sawID, dst = true, &r.ID
		case "type":
			dst = &r.Type
		case "url":
			dst = &r.URL
		default:
			ps = append(ps, &Problem{Location: at + "." + f.name, Message: "unexpected property"})
			continue
		}
		if err := json.Unmarshal(f.value, dst); err != nil || f.value[0] != '"' {
			ps = append(ps, &Problem{Location: at + "." + f.name, Message: "expected string"})
		}
	}
	if !sawID {
		ps = append(ps, &Problem{Location: at, Message: "expected required property id to be present"})
	}
	return &r, ps
}

// DecodeBatch reads a batch of inputs, the JSON object {"events": [...]}, and checks it in the
// same pass as Decode does each input: the batch's own rules (events present, an array of 1 to
// MaxBatch inputs, no other member) at loc and loc+".events", then each input's at
// loc+".events[i]". The inputs are usable only when no problem is returned.
func DecodeBatch(b []byte, loc string) ([]Input, []*Problem) {
	fields, err := object(b)
	if err != nil {
		return nil, []*Problem{{Location: loc, Message: err.Error()}}
	}
	var ps []*Problem
	var raw json.RawMessage
	for _, f := range fields {
		if f.name != "events" {
			ps = append(ps, &Problem{Location: loc + "." + f.name, Message: "unexpected property"})
			continue
		}
		raw = f.value
	}
	if raw == nil {
		return nil, append(ps, &Problem{Location: loc, Message: "expected required property events to be present"})
	}
	at := loc + ".events"
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, append(ps, &Problem{Location: at, Message: "expected array"})
	}
	var ins []Input
	n := 0
	for ; dec.More(); n++ {
		var elem json.RawMessage
		if err := dec.Decode(&elem); err != nil {
			return nil, append(ps, &Problem{Location: at, Message: notJSON(err).Error()})
		}
		if n >= MaxBatch {
			continue // counted, not decoded: a batch over the limit is refused whole
		}
		in, eps := Decode(elem, fmt.Sprintf("%s[%d]", at, n))
		ps = append(ps, eps...)
		ins = append(ins, in)
	}
	switch {
	case n == 0:
		ps = append(ps, &Problem{Location: at, Message: "expected array length >= 1", Value: []any{}})
	case n > MaxBatch:
		ps = append(ps, &Problem{Location: at, Message: fmt.Sprintf("expected array length <= %d", MaxBatch), Value: n})
	}
	if len(ps) > 0 {
		return nil, ps
	}
	return ins, nil
}
