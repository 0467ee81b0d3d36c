package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// tableRows splits a table into its header fields and data lines, requiring the header to be
// exactly want (column titles may hold spaces, so the header is compared as one line).
func tableRows(t *testing.T, out, wantHeader string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if strings.Join(strings.Fields(lines[0]), " ") != wantHeader {
		t.Fatalf("table header %q, want %q; output:\n%s", lines[0], wantHeader, out)
	}
	return lines[1:]
}

func TestCLI_ResourceCommands(t *testing.T) {
	needBinary(t)
	t.Parallel()
	h := serve(t, "serve", t.TempDir(), []string{"HERALD_API_KEY=" + testKey}, "--dev")
	env := apiEnv(h)
	// cli runs a command that must exit 0 and returns its standard output.
	cli := func(args ...string) string {
		t.Helper()
		out, errOut, code := runCLI(t, "", env, args...)
		if code != 0 {
			t.Fatalf("herald %v: exit %d; stdout %q, stderr %q%s", args, code, out, errOut, h.logs())
		}
		return out
	}
	// jsonOut runs a command with -o json and decodes what it printed.
	jsonOut := func(into any, args ...string) {
		t.Helper()
		out := cli(append(args, "-o", "json")...)
		if err := json.Unmarshal([]byte(out), into); err != nil {
			t.Fatalf("herald %v -o json: not JSON: %v\n%s", args, err, out)
		}
	}

	// Tenants.
	var tenant struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	jsonOut(&tenant, "tenants", "create", "acme", "--name", "Acme Inc")
	if tenant.ID != "acme" || tenant.Name != "Acme Inc" {
		t.Errorf("tenants create answered %+v", tenant)
	}
	cli("tenants", "create", "globex")
	var tenants []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	jsonOut(&tenants, "tenants", "list")
	if len(tenants) != 2 || tenants[0].ID != "acme" || tenants[1].ID != "globex" || tenants[1].Name != "globex" {
		t.Errorf("tenants list -o json: %+v", tenants)
	}
	rows := tableRows(t, cli("tenants", "list"), "ID NAME REDACT FIELDS CREATED")
	if len(rows) != 2 || !strings.HasPrefix(rows[0], "acme ") || !strings.Contains(rows[0], "Acme Inc") {
		t.Errorf("tenants list table rows: %q", rows)
	}
	rows = tableRows(t, cli("tenants", "get", "globex"), "ID NAME REDACT FIELDS CREATED")
	if len(rows) != 1 || !strings.HasPrefix(rows[0], "globex ") {
		t.Errorf("tenants get table rows: %q", rows)
	}

	// Endpoints.
	h.must("POST", "/v1/event-types", testKey, map[string]any{"name": "a.happened"}, http.StatusCreated, nil)
	rcv := newReplayRecorder(t, http.StatusOK)
	type endpoint struct {
		ID          string            `json:"id"`
		URL         string            `json:"url"`
		Enabled     bool              `json:"enabled"`
		Description string            `json:"description"`
		Secret      string            `json:"secret"`
		EventTypes  []string          `json:"event_types"`
		Retry       []int             `json:"retry_schedule"`
		Headers     map[string]string `json:"headers"`
	}
	var ep endpoint
	jsonOut(&ep, "endpoints", "create", "--tenant", "acme", "--url", rcv.url(), "--event-type", "a.happened",
		"--retry-schedule", "0,5", "--header", "X-Team: billing", "--description", "dev")
	if !strings.HasPrefix(ep.ID, "ep_") || !strings.HasPrefix(ep.Secret, "whsec_") || !ep.Enabled || ep.URL != rcv.url() ||
		len(ep.Retry) != 2 || ep.Headers["X-Team"] != "billing" || ep.Description != "dev" {
		t.Errorf("endpoints create answered %+v", ep)
	}
	out := cli("endpoints", "create", "--tenant", "acme", "--url", rcv.url()+"/2", "--event-type", "a.*", "--disabled")
	if !strings.Contains(out, "signing secret: whsec_") {
		t.Errorf("endpoints create (table) does not show the secret:\n%s", out)
	}
	const epHeader = "ID URL ENABLED EVENT TYPES SCHEME DISABLED REASON CREATED"
	rows = tableRows(t, cli("endpoints", "list", "--tenant", "acme"), epHeader)
	if len(rows) != 2 || !strings.HasPrefix(rows[0], ep.ID+" ") || !strings.Contains(rows[1], " false ") {
		t.Errorf("endpoints list rows: %q", rows)
	}
	var got endpoint
	jsonOut(&got, "endpoints", "disable", ep.ID, "--tenant", "acme")
	if got.Enabled {
		t.Errorf("endpoints disable: still enabled")
	}
	jsonOut(&got, "endpoints", "enable", ep.ID, "--tenant", "acme")
	if !got.Enabled {
		t.Errorf("endpoints enable: still disabled")
	}
	jsonOut(&got, "endpoints", "update", ep.ID, "--tenant", "acme", "--description", "changed")
	if got.Description != "changed" || got.URL != rcv.url() || got.Secret != "" {
		t.Errorf("endpoints update changed more than the description, or shows the secret: %+v", got)
	}
	jsonOut(&got, "endpoints", "get", ep.ID, "--tenant", "acme")
	if got.ID != ep.ID || got.Description != "changed" {
		t.Errorf("endpoints get: %+v", got)
	}

	// Events and deliveries: two events, one delivery each (the second endpoint is disabled).
	ids := publishN(h, 2, func(i int) map[string]any { return map[string]any{"n": i, "s": "hello"} })
	var events []struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	jsonOut(&events, "events", "list", "--tenant", "acme", "--type", "a.happened", "--since", "1h")
	if len(events) != 2 || events[0].ID != ids[1] || events[1].ID != ids[0] {
		t.Errorf("events list (newest first): %+v, published %v", events, ids)
	}
	jsonOut(&events, "events", "list", "--tenant", "acme", "--type", "b.other")
	if len(events) != 0 {
		t.Errorf("events list --type b.other: %+v", events)
	}
	out, errOut, code := runCLI(t, "", env, "events", "list", "--tenant", "acme", "--limit", "1")
	if rows = tableRows(t, out, "ID TYPE SOURCE CREATED"); code != 0 || len(rows) != 1 || !strings.Contains(errOut, "--limit N or --all") {
		t.Errorf("events list --limit 1: exit %d, rows %q, stderr %q", code, rows, errOut)
	}
	var ev struct {
		ID   string          `json:"id"`
		Data json.RawMessage `json:"data"`
	}
	jsonOut(&ev, "events", "get", ids[0], "--tenant", "acme")
	var data map[string]any
	if err := json.Unmarshal(ev.Data, &data); err != nil || ev.ID != ids[0] || data["s"] != "hello" {
		t.Errorf("events get -o json: %+v (%v)", ev, err)
	}
	if out := cli("events", "get", ids[0], "--tenant", "acme"); !strings.Contains(out, `"s": "hello"`) {
		t.Errorf("events get (table) does not show the data:\n%s", out)
	}
	waitFor(t, 10*time.Second, "two succeeded deliveries", func() bool { return succeeded(h) == 2 }, h)
	var deliveries []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	jsonOut(&deliveries, "deliveries", "list", "--tenant", "acme", "--state", "succeeded", "--endpoint", ep.ID)
	if len(deliveries) != 2 {
		t.Errorf("deliveries list --state succeeded: %+v", deliveries)
	}
	rows = tableRows(t, cli("deliveries", "list", "--tenant", "acme", "--state", "dead"), "ID EVENT TYPE ENDPOINT STATE ATTEMPTS LAST STATUS UPDATED")
	if len(rows) != 0 {
		t.Errorf("deliveries list --state dead: %q", rows)
	}
	rows = tableRows(t, cli("deliveries", "list", "--tenant", "acme"), "ID EVENT TYPE ENDPOINT STATE ATTEMPTS LAST STATUS UPDATED")
	if len(rows) != 2 || !strings.Contains(rows[0], " succeeded ") || !strings.Contains(rows[0], " 200 ") {
		t.Errorf("deliveries list rows: %q", rows)
	}

	// Errors: the problem's detail and each field on stderr, and a non-zero exit.
	for _, c := range []struct {
		name  string
		env   []string
		args  []string
		code  int
		wants []string
	}{
		{"unknown tenant", env, []string{"tenants", "get", "nobody"}, 1, []string{"404", "tenant nobody not found"}},
		{"unknown tenant's endpoints", env, []string{"endpoints", "list", "--tenant", "nobody"}, 1, []string{"404", "nobody"}},
		{"unknown event type", env, []string{"endpoints", "create", "--tenant", "acme", "--url", rcv.url(), "--event-type", "nope.nope"}, 1,
			[]string{"422", "invalid endpoint", "body.event_types[0]: unknown event type"}},
		{"bad tenant id", env, []string{"tenants", "create", "no spaces"}, 1, []string{"422", "body.id: "}},
		{"wrong key", []string{"HERALD_API_URL=http://" + h.addr, "HERALD_API_KEY=hk_admin_not_the_key_0000000000"}, []string{"tenants", "list"}, 1, []string{"401"}},
		{"no key", []string{"HERALD_API_URL=http://" + h.addr}, []string{"tenants", "list"}, 2, []string{"missing --api-key"}},
		{"no tenant", env, []string{"events", "list"}, 2, []string{"missing --tenant"}},
		{"bad output", env, []string{"tenants", "list", "-o", "yaml"}, 2, []string{`--output "yaml"`}},
		{"update without flags", env, []string{"endpoints", "update", ep.ID, "--tenant", "acme"}, 2, []string{"nothing to change"}},
		{"delete without --yes", env, []string{"tenants", "delete", "globex"}, 2, []string{"--yes"}},
		{"unknown subcommand", env, []string{"tenants", "bogus"}, 2, []string{`unknown command "bogus"`}},
		{"bad header", env, []string{"endpoints", "update", ep.ID, "--tenant", "acme", "--header", "nocolon"}, 2, []string{"--header"}},
	} {
		out, errOut, code := runCLI(t, "", c.env, c.args...)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d; stdout %q, stderr %q", c.name, code, c.code, out, errOut)
		}
		for _, w := range c.wants {
			if !strings.Contains(errOut, w) {
				t.Errorf("%s: stderr does not mention %q:\n%s", c.name, w, errOut)
			}
		}
	}

	// Deletions.
	if out := cli("endpoints", "delete", ep.ID, "--tenant", "acme"); !strings.Contains(out, "endpoint "+ep.ID+" deleted") {
		t.Errorf("endpoints delete said %q", out)
	}
	if _, errOut, code := runCLI(t, "", env, "endpoints", "get", ep.ID, "--tenant", "acme"); code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("get of a deleted endpoint: exit %d, stderr %q", code, errOut)
	}
	if out := cli("tenants", "delete", "acme", "--yes"); !strings.Contains(out, "tenant acme deleted:") || !strings.Contains(out, "events 2") {
		t.Errorf("tenants delete said %q", out)
	}
	jsonOut(&tenants, "tenants", "list")
	if len(tenants) != 1 || tenants[0].ID != "globex" {
		t.Errorf("after deleting acme: %+v", tenants)
	}
	h.stop()
}
