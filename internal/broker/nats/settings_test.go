package natsdest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/heraldhq/herald/internal/destination"
)

func TestCheckNormalises(t *testing.T) {
	typ := New(destination.Env{})
	t.Cleanup(func() { _ = typ.Close() })
	out, errs := typ.Check([]byte(`{"url":" nats://127.0.0.1 , nats://[::1]:4223 ,nats://nats.example.com:4224/","subject":"orders.created","stream":"ORDERS","username":"u","password":"p"}`))
	if errs != nil {
		t.Fatalf("Check: %v", errs[0])
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"url":     "nats://127.0.0.1:4222,nats://[::1]:4223,nats://nats.example.com:4224",
		"subject": "orders.created", "stream": "ORDERS", "username": "u", "password": "p", "tls": false,
	}
	if len(got) != len(want) {
		t.Errorf("normalised = %s, want the fields %v", out, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("normalised %s = %v, want %v", k, got[k], v)
		}
	}
	// Normalised settings check again to themselves.
	again, errs := typ.Check(out)
	if errs != nil || string(again) != string(out) {
		t.Errorf("Check(Check(x)) = %s, %v; want %s", again, errs, out)
	}
	if s := typ.Secrets(); len(s) != 2 || s[0] != "password" || s[1] != "token" {
		t.Errorf("Secrets = %v", s)
	}
	if typ.Name() != "nats" {
		t.Errorf("Name = %q", typ.Name())
	}
}

func TestCheckRefuses(t *testing.T) {
	typ := New(destination.Env{})
	t.Cleanup(func() { _ = typ.Close() })
	for _, tc := range []struct {
		name, settings, field, msg string
	}{
		{"not an object", `["nats://x"]`, "", "JSON object"},
		{"empty", ``, "", "JSON object"},
		{"trailing data", `{"url":"nats://h","subject":"a"} {}`, "", "after the settings"},
		{"unknown field", `{"url":"nats://h","subject":"a","subjects":["b"]}`, "subjects", "unknown setting"},
		{"url wrong type", `{"url":4222,"subject":"a"}`, "url", "must be a string"},
		{"tls wrong type", `{"url":"nats://h","subject":"a","tls":"yes"}`, "tls", "true or false"},

		{"url missing", `{"subject":"a"}`, "url", "is required"},
		{"url scheme", `{"url":"http://h:4222","subject":"a"}`, "url", `scheme "http"`},
		{"url tls scheme", `{"url":"tls://h:4222","subject":"a"}`, "url", "set tls to true"},
		{"url not a URL", `{"url":"h:4222","subject":"a"}`, "url", "nats://host:port"},
		{"url password", `{"url":"nats://u:hunter2@h:4222","subject":"a"}`, "url", "put the password in the password setting"},
		{"url token", `{"url":"nats://s3cr3t@h:4222","subject":"a"}`, "url", "token setting"},
		{"url path", `{"url":"nats://h:4222/x","subject":"a"}`, "url", "without a path"},
		{"url query", `{"url":"nats://h:4222?x=1","subject":"a"}`, "url", "without a path, query"},
		{"url no host", `{"url":"nats://:4222","subject":"a"}`, "url", "no host"},
		{"url bad port", `{"url":"nats://h:99999","subject":"a"}`, "url", "1 to 65535"},
		{"url empty port", `{"url":"nats://h:","subject":"a"}`, "url", "empty port"},
		{"url second server bad", `{"url":"nats://h:4222,http://g","subject":"a"}`, "url", "server 2:"},
		{"url empty server", `{"url":"nats://h:4222,,nats://g","subject":"a"}`, "url", "extra comma"},
		{"url too many", `{"url":"` + strings.Repeat("nats://h,", 16) + `nats://h","subject":"a"}`, "url", "at most 16"},

		{"subject missing", `{"url":"nats://h"}`, "subject", "is required"},
		{"subject wildcard *", `{"url":"nats://h","subject":"orders.*"}`, "subject", "wildcards"},
		{"subject wildcard >", `{"url":"nats://h","subject":"orders.>"}`, "subject", "wildcards"},
		{"subject space", `{"url":"nats://h","subject":"orders created"}`, "subject", "spaces"},
		{"subject empty token", `{"url":"nats://h","subject":"orders..created"}`, "subject", "empty token"},
		{"subject leading dot", `{"url":"nats://h","subject":".orders"}`, "subject", "empty token"},
		{"subject trailing dot", `{"url":"nats://h","subject":"orders."}`, "subject", "empty token"},
		{"subject reserved", `{"url":"nats://h","subject":"$JS.API.STREAM.DELETE.X"}`, "subject", "reserved"},
		{"subject too long", `{"url":"nats://h","subject":"` + strings.Repeat("a", 1025) + `"}`, "subject", "longer than"},

		{"stream with dot", `{"url":"nats://h","subject":"a","stream":"OR.DERS"}`, "stream", "must not contain"},
		{"stream with space", `{"url":"nats://h","subject":"a","stream":"OR DERS"}`, "stream", "spaces"},
		{"stream with slash", `{"url":"nats://h","subject":"a","stream":"a/b"}`, "stream", "must not contain"},

		{"token and password", `{"url":"nats://h","subject":"a","token":"t","username":"u","password":"p"}`, "token", "not both"},
		{"token and username", `{"url":"nats://h","subject":"a","token":"t","username":"u"}`, "token", "not both"},
		{"password without username", `{"url":"nats://h","subject":"a","password":"p"}`, "username", "required with a password"},
		{"username without password", `{"url":"nats://h","subject":"a","username":"u"}`, "password", "required with a username"},
		{"password with a newline", `{"url":"nats://h","subject":"a","username":"u","password":"p\nq"}`, "password", "control characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errs := typ.Check([]byte(tc.settings))
			if len(errs) == 0 {
				t.Fatalf("Check accepted %s as %s", tc.settings, out)
			}
			e := errs[0]
			if e.Field != tc.field || !strings.Contains(e.Message, tc.msg) {
				t.Errorf("error = %q at %q, want %q at %q", e.Message, e.Field, tc.msg, tc.field)
			}
			for _, e := range errs {
				for _, secret := range []string{"hunter2", "s3cr3t"} {
					if strings.Contains(e.Message, secret) || strings.Contains(strings.ToLower(toString(e.Value)), secret) {
						t.Errorf("a secret leaked into the error: %+v", e)
					}
				}
			}
		})
	}
}

func TestCheckReportsEveryBadField(t *testing.T) {
	typ := New(destination.Env{})
	t.Cleanup(func() { _ = typ.Close() })
	_, errs := typ.Check([]byte(`{"url":"http://h","subject":"a.*","stream":"a.b","password":"p"}`))
	fields := map[string]bool{}
	for _, e := range errs {
		fields[e.Field] = true
	}
	for _, f := range []string{"url", "subject", "stream", "username"} {
		if !fields[f] {
			t.Errorf("no error for %s among %v", f, errs)
		}
	}
}

func TestOpenRefusesUncheckedSettings(t *testing.T) {
	typ := New(destination.Env{Dial: brokertest.NewDialer().Dial})
	t.Cleanup(func() { _ = typ.Close() })
	if _, err := typ.Open(destination.Target{Settings: []byte(`{"url":"nats://h","subject":"a.>"}`)}); err == nil {
		t.Fatal("Open accepted a wildcard subject")
	}
	if _, err := New(destination.Env{}).Open(destination.Target{Settings: []byte(`{"url":"nats://h","subject":"a"}`)}); err == nil {
		t.Fatal("Open without a dialer succeeded")
	}
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}
