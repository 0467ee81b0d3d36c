package redact_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/redact"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/sqlite"
)

func TestJSON(t *testing.T) {
	t.Parallel()
	p := redact.Compile([]string{"card.number", "password", "a.b.c"})
	cases := []struct {
		name, in, want string
	}{
		{"top-level field", `{"password":"hunter2","user":"ann"}`, `{"password":"[REDACTED]","user":"ann"}`},
		{"nested path", `{"card":{"number":"4242424242424242","exp":"12/30"}}`, `{"card":{"number":"[REDACTED]","exp":"12/30"}}`},
		{"path at any depth", `{"data":{"payment":{"card":{"number":4242}}}}`, `{"data":{"payment":{"card":{"number":"[REDACTED]"}}}}`},
		{"through arrays", `{"cards":[{"card":{"number":"1"}},{"card":{"number":"2"}}]}`, `{"cards":[{"card":{"number":"[REDACTED]"}},{"card":{"number":"[REDACTED]"}}]}`},
		{"object value redacted whole", `{"password":{"old":"a","new":["b"]},"x":1}`, `{"password":"[REDACTED]","x":1}`},
		{"a partial path does not match", `{"number":"1","card":{"no":"2"}}`, `{"number":"1","card":{"no":"2"}}`},
		{"three keys", `{"a":{"b":{"c":true,"d":null}}}`, `{"a":{"b":{"c":"[REDACTED]","d":null}}}`},
		{"numbers keep their text", `{"amount":1.50e3,"password":"x"}`, `{"amount":1.50e3,"password":"[REDACTED]"}`},
		{"no HTML escaping", `{"note":"<b>&</b>","password":"x"}`, `{"note":"<b>&</b>","password":"[REDACTED]"}`},
		{"nothing matches: unchanged", `{ "user" : "ann" }`, `{ "user" : "ann" }`},
		{"not JSON: unchanged", `password=hunter2`, `password=hunter2`},
		{"empty", ``, ``},
		{"cut inside the hidden value", `{"ok":true,"card":{"number":"4242 42`, `{"ok":true,"card":{"number":"[REDACTED]"`},
		{"cut after a hidden value", `{"password":"x","rest":"abc`, `{"password":"[REDACTED]","rest":`},
		{"broken after a hidden value", `{"password":"x",  nonsense: 1}`, `{"password":"[REDACTED]",`},
		{"JSON lines", "{\"password\":\"a\"}\n{\"password\":\"b\"}\n", "{\"password\":\"[REDACTED]\"}\n{\"password\":\"[REDACTED]\"}"},
		{"top-level array", `[{"password":"a"},1]`, `[{"password":"[REDACTED]"},1]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(p.JSON([]byte(c.in))); got != c.want {
				t.Fatalf("JSON(%s)\n got %s\nwant %s", c.in, got, c.want)
			}
		})
	}
	if got := string(redact.Compile(nil).JSON([]byte(`{"password":"x"}`))); got != `{"password":"x"}` {
		t.Fatalf("no paths changed the document: %s", got)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"password", "card.number", "a.b-c.d_e", "ünïcode.key"} {
		if err := redact.Check(ok); err != nil {
			t.Errorf("Check(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".a", "a.", "a..b", "a\x00b", string(make([]byte, 201))} {
		if redact.Check(bad) == nil {
			t.Errorf("Check(%q) accepted it", bad)
		}
	}
}

// What Herald stores about attempts is redacted by the tenant's setting when it is written.
func TestStore_RedactsAttemptResponsesBeforeStoring(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inner, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "herald.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inner.Close() })
	s := redact.NewStore(inner, time.Hour)
	now := time.Now().UTC()
	for _, tn := range []*store.Tenant{
		{ID: "secretive", Name: "S", RedactFields: []string{"card.number"}, CreatedAt: now, UpdatedAt: now},
		{ID: "open", Name: "O", CreatedAt: now, UpdatedAt: now},
	} {
		if err := s.CreateTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateEndpoint(ctx, &store.Endpoint{ID: "ep-" + tn.ID, TenantID: tn.ID, URL: "https://example.com/", EventTypes: []string{"*"},
			Secrets: []store.Secret{{Key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, Timeout: time.Second, MaxConcurrency: 1, Enabled: true,
			CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Publish(ctx, tn.ID, []*store.Event{{ID: "e1", Type: "a.b", Timestamp: now, CreatedAt: now, Payload: []byte(`{}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	echo := `{"received":{"card":{"number":"4242424242424242"}}}`
	record := func(tenant string) string {
		t.Helper()
		c, err := s.ClaimDue(ctx, time.Now(), time.Now().Add(time.Minute), []store.ClaimRequest{{EndpointID: "ep-" + tenant, Limit: 1}})
		if err != nil || len(c[0].Claimed) != 1 {
			t.Fatalf("claim: %v %+v", err, c)
		}
		cl := c[0].Claimed[0]
		results := []store.Result{{DeliveryID: cl.DeliveryID, EndpointID: "ep-" + tenant, State: store.StateSucceeded,
			Attempt: store.Attempt{TenantID: tenant, EndpointID: "ep-" + tenant, EventID: cl.EventID, DeliveryID: cl.DeliveryID,
				At: time.Now(), StatusCode: 200, Success: true, Response: echo}}}
		if err := s.RecordResults(ctx, results); err != nil {
			t.Fatal(err)
		}
		if results[0].Attempt.Response != echo {
			t.Fatal("RecordResults changed the caller's results")
		}
		atts, _, err := s.ListAttempts(ctx, store.AttemptFilter{TenantID: tenant, DeliveryID: cl.DeliveryID})
		if err != nil || len(atts) == 0 {
			t.Fatalf("attempts: %v %+v", err, atts)
		}
		return atts[0].Response // the newest
	}
	if got := record("secretive"); got != `{"received":{"card":{"number":"[REDACTED]"}}}` {
		t.Fatalf("stored response of a redacting tenant = %s", got)
	}
	if got := record("open"); got != echo {
		t.Fatalf("stored response of a tenant without redaction = %s", got)
	}
	// A change of the setting through the Store applies at once, despite the hour-long cache.
	tn, err := s.GetTenant(ctx, "open")
	if err != nil {
		t.Fatal(err)
	}
	tn.RedactFields = []string{"number"}
	if err := s.UpdateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resend(ctx, "open", "e1", "ep-open"); err != nil {
		t.Fatal(err)
	}
	if got := record("open"); got != `{"received":{"card":{"number":"[REDACTED]"}}}` {
		t.Fatalf("after the setting changed = %s", got)
	}
}
