package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/api"
	natsbroker "github.com/heraldhq/herald/internal/broker/nats"
	"github.com/heraldhq/herald/internal/broker/redisstream"
	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/destination/desttest"
	webhookdest "github.com/heraldhq/herald/internal/destination/webhook"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/source"
)

func destAPI(t *testing.T) *testAPI {
	t.Helper()
	check := httpsend.New(httpsend.Config{})
	reg, err := destination.NewRegistry(webhookdest.New(check, nil), desttest.New())
	if err != nil {
		t.Fatal(err)
	}
	return newTestAPI(t, api.Config{URLCheck: check, Destinations: reg})
}

type endpointAnswer struct {
	ID              string         `json:"id"`
	URL             string         `json:"url"`
	Type            string         `json:"type"`
	Config          map[string]any `json:"config"`
	ConfigSecrets   []string       `json:"config_secrets"`
	SignatureFormat string         `json:"signature_format"`
}

func decodeEndpoint(t *testing.T, ans answer) endpointAnswer {
	t.Helper()
	var e endpointAnswer
	if err := json.Unmarshal(ans.body, &e); err != nil {
		t.Fatalf("answer %s: %v", ans.body, err)
	}
	return e
}

// An endpoint's type and config: checked field by field against the registry's types, the url
// only for webhooks, credentials never in an answer and kept by an update that omits them.
func TestAPI_EndpointTypeAndConfig(t *testing.T) {
	t.Parallel()
	a := destAPI(t)
	key := a.tenantKey("acme")
	const password = "pw-3b9f0c1e77aa"
	create := func(body map[string]any) answer {
		t.Helper()
		body["event_types"] = []string{"*"}
		return a.do(key, "POST", "/v1/tenants/acme/endpoints", body)
	}
	wantProblem := func(ans answer, loc, contains string) {
		t.Helper()
		if ans.status != http.StatusUnprocessableEntity {
			t.Fatalf("status %d, want 422 at %s: %s", ans.status, loc, ans.body)
		}
		msg, ok := ans.problem(t).find(loc)
		if !ok || !strings.Contains(msg, contains) {
			t.Fatalf("problem at %s = %q (found %v), want one containing %q: %s", loc, msg, ok, contains, ans.body)
		}
		if bytes.Contains(ans.body, []byte(password)) {
			t.Fatalf("a problem shows the password: %s", ans.body)
		}
	}

	// A webhook is the default, and answers say so.
	hook := decodeEndpoint(t, create(map[string]any{"url": "https://hooks.example.com/a"}))
	if hook.Type != "webhook" || hook.Config != nil || hook.URL != "https://hooks.example.com/a" {
		t.Fatalf("webhook endpoint answered %+v", hook)
	}

	wantProblem(create(map[string]any{"type": "carrier-pigeon", "config": map[string]any{}}), "body.type", "memory")
	wantProblem(create(map[string]any{"type": "memory", "url": "https://hooks.example.com/a", "config": map[string]any{"queue": "q"}}), "body.url", "only for webhook")
	wantProblem(create(map[string]any{"type": "memory", "config": map[string]any{"priority": 5}}), "body.config.queue", "required")
	wantProblem(create(map[string]any{"type": "memory", "config": map[string]any{"queue": "q", "priority": 12}}), "body.config.priority", "between 1 and 9")
	wantProblem(create(map[string]any{"type": "memory", "config": map[string]any{"queue": "q", "colour": "red"}}), "body.config.colour", "unknown")
	wantProblem(create(map[string]any{"type": "memory"}), "body.config.queue", "required")
	wantProblem(create(map[string]any{"type": "memory", "config": map[string]any{"queue": "q"}, "signature_format": "github"}), "body.signature_format", "standard-webhooks")
	wantProblem(create(map[string]any{"url": "https://hooks.example.com/a", "config": map[string]any{"queue": "q"}}), "body.config.queue", "unknown setting")
	wantProblem(create(map[string]any{"type": "webhook"}), "body.url", "required")

	ans := create(map[string]any{"type": "memory", "config": map[string]any{"queue": "orders", "password": password}})
	if ans.status != http.StatusCreated {
		t.Fatalf("create: %d %s", ans.status, ans.body)
	}
	if bytes.Contains(ans.body, []byte(password)) {
		t.Fatalf("the create answer shows the password: %s", ans.body)
	}
	ep := decodeEndpoint(t, ans)
	if ep.Type != "memory" || ep.URL != "" || ep.Config["queue"] != "orders" || ep.Config["priority"] != float64(5) ||
		!slices.Equal(ep.ConfigSecrets, []string{"password"}) || ep.SignatureFormat != "standard-webhooks" {
		t.Fatalf("created %+v, want the checked config (priority defaulted) without the password, which is listed as set", ep)
	}
	path := "/v1/tenants/acme/endpoints/" + ep.ID
	for _, p := range []string{path, "/v1/tenants/acme/endpoints"} {
		got := a.do(key, "GET", p, nil)
		if got.status != http.StatusOK || bytes.Contains(got.body, []byte(password)) || !bytes.Contains(got.body, []byte(`"config_secrets":["password"]`)) {
			t.Fatalf("GET %s: %d %s", p, got.status, got.body)
		}
	}
	stored := func() json.RawMessage {
		t.Helper()
		e, err := a.sqlite.GetEndpoint(context.Background(), "acme", ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		if e.Type != "memory" {
			t.Fatalf("stored type %q", e.Type)
		}
		return e.Settings
	}
	if s := stored(); !bytes.Contains(s, []byte(password)) {
		t.Fatalf("the store does not hand out the password: %s", s)
	}

	// An update whose config omits the password keeps it.
	ans = a.do(key, "PATCH", path, map[string]any{"config": map[string]any{"queue": "orders-2", "priority": 7}})
	if ans.status != http.StatusOK {
		t.Fatalf("update: %d %s", ans.status, ans.body)
	}
	if ep = decodeEndpoint(t, ans); ep.Config["queue"] != "orders-2" || !slices.Equal(ep.ConfigSecrets, []string{"password"}) {
		t.Fatalf("updated %+v", ep)
	}
	if s := stored(); !bytes.Contains(s, []byte(password)) || !bytes.Contains(s, []byte(`"orders-2"`)) {
		t.Fatalf("after an update without the password, the store has %s", s)
	}
	// A bad config changes nothing; url and other signature formats stay refused.
	wantProblem(a.do(key, "PATCH", path, map[string]any{"config": map[string]any{"queue": "has space"}}), "body.config.queue", "spaces")
	wantProblem(a.do(key, "PATCH", path, map[string]any{"url": "https://hooks.example.com/b"}), "body.url", "only for webhook")
	wantProblem(a.do(key, "PATCH", path, map[string]any{"signature_format": "stripe"}), "body.signature_format", "standard-webhooks")
	// Other fields change without touching the config.
	ans = a.do(key, "PATCH", path, map[string]any{"description": "orders queue"})
	if ans.status != http.StatusOK || !slices.Equal(decodeEndpoint(t, ans).ConfigSecrets, []string{"password"}) {
		t.Fatalf("update of the description: %d %s", ans.status, ans.body)
	}
	// null removes the password.
	ans = a.do(key, "PATCH", path, map[string]any{"config": map[string]any{"queue": "orders-2", "password": nil}})
	if ans.status != http.StatusOK || decodeEndpoint(t, ans).ConfigSecrets != nil {
		t.Fatalf("removing the password: %d %s", ans.status, ans.body)
	}
	if s := stored(); bytes.Contains(s, []byte(password)) {
		t.Fatalf("the password is still stored: %s", s)
	}
	// Back to a webhook: a url is needed, and the config goes.
	wantProblem(a.do(key, "PATCH", path, map[string]any{"type": "webhook"}), "body.url", "required")
	ans = a.do(key, "PATCH", path, map[string]any{"type": "webhook", "url": "https://hooks.example.com/c"})
	if e := decodeEndpoint(t, ans); ans.status != http.StatusOK || e.Type != "webhook" || e.Config != nil || e.URL != "https://hooks.example.com/c" {
		t.Fatalf("to a webhook: %d %s", ans.status, ans.body)
	}
	// And a webhook to the memory type: its url goes.
	ans = a.do(key, "PATCH", "/v1/tenants/acme/endpoints/"+hook.ID, map[string]any{"type": "memory", "config": map[string]any{"queue": "q"}})
	if e := decodeEndpoint(t, ans); ans.status != http.StatusOK || e.Type != "memory" || e.URL != "" {
		t.Fatalf("webhook to memory: %d %s", ans.status, ans.body)
	}
}

// The OpenAPI document describes type (with the server's types as its enum) and config.
func TestAPI_OpenAPIDescribesEndpointTypes(t *testing.T) {
	t.Parallel()
	a := destAPI(t)
	ans := a.do("", "GET", "/openapi.json", nil)
	if ans.status != http.StatusOK {
		t.Fatalf("openapi: %d", ans.status)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Type json.RawMessage `json:"type"`
					Enum []any           `json:"enum"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(ans.body, &doc); err != nil {
		t.Fatal(err)
	}
	found := 0
	for name, sch := range doc.Components.Schemas {
		p, ok := sch.Properties["type"]
		c, hasConfig := sch.Properties["config"]
		if !ok || !hasConfig || !strings.Contains(name, "Endpoint") {
			continue // broker sources have a type and a config too: of source types
		}
		found++
		if !slices.Equal(p.Enum, []any{"memory", "webhook"}) || !bytes.Contains(c.Type, []byte(`"object"`)) {
			t.Errorf("schema %s: type enum %v, config type %q; want [memory webhook] and object", name, p.Enum, c.Type)
		}
	}
	if found < 2 {
		t.Fatalf("%d schemas describe type and config, want the endpoint's body and answer", found)
	}
}

// GET /v1/destination-types describes each type from the type itself, to any key: webhook (its
// destination is the url) and the memory type with its settings, the credential marked secret.
func TestAPI_DestinationTypesDescribeTheirSettings(t *testing.T) {
	t.Parallel()
	a := destAPI(t)
	for _, key := range []string{a.admin, a.tenantKey("acme")} {
		ans := a.do(key, "GET", "/v1/destination-types", nil)
		if ans.status != http.StatusOK {
			t.Fatalf("GET /v1/destination-types: %d %s", ans.status, ans.body)
		}
		var got struct {
			Data []api.DestinationType `json:"data"`
		}
		if err := json.Unmarshal(ans.body, &got); err != nil {
			t.Fatalf("%s: %v", ans.body, err)
		}
		if len(got.Data) != 2 || got.Data[0].Name != "memory" || got.Data[1].Name != "webhook" {
			t.Fatalf("types %s, want memory and webhook", ans.body)
		}
		mem, hook := got.Data[0], got.Data[1]
		// A webhook's destination is its url; its settings (authentication, mutual TLS, proxy)
		// are the type's own description.
		if !hook.URL || len(hook.Settings) != len(webhookdest.New(nil, nil).Settings()) || mem.URL || !mem.Described {
			t.Fatalf("webhook %+v, memory %+v", hook, mem)
		}
		want := desttest.New().Settings()
		if len(mem.Settings) != len(want) {
			t.Fatalf("memory settings %+v, want %+v", mem.Settings, want)
		}
		for i, s := range mem.Settings {
			w := want[i]
			if s.Name != w.Name || s.Kind != w.Kind || s.Required != w.Required || s.Secret != w.Secret || s.Help != w.Help {
				t.Errorf("setting %d = %+v, want %+v", i, s, w)
			}
		}
		if d, ok := mem.Settings[1].Default.(float64); !ok || d != 5 {
			t.Errorf("priority's default = %v, want 5", mem.Settings[1].Default)
		}
	}
	if ans := a.do("", "GET", "/v1/destination-types", nil); ans.status != http.StatusUnauthorized {
		t.Fatalf("without a key: %d, want 401", ans.status)
	}
	ans := a.do("", "GET", "/openapi.json", nil)
	if !bytes.Contains(ans.body, []byte(`"/v1/destination-types"`)) || !bytes.Contains(ans.body, []byte(`"DestinationType"`)) {
		t.Fatalf("the OpenAPI document does not describe /v1/destination-types")
	}
}

// The OpenAPI document describes a broker source's type as an enum of the source types this
// server runs, and its config as an object, in the create and update bodies and in the answer.
func TestAPI_OpenAPIDescribesBrokerSourceTypes(t *testing.T) {
	t.Parallel()
	reg, err := source.NewRegistry(natsbroker.NewSource(source.Env{}), redisstream.NewSource(source.Env{}))
	if err != nil {
		t.Fatal(err)
	}
	a := newTestAPI(t, api.Config{SourceTypes: reg, BrokerSourcesChanged: func() {}})
	ans := a.do("", "GET", "/openapi.json", nil)
	if ans.status != http.StatusOK {
		t.Fatalf("openapi: %d", ans.status)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Type json.RawMessage `json:"type"`
					Enum []any           `json:"enum"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(ans.body, &doc); err != nil {
		t.Fatal(err)
	}
	found := 0
	for name, sch := range doc.Components.Schemas {
		p, ok := sch.Properties["type"]
		c, hasConfig := sch.Properties["config"]
		if !ok || !hasConfig || !strings.Contains(name, "BrokerSource") {
			continue
		}
		found++
		if !slices.Equal(p.Enum, []any{"nats", "redis"}) || !bytes.Contains(c.Type, []byte(`"object"`)) {
			t.Errorf("schema %s: type enum %v, config type %s; want [nats redis] and object", name, p.Enum, c.Type)
		}
	}
	if found < 2 {
		t.Fatalf("%d broker source schemas describe type and config, want the body (create and update) and the answer", found)
	}
}
