package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/webhook"
)

var shownSecretRe = regexp.MustCompile(`signing secret \(shown once[^)]*\): (whsec_\S+)`)

// TestCLI_ReceivingSide: sources create/list/rotate, send-test signing for the source's scheme,
// received list/show/replay, and listen --source forwarding each request with its provider
// headers, signed again with the provider's secret, across a restart of the server.
func TestCLI_ReceivingSide(t *testing.T) {
	needBinary(t)
	t.Parallel()
	dataDir := t.TempDir()
	env := []string{"HERALD_API_KEY=" + testKey}
	p := serve(t, "serve", dataDir, env, "--dev")
	home, _ := userDirs(t)
	cliEnv := append(append([]string{}, home...), apiEnv(p)...)
	cli := func(want int, args ...string) (string, string) {
		t.Helper()
		out, errOut, code := runCLI(t, "", cliEnv, args...)
		if code != want {
			t.Fatalf("herald %v: exit %d, want %d; stdout %q, stderr %q%s", args, code, want, out, errOut, p.logs())
		}
		return out, errOut
	}
	jsonOut := func(into any, args ...string) {
		t.Helper()
		out, _ := cli(0, append(args, "-o", "json")...)
		if err := json.Unmarshal([]byte(out), into); err != nil {
			t.Fatalf("herald %v -o json: %v\n%s", args, err, out)
		}
	}
	cli(0, "tenants", "create", "acme")

	// A standard_webhooks source without --secret: one is made and shown once, on stderr with -o json.
	type source struct {
		ID           string `json:"id"`
		IngestURL    string `json:"ingest_url"`
		Verification struct {
			Scheme       string `json:"scheme"`
			SecretsCount int    `json:"secrets_count"`
		} `json:"verification"`
	}
	out, errOut := cli(0, "sources", "create", "sw", "--tenant", "acme", "--scheme", "standard_webhooks", "-o", "json")
	var sw source
	if err := json.Unmarshal([]byte(out), &sw); err != nil || sw.Verification.Scheme != "standard_webhooks" || sw.Verification.SecretsCount != 1 {
		t.Fatalf("sources create -o json: %v\n%s", err, out)
	}
	m := shownSecretRe.FindStringSubmatch(errOut)
	if m == nil || strings.Contains(out, "whsec_") {
		t.Fatalf("the made secret is not on stderr alone: stdout %q, stderr %q", out, errOut)
	}
	secret := m[1]
	out, _ = cli(0, "sources", "create", "gh", "--tenant", "acme", "--scheme", "github", "--secret", "gh-webhook-secret", "--event-type-prefix", "github.")
	if !strings.Contains(out, "github") || strings.Contains(out, "gh-webhook-secret") {
		t.Errorf("sources create (table):\n%s", out)
	}
	var srcs []source
	jsonOut(&srcs, "sources", "list", "--tenant", "acme")
	if len(srcs) != 2 || srcs[0].ID != sw.ID || srcs[1].Verification.Scheme != "github" {
		t.Fatalf("sources list: %+v", srcs)
	}
	gh := srcs[1]
	rows := tableRows(t, cli0(cli, "sources", "list", "--tenant", "acme"), "ID NAME ENABLED SCHEME PRESET INGEST URL CREATED")
	if len(rows) != 2 || !strings.Contains(rows[0], " standard_webhooks ") || !strings.Contains(rows[0], sw.IngestURL) {
		t.Errorf("sources list rows: %q", rows)
	}
	_, errOut = cli(2, "sources", "create", "x", "--tenant", "acme")
	if !strings.Contains(errOut, "missing --scheme") {
		t.Errorf("sources create without a scheme: %q", errOut)
	}

	// Start listening to the standard_webhooks source before anything is sent.
	sink := newListenSink(t)
	l := run(t, "listen", cliEnv, "listen", "--tenant", "acme", "--source", sw.ID, "--forward-to", sink.srv.URL+"/hooks?local=1",
		"--secret", secret, "--poll-interval", "200ms")
	waitFor(t, 10*time.Second, "listen to poll", func() bool { return strings.Contains(l.stdout.String(), "waiting for requests") }, l)

	// send-test signs as each scheme does; another secret is refused, exit 1.
	out, _ = cli(0, "send-test", "--tenant", "acme", "--source", sw.ID, "--secret", secret, "--data", `{"type":"order.created","n":1}`)
	if !strings.Contains(out, "200 OK") || !strings.Contains(out, `"status":"accepted"`) {
		t.Errorf("send-test standard_webhooks: %q", out)
	}
	out, _ = cli(0, "send-test", "--tenant", "acme", "--source", gh.ID, "--secret", "gh-webhook-secret", "--event-type", "push")
	if !strings.Contains(out, `"status":"accepted"`) {
		t.Errorf("send-test github: %q", out)
	}
	_, errOut = cli(1, "send-test", "--tenant", "acme", "--source", gh.ID, "--secret", "not-the-secret")
	if !strings.Contains(errOut, "bad_signature") {
		t.Errorf("send-test with another secret: %q", errOut)
	}
	_, errOut = cli(2, "send-test", "--tenant", "acme", "--source", gh.ID)
	if !strings.Contains(errOut, "missing --secret") {
		t.Errorf("send-test without a secret: %q", errOut)
	}

	// received list, show, replay.
	type received struct {
		ID        string `json:"id"`
		SourceID  string `json:"source_id"`
		Status    string `json:"status"`
		Reason    string `json:"reason"`
		EventID   string `json:"event_id"`
		EventType string `json:"event_type"`
	}
	var all []received
	jsonOut(&all, "received", "list", "--tenant", "acme")
	if len(all) != 3 || all[0].Status != "rejected" || !strings.HasPrefix(all[0].Reason, "bad_signature") ||
		all[1].EventType != "github.push" || all[2].EventType != "order.created" || all[2].SourceID != sw.ID {
		t.Fatalf("received list: %+v", all)
	}
	var rejected []received
	jsonOut(&rejected, "received", "list", "--tenant", "acme", "--status", "rejected", "--source", gh.ID)
	if len(rejected) != 1 || rejected[0].ID != all[0].ID {
		t.Errorf("received list --status rejected --source: %+v", rejected)
	}
	out, _ = cli(0, "received", "show", all[2].ID, "--tenant", "acme")
	if !strings.Contains(out, "Webhook-Signature: [REDACTED]") || !strings.Contains(out, `"type": "order.created"`) || strings.Contains(out, secret) {
		t.Errorf("received show:\n%s", out)
	}
	out, _ = cli(0, "received", "replay", all[2].ID, "--tenant", "acme")
	if !strings.Contains(out, "request "+all[2].ID+" replayed: event "+all[2].EventID) {
		t.Errorf("received replay: %q", out)
	}
	_, errOut = cli(1, "received", "replay", all[0].ID, "--tenant", "acme")
	if !strings.Contains(errOut, "409") {
		t.Errorf("replay of a rejected request: %q", errOut)
	}

	// listen forwarded the accepted request of its source only, with the provider's headers and
	// a signature that verifies with the provider's secret.
	verifier, err := webhook.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	check := func(req sinkRequest, wantBody string) {
		t.Helper()
		if string(req.body) != wantBody {
			t.Errorf("forwarded body %q, want %q", req.body, wantBody)
		}
		if err := verifier.Verify(req.body, req.header); err != nil {
			t.Errorf("the forwarded request does not verify with the provider's secret: %v (%v)", err, req.header)
		}
		if !strings.HasPrefix(req.header.Get("X-Herald-Received-Request"), "req_") || !strings.HasPrefix(req.header.Get("User-Agent"), "herald-send-test/") {
			t.Errorf("forwarded headers: %v", req.header)
		}
	}
	waitFor(t, 10*time.Second, "the request to be forwarded", func() bool { return len(sink.requests()) >= 1 }, l)
	check(sink.requests()[0], `{"type":"order.created","n":1}`)

	// The server restarts on the same address; what is sent then is forwarded too.
	p.stop()
	p2 := run(t, "serve-again", env, "serve", "--addr", p.addr, "--data-dir", dataDir, "--dev")
	p2.addr = p.addr
	p2.waitReady()
	cli(0, "send-test", "--tenant", "acme", "--source", sw.ID, "--secret", secret, "--data", `{"type":"order.created","n":2}`)
	waitFor(t, 20*time.Second, "the request after the restart to be forwarded", func() bool { return len(sink.requests()) >= 2 }, l)
	got := sink.requests()
	check(got[1], `{"type":"order.created","n":2}`)
	time.Sleep(500 * time.Millisecond) // a few more polls: nothing is forwarded twice
	if n := len(sink.requests()); n != 2 {
		t.Errorf("%d requests forwarded, want 2:\n%s", n, l.stdout.String())
	}

	// rotate gives a new ingest URL; send-test follows it, the old URL answers 404.
	var rotated source
	jsonOut(&rotated, "sources", "rotate", sw.ID, "--tenant", "acme")
	if rotated.IngestURL == sw.IngestURL || rotated.ID != sw.ID {
		t.Fatalf("sources rotate: %+v (was %s)", rotated, sw.IngestURL)
	}
	resp, err := http.Post(sw.IngestURL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("the old ingest URL answers %d, want 404", resp.StatusCode)
	}
	cli(0, "send-test", "--tenant", "acme", "--source", sw.ID, "--secret", secret)
}

