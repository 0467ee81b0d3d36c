package destination

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
)

type testConn struct {
	URL  string `json:"url"`
	TLS  bool   `json:"tls"`
	Port *int   `json:"port,omitempty"`
}

type testSettings struct {
	testConn
	Wait  string `json:"wait"`
	Count int    `json:"count"`
}

func TestDecodeSettings(t *testing.T) {
	d := Decoding{Required: "url", Known: "url, tls, port, wait, count", Hint: map[string]string{"wait": "a duration in a string"}}
	var ok testSettings
	if fe := DecodeSettings(json.RawMessage(` {"url":"x","tls":true,"count":3} `), &ok, d); fe != nil {
		t.Fatalf("good settings: %v", fe)
	}
	if ok.URL != "x" || !ok.TLS || ok.Count != 3 {
		t.Fatalf("decoded %+v", ok)
	}
	for _, c := range []struct{ name, raw, field, want string }{
		{"empty", ``, "", "required: a JSON object with at least url"},
		{"array", `[1]`, "", "JSON object"},
		{"string", `"x"`, "", "JSON object"},
		{"unknown", `{"url":"x","subject":"y"}`, "subject", "unknown setting (known: url, tls, port, wait, count)"},
		{"embedded field type", `{"url":5}`, "url", "must be a string, not a JSON number"},
		{"bool", `{"tls":"yes"}`, "tls", "must be true or false"},
		{"pointer int", `{"port":"x"}`, "port", "must be a whole number"},
		{"int", `{"count":1.5}`, "count", "must be a whole number"},
		{"hint", `{"wait":5}`, "wait", "must be a duration in a string"},
		{"trailing", `{"url":"x"} {}`, "", "a single JSON object"},
		{"broken", `{"url":`, "", "not a valid JSON object"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var s testSettings
			fe := DecodeSettings(json.RawMessage(c.raw), &s, d)
			if fe == nil {
				t.Fatal("no error")
			}
			if fe.Field != c.field || !strings.Contains(fe.Message, c.want) {
				t.Fatalf("error %q at %q, want %q at %q", fe.Message, fe.Field, c.want, c.field)
			}
		})
	}
}

func TestDialerFor(t *testing.T) {
	var used string
	mk := func(name string) Dialer {
		return func(context.Context, string, string) (net.Conn, error) { used = name; return nil, nil }
	}
	env := Env{Dial: mk("ordinary"), InternalDial: mk("internal")}
	_, _ = env.DialerFor(false)(context.Background(), "tcp", "x:1")
	if used != "ordinary" {
		t.Fatalf("DialerFor(false) used %q", used)
	}
	_, _ = env.DialerFor(true)(context.Background(), "tcp", "x:1")
	if used != "internal" {
		t.Fatalf("DialerFor(true) used %q", used)
	}
	if (Env{}).DialerFor(true) != nil {
		t.Fatal("no dialer given: want nil")
	}
}
