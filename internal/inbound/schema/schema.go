// Package schema checks incoming payloads against a source's JSON Schema (drafts 4 to 2020-12,
// by github.com/santhosh-tekuri/jsonschema). A schema may only refer to itself: the compiler is
// given a loader that refuses every URL, so compiling a schema never touches the network or the
// file system.
package schema

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// MaxBytes bounds a schema document.
const MaxBytes = 64 << 10

// maxProblems bounds how many failures Validate reports, so a payload with thousands of bad
// items does not make a megabyte of reasons.
const maxProblems = 10

// Schema is a compiled JSON Schema, safe for concurrent use.
type Schema struct {
	s *jsonschema.Schema
}

// refuseLoader is the compiler's only loader: "$ref" to anything outside the schema fails.
type refuseLoader struct{}

func (refuseLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schemas may not refer to other documents (%s)", url)
}

// location is the URL the document is compiled under; it never leaves the process.
const location = "herald:///source-schema.json"

// Compile parses and compiles a schema document. Its errors say what is wrong, for a 422.
func Compile(doc []byte) (*Schema, error) {
	if len(doc) > MaxBytes {
		return nil, fmt.Errorf("schema is %d bytes; the limit is %d", len(doc), MaxBytes)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("schema is not JSON: %w", err)
	}
	switch v.(type) {
	case map[string]any, bool:
	default:
		return nil, errors.New("schema must be a JSON object (or true/false)")
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(refuseLoader{})
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(location, v); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	s, err := c.Compile(location)
	if err != nil {
		return nil, fmt.Errorf("schema does not compile: %s", strings.ReplaceAll(err.Error(), location, "schema"))
	}
	return &Schema{s: s}, nil
}

// Violation is a payload that does not satisfy the schema. Problems name the place in the
// payload (a JSON pointer, "" for the whole document) and what is wrong there.
type Violation struct {
	Problems []string
}

func (v *Violation) Error() string {
	return "payload does not match the source's schema: " + strings.Join(v.Problems, "; ")
}

// Validate checks a payload. It returns a *Violation when the payload is JSON that does not
// match, and another error when the payload is not JSON at all.
func (s *Schema) Validate(payload []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return &Violation{Problems: []string{"payload is not JSON"}}
	}
	err = s.s.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("validate payload: %w", err)
	}
	var problems []string
	var walk func(u *jsonschema.OutputUnit)
	walk = func(u *jsonschema.OutputUnit) {
		if u.Error != nil && len(u.Errors) == 0 {
			loc := u.InstanceLocation
			if loc == "" {
				loc = "/"
			}
			problems = append(problems, loc+": "+u.Error.String())
		}
		for i := range u.Errors {
			walk(&u.Errors[i])
		}
	}
	walk(ve.BasicOutput())
	sort.Strings(problems)
	problems = compact(problems)
	if len(problems) == 0 {
		problems = []string{"/: " + ve.Error()}
	}
	if len(problems) > maxProblems {
		problems = append(problems[:maxProblems], fmt.Sprintf("and %d more", len(problems)-maxProblems))
	}
	return &Violation{Problems: problems}
}

func compact(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
