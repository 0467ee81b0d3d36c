package kafka

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCheckNormalises(t *testing.T) {
	typ := New(envNone())
	out, errs := typ.Check(json.RawMessage(`{"brokers":["kafka-1.example.com:9092","[::1]:9093"],"topic":"orders.v1","sasl":"SCRAM-SHA-256","username":"u","password":"p","compression":"ZSTD"}`))
	if errs != nil {
		t.Fatalf("Check: %v", errs)
	}
	var s Settings
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatal(err)
	}
	if s.Key != "id" || s.SASL != "scram-sha-256" || s.Compression != "zstd" || s.TLS {
		t.Fatalf("normalised %+v", s)
	}
	out, errs = typ.Check(json.RawMessage(`{"brokers":["b:9092"],"topic":"t"}`))
	if errs != nil {
		t.Fatalf("Check: %v", errs)
	}
	if string(out) != `{"brokers":["b:9092"],"sasl":"none","tls":false,"topic":"t","key":"id","compression":"none"}` {
		t.Fatalf("defaults: %s", out)
	}
	if got := typ.Secrets(); len(got) != 1 || got[0] != "password" {
		t.Fatalf("Secrets() = %v", got)
	}
	if typ.Name() != "kafka" {
		t.Fatalf("Name() = %q", typ.Name())
	}
}

func TestCheckErrors(t *testing.T) {
	typ := New(envNone())
	cases := []struct {
		name, settings, field, msg string
	}{
		{"empty", ``, "", "required"},
		{"not an object", `[1]`, "", "JSON object"},
		{"trailing data", `{"brokers":["b:9092"],"topic":"t"} {}`, "", "single JSON object"},
		{"unknown field", `{"brokers":["b:9092"],"topic":"t","acks":"1"}`, "acks", "unknown setting"},
		{"brokers missing", `{"topic":"t"}`, "brokers", "required"},
		{"brokers wrong type", `{"brokers":"b:9092","topic":"t"}`, "brokers", "list of host:port"},
		{"broker wrong type", `{"brokers":[9092],"topic":"t"}`, "brokers", "list of host:port strings, not a JSON number"},
		{"too many brokers", `{"brokers":["a:1","a:2","a:3","a:4","a:5","a:6","a:7","a:8","a:9","a:10","a:11","a:12","a:13","a:14","a:15","a:16","a:17"],"topic":"t"}`, "brokers", "at most 16"},
		{"broker empty", `{"brokers":[""],"topic":"t"}`, "brokers[0]", "empty"},
		{"broker no port", `{"brokers":["kafka-1"],"topic":"t"}`, "brokers[0]", "host:port"},
		{"broker bad port", `{"brokers":["kafka-1:99999"],"topic":"t"}`, "brokers[0]", "port"},
		{"broker scheme", `{"brokers":["kafka://kafka-1:9092"],"topic":"t"}`, "brokers[0]", "without a scheme"},
		{"broker password", `{"brokers":["b:9092","user:hunter2@kafka-1:9092"],"topic":"t"}`, "brokers[1]", "put the password in the password setting"},
		{"broker user", `{"brokers":["user@kafka-1:9092"],"topic":"t"}`, "brokers[0]", "username setting"},
		{"broker bad host", `{"brokers":["bad host!:9092"],"topic":"t"}`, "brokers[0]", "host:port"},
		{"broker duplicate", `{"brokers":["b:9092","B:9092"],"topic":"t"}`, "brokers[1]", "repeats brokers[0]"},
		{"topic missing", `{"brokers":["b:9092"]}`, "topic", "required"},
		{"topic bad char", `{"brokers":["b:9092"],"topic":"orders/v1"}`, "topic", "letters, digits"},
		{"topic dot", `{"brokers":["b:9092"],"topic":".."}`, "topic", "cannot be"},
		{"topic long", `{"brokers":["b:9092"],"topic":"` + strings.Repeat("a", 250) + `"}`, "topic", "at most 249"},
		{"key unknown", `{"brokers":["b:9092"],"topic":"t","key":"subject"}`, "key", "data.<field>"},
		{"key empty path", `{"brokers":["b:9092"],"topic":"t","key":"data..id"}`, "key", "empty part"},
		{"key data alone", `{"brokers":["b:9092"],"topic":"t","key":"data."}`, "key", "empty part"},
		{"sasl unknown", `{"brokers":["b:9092"],"topic":"t","sasl":"gssapi"}`, "sasl", "plain, scram-sha-256"},
		{"sasl no username", `{"brokers":["b:9092"],"topic":"t","sasl":"plain","password":"p"}`, "username", "required with sasl plain"},
		{"sasl no password", `{"brokers":["b:9092"],"topic":"t","sasl":"plain","username":"u"}`, "password", "required with sasl plain"},
		{"username without sasl", `{"brokers":["b:9092"],"topic":"t","username":"u"}`, "username", "only used with SASL"},
		{"password without sasl", `{"brokers":["b:9092"],"topic":"t","password":"p"}`, "password", "only used with SASL"},
		{"tls wrong type", `{"brokers":["b:9092"],"topic":"t","tls":"yes"}`, "tls", "true or false"},
		{"compression unknown", `{"brokers":["b:9092"],"topic":"t","compression":"brotli"}`, "compression", "none, gzip, snappy, lz4, zstd"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, errs := typ.Check(json.RawMessage(tc.settings))
			if out != nil {
				t.Fatalf("Check accepted it: %s", out)
			}
			for _, e := range errs {
				if e.Field == tc.field && strings.Contains(e.Message, tc.msg) {
					if strings.Contains(e.Message, "hunter2") || e.Value != nil && strings.Contains(e.Value.(string), "hunter2") {
						t.Fatalf("the password is echoed: %+v", e)
					}
					if e.Field == "password" && e.Value != nil {
						t.Fatalf("the password setting is echoed: %+v", e)
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

func TestCheckReportsEveryField(t *testing.T) {
	_, errs := New(envNone()).Check(json.RawMessage(`{"brokers":["x"],"topic":"a b","key":"k","compression":"c"}`))
	fields := map[string]bool{}
	for _, e := range errs {
		fields[e.Field] = true
	}
	for _, f := range []string{"brokers[0]", "topic", "key", "compression"} {
		if !fields[f] {
			t.Errorf("no error at %s: %v", f, errs)
		}
	}
}
