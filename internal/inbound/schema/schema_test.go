package schema

import (
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	s, err := Compile([]byte(`{"type":"object","required":["id","amount"],"properties":{"id":{"type":"string"},"amount":{"type":"integer","minimum":0}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate([]byte(`{"id":"x","amount":3}`)); err != nil {
		t.Fatalf("valid payload rejected: %v", err)
	}
	for _, tc := range []struct{ payload, want string }{
		{`{"id":"x"}`, "missing property 'amount'"},
		{`{"id":"x","amount":-1}`, "/amount"},
		{`{"id":1,"amount":1}`, "/id"},
		{`not json`, "not JSON"},
		{`[]`, "/"},
	} {
		err := s.Validate([]byte(tc.payload))
		var v *Violation
		if !errors.As(err, &v) {
			t.Fatalf("%s: got %v, want a violation", tc.payload, err)
		}
		if !strings.Contains(v.Error(), tc.want) {
			t.Errorf("%s: %q does not mention %q", tc.payload, v.Error(), tc.want)
		}
	}
}

func TestCompileRejects(t *testing.T) {
	for _, doc := range []string{
		`not json`,
		`"a string"`,
		`{"type":"no-such-type"}`,
		`{"$ref":"https://example.com/schema.json"}`,
		`{"$ref":"file:///etc/passwd"}`,
		`{"pattern":"("}`,
	} {
		if _, err := Compile([]byte(doc)); err == nil {
			t.Errorf("%s compiled", doc)
		}
	}
	if _, err := Compile([]byte(`{"$defs":{"a":{"type":"string"}},"properties":{"x":{"$ref":"#/$defs/a"}}}`)); err != nil {
		t.Errorf("local $ref refused: %v", err)
	}
	if _, err := Compile(make([]byte, MaxBytes+1)); err == nil {
		t.Error("oversized schema compiled")
	}
}
