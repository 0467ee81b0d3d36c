package event

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Problem is one thing wrong with an input: where (a JSON location such as "body.events[3].id"),
// what, and the value found when it helps. The API turns each into an RFC 9457 error detail.
type Problem struct {
	Location string
	Message  string
	Value    any
}

func (p *Problem) Error() string {
	if p.Location == "" {
		return p.Message
	}
	return p.Location + ": " + p.Message
}

// The messages of the rules the OpenAPI document states, worded as the API's schema validator
// (huma) words them, so that a refusal reads the same whichever checked it.
const (
	msgPattern   = "expected string to match pattern " + IDPattern
	msgObject    = "expected object"
	msgPriority  = `expected value to be one of "high, normal, low"`
	msgNUL       = "must not contain NUL characters"
	msgResource  = "resource needs an id (at most 200 characters); type at most 200, url at most 2048"
	msgMaxLength = "expected length <= %d"
)

// idPattern is IDPattern compiled. It is only read.
var idPattern = regexp.MustCompile(IDPattern)

// ValidID reports whether id is an acceptable event id: IDPattern, at most MaxIDLength
// characters. (An input's empty id is not an id: one is generated.)
func ValidID(id string) bool {
	return id != "" && utf8.RuneCountInString(id) <= MaxIDLength && idPattern.MatchString(id)
}

// Check applies every rule an input must satisfy before Herald knows anything of its tenant:
// id, type, source and resource lengths and characters, data a JSON object, a known priority
// name. loc prefixes each problem's location ("body", "body.events[3]", or "" for none). What
// only the store knows (the type is registered, the data matches its schema) and the size of
// the envelope are checked by the publisher. It returns nil when nothing is wrong.
//
// The rules the OpenAPI document states come first, in the order of the fields, with the
// schema validator's wording; an input that satisfied the schema can only fail the others.
func (in *Input) Check(loc string) []*Problem {
	var ps []*Problem
	add := func(field, msg string, v any) {
		ps = append(ps, &Problem{Location: loc + "." + field, Message: msg, Value: v})
	}
	if in.ID != "" {
		if n := utf8.RuneCountInString(in.ID); n > MaxIDLength {
			add("id", fmt.Sprintf(msgMaxLength, MaxIDLength), in.ID)
		}
		if !idPattern.MatchString(in.ID) {
			add("id", msgPattern, in.ID)
		}
	}
	if utf8.RuneCountInString(in.Type) > MaxTypeLength {
		add("type", fmt.Sprintf(msgMaxLength, MaxTypeLength), in.Type)
	}
	if !IsObject(in.Data) {
		add("data", msgObject, nil)
	}
	if utf8.RuneCountInString(in.Source) > MaxSourceLength {
		add("source", fmt.Sprintf(msgMaxLength, MaxSourceLength), in.Source)
	}
	if !ValidPriority(in.Priority) {
		add("priority", msgPriority, in.Priority)
	}
	if strings.ContainsRune(in.Source, 0) {
		add("source", msgNUL, nil)
	}
	if r := in.Resource; r != nil {
		if strings.ContainsRune(r.ID+r.Type+r.URL, 0) {
			add("resource", msgNUL, nil)
		}
		if r.ID == "" || len(r.ID) > MaxResourceIDLength || len(r.Type) > MaxResourceTypeLength || len(r.URL) > MaxResourceURLLength {
			add("resource", msgResource, nil)
		}
	}
	return ps
}

// IsObject reports whether data is a JSON object as far as its first byte tells (the decoder that
// produced it checked the rest).
func IsObject(data []byte) bool {
	for _, c := range data {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c == '{'
	}
	return false
}
