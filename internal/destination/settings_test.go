package destination

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"
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

func TestFieldErrorsDuration(t *testing.T) {
	for _, c := range []struct {
		raw, normal, want string
		d                 time.Duration
	}{
		{"", "30s", "", 30 * time.Second},
		{"2m", "2m0s", "", 2 * time.Minute},
		{"soon", "soon", `must be a duration such as "30s"`, 30 * time.Second},
		{"10ms", "10ms", "must be from 1s to 1h0m0s (how long it waits)", 30 * time.Second},
		{"2h", "2h", "must be from 1s to 1h0m0s", 30 * time.Second},
	} {
		var errs FieldErrors
		raw := c.raw
		d := errs.Duration("wait", &raw, 30*time.Second, time.Second, time.Hour, "how long it waits")
		if d != c.d || raw != c.normal {
			t.Errorf("%q: %v and %q, want %v and %q", c.raw, d, raw, c.d, c.normal)
		}
		switch {
		case c.want == "" && len(errs) > 0:
			t.Errorf("%q: error %v", c.raw, errs[0])
		case c.want != "" && (len(errs) != 1 || errs[0].Field != "wait" || !strings.Contains(errs[0].Message, c.want) || errs[0].Value != c.raw):
			t.Errorf("%q: errors %v, want one at wait saying %q", c.raw, errs, c.want)
		}
	}
}

func TestEncodeSettings(t *testing.T) {
	out, errs := EncodeSettings(testSettings{Wait: "1s"}, nil)
	if errs != nil || !strings.Contains(string(out), `"wait":"1s"`) {
		t.Fatalf("EncodeSettings = %s, %v", out, errs)
	}
	var fe FieldErrors
	fe.Add("url", "is required", nil)
	if out, errs := EncodeSettings(testSettings{}, fe); out != nil || len(errs) != 1 || errs[0].Field != "url" {
		t.Fatalf("with errors: %s, %v; want the errors only", out, errs)
	}
	if _, errs := EncodeSettings(func() {}, nil); len(errs) != 1 || !strings.Contains(errs[0].Message, "cannot be encoded") {
		t.Fatalf("unencodable: %v", errs)
	}
}
