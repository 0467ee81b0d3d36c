package kafka

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/source"
)

func TestSourceCheckNormalises(t *testing.T) {
	typ := NewSource(source.Env{})
	out, errs := typ.Check(json.RawMessage(`{"brokers":["b:9092"],"topics":["orders","refunds"]}`))
	if errs != nil {
		t.Fatalf("Check: %v", errs)
	}
	if string(out) != `{"brokers":["b:9092"],"sasl":"none","tls":false,"topics":["orders","refunds"],"start":"new"}` {
		t.Fatalf("defaults: %s", out)
	}
	out, errs = typ.Check(json.RawMessage(`{"brokers":["b:9092"],"topics":["o"],"start":"ALL","sasl":"PLAIN","username":"u","password":"p","tls":true}`))
	if errs != nil {
		t.Fatalf("Check: %v", errs)
	}
	var s SourceSettings
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatal(err)
	}
	if s.Start != "all" || s.SASL != "plain" || !s.TLS || s.Password != "p" {
		t.Fatalf("normalised %+v", s)
	}
	if typ.Name() != "kafka" || len(typ.Secrets()) != 1 || typ.Secrets()[0] != "password" {
		t.Fatalf("Name %q Secrets %v", typ.Name(), typ.Secrets())
	}
}

func TestSourceCheckErrors(t *testing.T) {
	typ := NewSource(source.Env{})
	cases := []struct {
		name, settings, field, msg string
	}{
		{"empty", ``, "", "brokers and topics"},
		{"not an object", `"x"`, "", "JSON object"},
		{"unknown field", `{"brokers":["b:9092"],"topics":["t"],"topic":"t"}`, "topic", "known: brokers, sasl, username, password, tls, topics, start"},
		{"brokers missing", `{"topics":["t"]}`, "brokers", "required"},
		{"brokers wrong type", `{"brokers":"b:9092","topics":["t"]}`, "brokers", "list of host:port"},
		{"broker password", `{"brokers":["u:hunter2@b:9092"],"topics":["t"]}`, "brokers[0]", "put the password in the password setting"},
		{"broker no port", `{"brokers":["b"],"topics":["t"]}`, "brokers[0]", "host:port"},
		{"topics missing", `{"brokers":["b:9092"]}`, "topics", "required"},
		{"topics wrong type", `{"brokers":["b:9092"],"topics":"t"}`, "topics", "a list of topic names"},
		{"topic bad char", `{"brokers":["b:9092"],"topics":["ok","a/b"]}`, "topics[1]", "letters, digits"},
		{"topic empty", `{"brokers":["b:9092"],"topics":[""]}`, "topics[0]", "required"},
		{"topic duplicate", `{"brokers":["b:9092"],"topics":["a","a"]}`, "topics[1]", "repeats topics[0]"},
		{"too many topics", `{"brokers":["b:9092"],"topics":[` + strings.TrimSuffix(strings.Repeat(`"t",`, 65), ",") + `]}`, "topics", "at most 64"},
		{"start unknown", `{"brokers":["b:9092"],"topics":["t"],"start":"earliest"}`, "start", `"new"`},
		{"sasl unknown", `{"brokers":["b:9092"],"topics":["t"],"sasl":"gssapi"}`, "sasl", "plain, scram-sha-256"},
		{"sasl no password", `{"brokers":["b:9092"],"topics":["t"],"sasl":"plain","username":"u"}`, "password", "required with sasl plain"},
		{"password without sasl", `{"brokers":["b:9092"],"topics":["t"],"password":"hunter2"}`, "password", "only used with SASL"},
		{"tls wrong type", `{"brokers":["b:9092"],"topics":["t"],"tls":1}`, "tls", "true or false"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, errs := typ.Check(json.RawMessage(tc.settings))
			if out != nil {
				t.Fatalf("Check accepted it: %s", out)
			}
			for _, e := range errs {
				if e.Field == tc.field && strings.Contains(e.Message, tc.msg) {
					if v, _ := e.Value.(string); strings.Contains(e.Message, "hunter2") || strings.Contains(v, "hunter2") {
						t.Fatalf("the password is echoed: %+v", e)
					}
					return
				}
			}
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			t.Fatalf("want an error at %q containing %q, got %q", tc.field, tc.msg, got)
		})
	}
}