func cli0(cli func(int, ...string) (string, string), args ...string) string {
	out, _ := cli(0, args...)
	return out
}

// herald receive without a secret says at start that it checks nothing.
func TestCLI_ReceiveWarnsWithoutSecret(t *testing.T) {
	needBinary(t)
	t.Parallel()
	r := run(t, "receive", nil, "receive", "--addr", freeAddr(t))
	waitFor(t, 10*time.Second, "the warning", func() bool {
		return strings.Contains(r.stderr.String(), "no --secret (HERALD_SECRET): signatures are NOT checked")
	}, r)
	s := run(t, "receive-secret", nil, "receive", "--addr", freeAddr(t), "--secret", newSecret(t))
	waitFor(t, 10*time.Second, "the receiver to listen", func() bool { return strings.Contains(s.stdout.String(), "receiving webhooks") }, s)
	if strings.Contains(s.stderr.String(), "NOT checked") {
		t.Errorf("receive with a secret warns: %q", s.stderr.String())
	}
}

// herald serve --database-url creates no ./herald-data: without a key it refuses to start and
// says how to give one; with HERALD_ENCRYPTION_KEY it serves, and the working directory stays empty.
func TestCLI_ServeOnPostgresCreatesNoDataDir(t *testing.T) {
	needBinary(t)
	url, schema := pgSchema(t) // skips without HERALD_TEST_DATABASE_URL
	t.Parallel()
	cwd := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, heraldBin, "serve", "--addr", freeAddr(t), "--database-url", url, "--database-schema", schema)
	cmd.Dir = cwd
	cmd.Env = childEnv("HERALD_API_KEY=" + testKey)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 2 || !strings.Contains(stderr.String(), "HERALD_ENCRYPTION_KEY") {
		t.Errorf("serve --database-url without a key: %v, stderr %q; want exit 2 naming HERALD_ENCRYPTION_KEY", err, stderr.String())
	}
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	addr := freeAddr(t)
	p := &proc{t: t, name: "serve-pg", addr: addr, exited: make(chan struct{})}
	p.cmd = exec.Command(heraldBin, "serve", "--addr", addr, "--database-url", url, "--database-schema", schema)
	p.cmd.Dir = cwd
	p.cmd.Env = childEnv("HERALD_API_KEY="+testKey, "HERALD_ENCRYPTION_KEY="+key)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		if !p.done() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	p.waitReady()
	p.must("POST", "/v1/tenants", testKey, map[string]any{"id": "acme", "name": "Acme"}, http.StatusCreated, nil)
	p.stop()
	entries, err := os.ReadDir(cwd)
	if err != nil || len(entries) != 0 {
		t.Errorf("serve --database-url left %v in its working directory (%v)", entries, err)
	}
	if _, err := os.Stat(filepath.Join(cwd, "herald-data")); !os.IsNotExist(err) {
		t.Errorf("herald-data exists: %v", err)
	}
}
