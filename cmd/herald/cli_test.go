package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/inbound/schema"
	"github.com/heraldhq/herald/webhook"
)

// execute runs the herald command tree in-process with args and stdin, and returns what it wrote
// and the exit status main would give its error.
func execute(t *testing.T, stdin string, args ...string) (out string, code int, err error) {
	t.Helper()
	cmd := root()
	var buf bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&buf)
	cmd.SetErr(&buf)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err = cmd.ExecuteContext(ctx); err != nil {
		code = exitCode(err)
	}
	return buf.String(), code, err
}

// runCLI runs the built binary to completion with stdin and the extra environment.
func runCLI(t *testing.T, stdin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, heraldBin, args...)
	cmd.Env = childEnv(env...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run herald %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

func TestVerify_ExplainsWhatDoesNotMatch(t *testing.T) {
	t.Parallel()
	secret, other := newSecret(t), newSecret(t)
	signingKey, publicKey, err := webhook.NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	hmacSigner, err := webhook.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	edSigner, err := webhook.NewSigner(signingKey)
	if err != nil {
		t.Fatal(err)
	}
	const id = "msg_2b8dUmq"
	body := `{"type":"invoice.paid","data":{"amount":1200}}`
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := hmacSigner.Sign(id, now, []byte(body))
	stale := now.Add(-time.Hour)
	future := now.Add(10 * time.Minute)
	// What the v1 signature of a tampered body or of another secret would be, so the test can check
	// that verify prints the signature it expected.
	tampered := strings.Replace(body, "1200", "9999", 1)
	tamperedSig := hmacSigner.Sign(id, now, []byte(tampered))
	otherSigner, err := webhook.NewSigner(other)
	if err != nil {
		t.Fatal(err)
	}
	otherSig := otherSigner.Sign(id, now, []byte(body))

	for _, c := range []struct {
		name  string
		body  string
		args  []string
		code  int
		wants []string
	}{
		{"valid v1", body, []string{"--secret", secret, "--id", id, "--timestamp", ts, "--signature", sig}, 0,
			[]string{"OK: v1 signature matches"}},
		{"secret without prefix", body, []string{"--secret", strings.TrimPrefix(secret, "whsec_"), "--id", id, "--timestamp", ts, "--signature", sig}, 0,
			[]string{"OK"}},
		{"one of several entries", body, []string{"--secret", secret, "--id", id, "--timestamp", ts, "--signature", otherSig + " " + sig}, 0,
			[]string{"OK"}},
		{"valid v1a", body, []string{"--secret", publicKey, "--id", id, "--timestamp", ts, "--signature", edSigner.Sign(id, now, []byte(body))}, 0,
			[]string{"OK: v1a signature matches"}},
		{"tampered body", tampered, []string{"--secret", secret, "--id", id, "--timestamp", ts, "--signature", sig}, 1,
			[]string{"signature mismatch", "expected: " + tamperedSig, "got:      " + sig}},
		{"wrong secret", body, []string{"--secret", other, "--id", id, "--timestamp", ts, "--signature", sig}, 1,
			[]string{"signature mismatch", "expected: " + otherSig}},
		{"wrong id", body, []string{"--secret", secret, "--id", "msg_other", "--timestamp", ts, "--signature", sig}, 1,
			[]string{"signature mismatch", `webhook-id "msg_other"`}},
		{"trailing newline", body + "\n", []string{"--secret", secret, "--id", id, "--timestamp", ts, "--signature", sig}, 1,
			[]string{"signature mismatch", "without its final newline"}},
		{"stale timestamp", body, []string{"--secret", secret, "--id", id, "--timestamp", strconv.FormatInt(stale.Unix(), 10), "--signature", hmacSigner.Sign(id, stale, []byte(body))}, 1,
			[]string{"timestamp outside tolerance", "1h0m", " old", "tolerance of 5m0s"}},
		{"future timestamp", body, []string{"--secret", secret, "--id", id, "--timestamp", strconv.FormatInt(future.Unix(), 10), "--signature", hmacSigner.Sign(id, future, []byte(body))}, 1,
			[]string{"timestamp outside tolerance", "in the future", "tolerance of 5m0s"}},
		{"stale but within --tolerance", body, []string{"--tolerance", "2h", "--secret", secret, "--id", id, "--timestamp", strconv.FormatInt(stale.Unix(), 10), "--signature", hmacSigner.Sign(id, stale, []byte(body))}, 0,
			[]string{"OK"}},
		{"timestamp not a number", body, []string{"--secret", secret, "--id", id, "--timestamp", "2026-01-01", "--signature", sig}, 1,
			[]string{"not a Unix time"}},
		{"no entry of the key's version", body, []string{"--secret", publicKey, "--id", id, "--timestamp", ts, "--signature", sig}, 1,
			[]string{"no v1a signature", "entries: v1", "other kind of key"}},
		{"entry without a version", body, []string{"--secret", secret, "--id", id, "--timestamp", ts, "--signature", "K5oZ"}, 1,
			[]string{"no v1 signature", "(no version)"}},
		{"bad secret format", body, []string{"--secret", "whsec_short", "--id", id, "--timestamp", ts, "--signature", sig}, 2,
			[]string{"--secret: bad key format"}},
		{"signing key instead of public key", body, []string{"--secret", signingKey, "--id", id, "--timestamp", ts, "--signature", sig}, 2,
			[]string{"--secret: bad key format", "public key"}},
		{"missing flags", body, []string{"--secret", secret}, 2,
			[]string{"missing --id, --timestamp, --signature"}},
		{"unknown flag", body, []string{"--secrets", secret}, 2,
			[]string{"unknown flag"}},
		{"negative tolerance", body, []string{"--tolerance", "-1s", "--secret", secret, "--id", id, "--timestamp", ts, "--signature", sig}, 2,
			[]string{"must not be negative"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out, code, err := execute(t, c.body, append([]string{"verify"}, c.args...)...)
			if err != nil {
				out += err.Error()
			}
			if code != c.code {
				t.Errorf("exit status %d, want %d; output:\n%s", code, c.code, out)
			}
			for _, w := range c.wants {
				if !strings.Contains(out, w) {
					t.Errorf("output does not mention %q:\n%s", w, out)
				}
			}
		})
	}
}

// The binary's exit statuses, which scripts rely on: 0 valid, 1 invalid, 2 misused.
func TestVerify_ExitStatusOfTheBinary(t *testing.T) {
	needBinary(t)
	t.Parallel()
	secret := newSecret(t)
	s, err := webhook.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	body := `{"ok":true}`
	args := []string{"verify", "--secret", secret, "--id", "msg_1", "--timestamp", strconv.FormatInt(now.Unix(), 10), "--signature", s.Sign("msg_1", now, []byte(body))}
	if out, errOut, code := runCLI(t, body, nil, args...); code != 0 || !strings.Contains(out, "OK") {
		t.Errorf("valid signature: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, errOut, code := runCLI(t, body+" ", nil, args...); code != 1 || !strings.Contains(errOut, "herald: signature mismatch") {
		t.Errorf("tampered body: exit %d, stderr %q", code, errOut)
	}
	// The secret can come from the environment, like every other flag.
	if _, errOut, code := runCLI(t, body, []string{"HERALD_SECRET=" + newSecret(t)}, args[0], args[3], args[4], args[5], args[6], args[7], args[8]); code != 1 || !strings.Contains(errOut, "signature mismatch") {
		t.Errorf("HERALD_SECRET of another key: exit %d, stderr %q", code, errOut)
	}
	if _, errOut, code := runCLI(t, body, nil, "verify", "--secret", secret); code != 2 || !strings.Contains(errOut, "missing") {
		t.Errorf("missing flags: exit %d, stderr %q", code, errOut)
	}
}

// capture is an endpoint that keeps the first webhook it receives.
type capture struct {
	srv  *httptest.Server
	mu   sync.Mutex
	body []byte
	hdr  http.Header
}

func newCapture(t *testing.T) *capture {
	c := &capture{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		if c.hdr == nil {
			c.body, c.hdr = b, r.Header.Clone()
		}
		c.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *capture) got() ([]byte, http.Header) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.body, c.hdr
}

var publishedRe = regexp.MustCompile(`event (\S+) \(invoice\.paid\) published for tenant acme: (\d+) deliveries`)

// trigger publishes through a real node; the webhook it causes is then checked with herald verify,
// the loop a developer goes through when wiring up an endpoint.
func TestTrigger_PublishesThroughTheAPI(t *testing.T) {
	needBinary(t)
	t.Parallel()
	p := serve(t, "serve", t.TempDir(), []string{"HERALD_API_KEY=" + testKey}, "--dev")
	p.must("POST", "/v1/tenants", testKey, map[string]any{"id": "acme", "name": "Acme Inc"}, http.StatusCreated, nil)
	p.must("POST", "/v1/event-types", testKey, map[string]any{"name": "invoice.paid"}, http.StatusCreated, nil)
	rcv := newCapture(t)
	var ep struct {
		Secret string `json:"secret"`
	}
	p.must("POST", "/v1/tenants/acme/endpoints", testKey, map[string]any{"url": rcv.srv.URL + "/webhooks", "event_types": []string{"invoice.*"}}, http.StatusCreated, &ep)
	apiURL := "http://" + p.addr
	env := []string{"HERALD_API_KEY=" + testKey}

	// get reads an event back through the API and returns its data.
	get := func(id string) string {
		t.Helper()
		var ev struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		p.must("GET", "/v1/tenants/acme/events/"+id, testKey, nil, http.StatusOK, &ev)
		if ev.Type != "invoice.paid" {
			t.Errorf("event %s has type %q", id, ev.Type)
		}
		return string(ev.Data)
	}
	trigger := func(args ...string) string {
		t.Helper()
		out, errOut, code := runCLI(t, "", env, append([]string{"trigger", "invoice.paid", "--tenant", "acme", "--api-url", apiURL}, args...)...)
		m := publishedRe.FindStringSubmatch(out)
		if code != 0 || m == nil {
			t.Fatalf("trigger %v: exit %d, stdout %q, stderr %q%s", args, code, out, errOut, p.logs())
		}
		if m[2] != "1" {
			t.Errorf("trigger %v: %s deliveries, want 1", args, m[2])
		}
		return m[1]
	}

	id := trigger("--data", `{"amount":1200}`)
	if got := get(id); got != `{"amount":1200}` {
		t.Errorf("inline --data stored as %s", got)
	}
	file := filepath.Join(t.TempDir(), "invoice.json")
	if err := os.WriteFile(file, []byte("{\n  \"amount\": 42\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := get(trigger("--data", "@"+file)); got != `{"amount":42}` {
		t.Errorf("--data @file stored as %s", got)
	}
	if got := get(trigger()); got != `{}` {
		t.Errorf("no --data stored as %s", got)
	}

	// The first webhook passes herald verify with the endpoint's secret, and fails with another.
	waitFor(t, 10*time.Second, "the webhook to arrive", func() bool { _, h := rcv.got(); return h != nil }, p)
	body, h := rcv.got()
	args := []string{"verify", "--id", h.Get(webhook.HeaderID), "--timestamp", h.Get(webhook.HeaderTimestamp), "--signature", h.Get(webhook.HeaderSignature)}
	if out, errOut, code := runCLI(t, string(body), nil, append(args, "--secret", ep.Secret)...); code != 0 {
		t.Errorf("verify of a delivered webhook: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, errOut, code := runCLI(t, string(body), nil, append(args, "--secret", newSecret(t))...); code != 1 || !strings.Contains(errOut, "signature mismatch") {
		t.Errorf("verify with another secret: exit %d, stderr %q", code, errOut)
	}

	// Errors: the API's problem is shown, and the exit status is not 0.
	for _, c := range []struct {
		name  string
		env   []string
		args  []string
		code  int
		wants []string
	}{
		{"unknown event type", env, []string{"trigger", "invoice.voided", "--tenant", "acme", "--api-url", apiURL}, 1,
			[]string{"422", "body.type: unknown event type; register it with POST /v1/event-types", "invoice.voided"}},
		{"unknown tenant", env, []string{"trigger", "invoice.paid", "--tenant", "nobody", "--api-url", apiURL}, 1,
			[]string{"404"}},
		{"wrong key", []string{"HERALD_API_KEY=hk_admin_not_the_key_0000000000"}, []string{"trigger", "invoice.paid", "--tenant", "acme", "--api-url", apiURL}, 1,
			[]string{"401"}},
		{"no key", nil, []string{"trigger", "invoice.paid", "--tenant", "acme", "--api-url", apiURL}, 2,
			[]string{"missing --api-key"}},
		{"data not an object", env, []string{"trigger", "invoice.paid", "--tenant", "acme", "--api-url", apiURL, "--data", `[1,2]`}, 2,
			[]string{"--data: want a JSON object"}},
		{"no event type", env, []string{"trigger", "--tenant", "acme", "--api-url", apiURL}, 2,
			[]string{"one argument"}},
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
}

// trigger without --data publishes an example made from the event type's schema: one that the
// schema accepts, with its required fields, refs followed and the author's examples used.
func TestTrigger_WithoutDataPublishesTheSchemaExample(t *testing.T) {
	needBinary(t)
	t.Parallel()
	p := serve(t, "serve", t.TempDir(), []string{"HERALD_API_KEY=" + testKey}, "--dev")
	p.must("POST", "/v1/tenants", testKey, map[string]any{"id": "acme", "name": "Acme Inc"}, http.StatusCreated, nil)
	doc := `{"type":"object","required":["id","amount","customer"],"properties":{
		"id":{"type":"string","format":"uuid"},
		"amount":{"type":"integer","minimum":100},
		"currency":{"type":"string","enum":["eur","usd"]},
		"paid_at":{"type":"string","format":"date-time"},
		"customer":{"$ref":"#/$defs/customer"},
		"lines":{"type":"array","minItems":1,"items":{"$ref":"#/$defs/line"}}},
		"$defs":{
			"customer":{"type":"object","required":["email"],"properties":{"email":{"type":"string","format":"email"},"referred_by":{"$ref":"#/$defs/customer"}}},
			"line":{"type":"object","required":["sku"],"properties":{"sku":{"type":"string","examples":["SKU-1"]}}}},
		"additionalProperties":false}`
	compiled, err := schema.Compile([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	p.must("POST", "/v1/event-types", testKey, map[string]any{"name": "invoice.paid", "schema": json.RawMessage(doc)}, http.StatusCreated, nil)

	out, errOut, code := runCLI(t, "", []string{"HERALD_API_KEY=" + testKey}, "trigger", "invoice.paid", "--tenant", "acme", "--api-url", "http://"+p.addr)
	m := publishedRe.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("trigger: exit %d, stdout %q, stderr %q%s", code, out, errOut, p.logs())
	}
	var ev struct {
		Data json.RawMessage `json:"data"`
	}
	p.must("GET", "/v1/tenants/acme/events/"+m[1], testKey, nil, http.StatusOK, &ev)
	if err := compiled.Validate(ev.Data); err != nil {
		t.Fatalf("published data %s does not satisfy the schema: %v", ev.Data, err)
	}
	var data struct {
		Amount   int `json:"amount"`
		Customer struct {
			Email string `json:"email"`
		} `json:"customer"`
		Lines []struct {
			SKU string `json:"sku"`
		} `json:"lines"`
	}
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		t.Fatal(err)
	}
	if data.Amount != 100 || data.Customer.Email != "user@example.com" || len(data.Lines) != 1 || data.Lines[0].SKU != "SKU-1" {
		t.Errorf("published data %s is not the schema's example", ev.Data)
	}

	// A schema no example satisfies: trigger says so and publishes nothing.
	p.must("POST", "/v1/event-types", testKey, map[string]any{"name": "invoice.never",
		"schema": json.RawMessage(`{"type":"object","required":["x"],"properties":{"x":false}}`)}, http.StatusCreated, nil)
	_, errOut, code = runCLI(t, "", []string{"HERALD_API_KEY=" + testKey}, "trigger", "invoice.never", "--tenant", "acme", "--api-url", "http://"+p.addr)
	if code != 1 || !strings.Contains(errOut, "pass --data") || !strings.Contains(errOut, "422") {
		t.Errorf("trigger of a type without an example: exit %d, stderr %q", code, errOut)
	}
	var list struct {
		Data []json.RawMessage `json:"data"`
	}
	p.must("GET", "/v1/tenants/acme/events", testKey, nil, http.StatusOK, &list)
	if len(list.Data) != 1 {
		t.Errorf("%d events published, want 1", len(list.Data))
	}
}
