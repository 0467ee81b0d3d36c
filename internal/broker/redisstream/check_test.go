package redisstream

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/destination"
)

func TestCheckNormalises(t *testing.T) {
	typ := New(destination.Env{})
	t.Cleanup(func() { _ = typ.Close() })
	norm, errs := typ.Check(json.RawMessage(`{"address":"redis.internal:6379","stream":"orders"}`))
	if errs != nil {
		t.Fatal(errs)
	}
	var got map[string]any
	if err := json.Unmarshal(norm, &got); err != nil {
		t.Fatal(err)
	}
	if got["db"] != float64(0) || got["tls"] != false || got["address"] != "redis.internal:6379" || got["stream"] != "orders" {
		t.Fatalf("normalised settings %s", norm)
	}
	if _, has := got["maxlen"]; has {
		t.Errorf("maxlen filled in: %s", norm)
	}
	// Normalised settings check again to themselves.
	again, errs := typ.Check(norm)
	if errs != nil || string(again) != string(norm) {
		t.Fatalf("Check(normalised) = %s, %v", again, errs)
	}
	full := `{"address":"[::1]:6380","db":3,"username":"herald","password":"s3cret","tls":true,"stream":"events:out","maxlen":1000}`
	norm, errs = typ.Check(json.RawMessage(full))
	if errs != nil {
		t.Fatal(errs)
	}
	if string(norm) != full {
		t.Fatalf("Check(%s) = %s", full, norm)
	}
	if s := typ.Secrets(); len(s) != 1 || s[0] != "password" {
		t.Fatalf("Secrets() = %v", s)
	}
	if typ.Name() != "redis" {
		t.Fatalf("Name() = %q", typ.Name())
	}
}

func TestCheckFieldErrors(t *testing.T) {
	typ := New(destination.Env{})
	t.Cleanup(func() { _ = typ.Close() })
	long := strings.Repeat("s", 513)
	cases := []struct {
		name, settings, field, contains string
	}{
		{"empty", ``, "", "required"},
		{"not an object", `[1]`, "", "object"},
		{"two objects", `{"address":"h:1","stream":"s"} {}`, "", "single"},
		{"unknown field", `{"address":"h:1","stream":"s","url":"redis://h"}`, "url", "unknown setting"},
		{"address missing", `{"stream":"s"}`, "address", "required"},
		{"address wrong type", `{"address":6379,"stream":"s"}`, "address", "string"},
		{"address no port", `{"address":"redis.internal","stream":"s"}`, "address", "host:port"},
		{"address bad port", `{"address":"redis.internal:99999","stream":"s"}`, "address", "port"},
		{"address no host", `{"address":":6379","stream":"s"}`, "address", "no host"},
		{"address URL", `{"address":"redis://redis.internal:6379/0","stream":"s"}`, "address", "not a URL"},
		{"password in URL", `{"address":"redis://user:hunter2@redis.internal:6379","stream":"s"}`, "address", "password setting"},
		{"password in address", `{"address":"hunter2@redis.internal:6379","stream":"s"}`, "address", "password setting"},
		{"db negative", `{"address":"h:1","stream":"s","db":-1}`, "db", "0 or more"},
		{"db not an integer", `{"address":"h:1","stream":"s","db":1.5}`, "db", "whole number"},
		{"username with space", `{"address":"h:1","stream":"s","username":"a b"}`, "username", "without spaces"},
		{"password control", `{"address":"h:1","stream":"s","password":"a\u0000b"}`, "password", "control"},
		{"tls not bool", `{"address":"h:1","stream":"s","tls":"yes"}`, "tls", "true or false"},
		{"stream missing", `{"address":"h:1"}`, "stream", "required"},
		{"stream too long", `{"address":"h:1","stream":"` + long + `"}`, "stream", "at most 512 bytes"},
		{"stream control", `{"address":"h:1","stream":"a\nb"}`, "stream", "control"},
		{"maxlen zero", `{"address":"h:1","stream":"s","maxlen":0}`, "maxlen", "greater than 0"},
		{"maxlen negative", `{"address":"h:1","stream":"s","maxlen":-5}`, "maxlen", "greater than 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			norm, errs := typ.Check(json.RawMessage(c.settings))
			if norm != nil {
				t.Fatalf("accepted: %s", norm)
			}
			var found *destination.FieldError
			for _, e := range errs {
				if e.Field == c.field {
					found = e
				}
			}
			if found == nil {
				t.Fatalf("no error at %q: %v", c.field, errs)
			}
			if !strings.Contains(found.Message, c.contains) {
				t.Fatalf("error at %q = %q, want it to say %q", c.field, found.Message, c.contains)
			}
			for _, e := range errs {
				if strings.Contains(e.Message, "hunter2") || strings.Contains(strings.ToLower(jsonString(e.Value)), "hunter2") {
					t.Fatalf("a password is echoed: %+v", e)
				}
			}
		})
	}

	// Every wrong field is reported at once.
	_, errs := typ.Check(json.RawMessage(`{"address":"x","db":-1,"stream":"","maxlen":0}`))
	fields := map[string]bool{}
	for _, e := range errs {
		fields[e.Field] = true
	}
	for _, f := range []string{"address", "db", "stream", "maxlen"} {
		if !fields[f] {
			t.Errorf("no error at %s: %v", f, errs)
		}
	}

	// Open refuses settings Check would refuse.
	if _, err := typ.Open(destination.Target{Settings: json.RawMessage(`{"stream":"s"}`)}); err == nil {
		t.Fatal("Open accepted settings without an address")
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
