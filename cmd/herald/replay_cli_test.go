package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/webhook"
)

// replayRecorder is a webhook endpoint that answers a settable status and keeps every request's body
// and headers by webhook-id.
type replayRecorder struct {
	srv    *httptest.Server
	status atomic.Int32

	mu     sync.Mutex
	bodies map[string][]byte
	hdrs   map[string]http.Header
	total  int
}

func newReplayRecorder(t *testing.T, status int) *replayRecorder {
	t.Helper()
	r := &replayRecorder{bodies: map[string][]byte{}, hdrs: map[string]http.Header{}}
	r.status.Store(int32(status))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		id := req.Header.Get(webhook.HeaderID)
		r.mu.Lock()
		r.bodies[id], r.hdrs[id] = b, req.Header.Clone()
		r.total++
		r.mu.Unlock()
		w.WriteHeader(int(r.status.Load()))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *replayRecorder) url() string { return r.srv.URL + "/webhooks" }

// snapshot returns copies of the bodies and headers received so far, and the request count.
func (r *replayRecorder) snapshot() (map[string][]byte, map[string]http.Header, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, h := map[string][]byte{}, map[string]http.Header{}
	for k, v := range r.bodies {
		b[k] = v
	}
	for k, v := range r.hdrs {
		h[k] = v
	}
	return b, h, r.total
}

// deliveriesIn counts acme's deliveries in a state through the API.
func deliveriesIn(p *proc, state string) int {
	p.t.Helper()
	var out struct {
		Data []json.RawMessage `json:"data"`
	}
	p.must("GET", "/v1/tenants/acme/deliveries?limit=250&state="+state, testKey, nil, http.StatusOK, &out)
	return len(out.Data)
}

// publish publishes n events of type a.happened for acme, each created with one delivery.
func publishN(p *proc, n int, data func(i int) map[string]any) []string {
	p.t.Helper()
	var ids []string
	for i := range n {
		var out struct {
			ID         string `json:"id"`
			Deliveries int    `json:"deliveries"`
		}
		p.must("POST", "/v1/tenants/acme/events", testKey, map[string]any{"type": "a.happened", "data": data(i)}, http.StatusAccepted, &out)
		if out.Deliveries != 1 {
			p.t.Fatalf("publish created %d deliveries, want 1", out.Deliveries)
		}
		ids = append(ids, out.ID)
	}
	return ids
}

func apiEnv(p *proc) []string {
	return []string{"HERALD_API_URL=http://" + p.addr, "HERALD_API_KEY=" + testKey}
}

// replay runs herald replay against p and requires the exit status want.
func runReplay(t *testing.T, p *proc, want int, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, code := runCLI(t, "", apiEnv(p), append([]string{"replay", "--tenant", "acme"}, args...)...)
	if code != want {
		t.Fatalf("replay %v: exit %d, want %d; stdout %q, stderr %q%s", args, code, want, stdout, stderr, p.logs())
	}
	return stdout, stderr
}

func TestReplay_RequeuesDeadDeliveries(t *testing.T) {
	needBinary(t)
	t.Parallel()
	secret := newSecret(t)
	rcv := newReceiver(t, secret, modeFail)
	h := serve(t, "serve", t.TempDir(), []string{"HERALD_API_KEY=" + testKey}, "--dev")
	// Two attempts a second apart, then dead.
	setUp(h, map[string]any{"url": rcv.url(), "secret": secret, "retry_schedule": []int{0, 1}})
	ids := publishN(h, 5, func(i int) map[string]any { return map[string]any{"n": i} })
	waitFor(t, 15*time.Second, "five dead deliveries", func() bool { return deliveriesIn(h, "dead") == 5 }, h)

	out, _ := runReplay(t, h, 0, "--dry-run")
	if !strings.Contains(out, "dry run: 5 deliveries match (5 events)") {
		t.Errorf("dry run said %q, want 5 matching deliveries", out)
	}
	out, _ = runReplay(t, h, 0, "--dry-run", "--state", "succeeded")
	if !strings.Contains(out, "dry run: 0 deliveries match") {
		t.Errorf("dry run of succeeded deliveries said %q, want 0", out)
	}
	out, _ = runReplay(t, h, 0, "--dry-run", "--since", "1h", "--until", "30m")
	if !strings.Contains(out, "dry run: 0 deliveries match") {
		t.Errorf("dry run of deliveries created between 1h and 30m ago said %q, want 0", out)
	}
	if n := deliveriesIn(h, "dead"); n != 5 {
		t.Fatalf("after dry runs %d deliveries are dead, want all 5 still", n)
	}

	rcv.mode.Store(modeAccept)
	out, _ = runReplay(t, h, 0, "--since", "1h", "--event-type", "a.happened")
	if !strings.Contains(out, "replay: matched 5 deliveries, queued 5") {
		t.Errorf("replay said %q, want 5 matched and queued", out)
	}
	waitFor(t, 15*time.Second, "every event accepted after the replay", func() bool {
		_, _, accepted := rcv.counts(ids)
		return accepted == len(ids)
	}, h)
	waitFor(t, 10*time.Second, "five succeeded deliveries", func() bool { return succeeded(h) == 5 }, h)
	if n := rcv.badSigs.Load(); n != 0 {
		t.Errorf("%d requests had a signature that does not verify", n)
	}

	// Nothing is dead any more.
	out, _ = runReplay(t, h, 0)
	if !strings.Contains(out, "replay: matched 0 deliveries, queued 0") {
		t.Errorf("second replay said %q, want nothing matched", out)
	}

	// Misuse and refusals.
	for _, c := range []struct {
		name  string
		args  []string
		code  int
		wants string
	}{
		{"unknown tenant", []string{"replay", "--tenant", "nobody"}, 1, "tenant nobody not found"},
		{"bad state", []string{"replay", "--tenant", "acme", "--state", "lost"}, 2, `--state "lost"`},
		{"bad since", []string{"replay", "--tenant", "acme", "--since", "yesterday"}, 2, `--since "yesterday"`},
		{"bad --to", []string{"replay", "--tenant", "acme", "--to", "ftp://x"}, 2, "--to"},
		{"secret without --to", []string{"replay", "--tenant", "acme", "--secret", secret}, 2, "--secret is for --to"},
		{"no tenant", []string{"replay"}, 2, "missing --tenant"},
	} {
		_, errOut, code := runCLI(t, "", apiEnv(h), c.args...)
		if code != c.code || !strings.Contains(errOut, c.wants) {
			t.Errorf("%s: exit %d (want %d), stderr %q (want %q)", c.name, code, c.code, errOut, c.wants)
		}
	}
	h.stop()
}

var generatedSecretRe = regexp.MustCompile(`whsec_[A-Za-z0-9+/=]+`)

func TestReplay_ToURLSendsSignedEvents(t *testing.T) {
	needBinary(t)
	t.Parallel()
	// Herald's endpoint refuses once and the deliveries die; its replayRecorder keeps what Herald sent.
	orig := newReplayRecorder(t, http.StatusServiceUnavailable)
	h := serve(t, "serve", t.TempDir(), []string{"HERALD_API_KEY=" + testKey}, "--dev")
	setUp(h, map[string]any{"url": orig.url(), "retry_schedule": []int{0}})
	ids := publishN(h, 3, func(i int) map[string]any {
		return map[string]any{"n": i, "html": "<b>&amp;</b>", "text": `a "quoted" \u003c backslash`}
	})
	waitFor(t, 15*time.Second, "three dead deliveries", func() bool { return deliveriesIn(h, "dead") == 3 }, h)
	sent, _, _ := orig.snapshot()

	dev := newReplayRecorder(t, http.StatusOK)
	secret := newSecret(t)

	out, _ := runReplay(t, h, 0, "--to", dev.url(), "--dry-run")
	if !strings.Contains(out, "would send 3 events to "+dev.url()) {
		t.Errorf("dry run said %q", out)
	}
	if _, _, n := dev.snapshot(); n != 0 {
		t.Fatalf("a dry run sent %d requests", n)
	}

	out, errOut := runReplay(t, h, 0, "--to", dev.url(), "--secret", secret)
	if !strings.Contains(out, "matched 3 deliveries (3 events), sent 3 to "+dev.url()+", failed 0") {
		t.Errorf("replay --to said %q", out)
	}
	if !strings.Contains(errOut, "replay: 3/3 events, 0 failed") {
		t.Errorf("no progress line on a standard error that is not a terminal: %q", errOut)
	}
	got, hdrs, n := dev.snapshot()
	if n != 3 || len(got) != 3 {
		t.Fatalf("the receiver got %d requests for %d ids, want 3 and 3", n, len(got))
	}
	v, err := webhook.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		body, ok := got[id]
		if !ok {
			t.Errorf("event %s was not sent", id)
			continue
		}
		if err := v.Verify(body, hdrs[id]); err != nil {
			t.Errorf("event %s: signature does not verify with --secret: %v", id, err)
		}
		if !bytes.Equal(body, sent[id]) {
			t.Errorf("event %s: replayed body differs from the one Herald sent:\n got %s\nwant %s", id, body, sent[id])
		}
		if ct := hdrs[id].Get("Content-Type"); ct != "application/json" {
			t.Errorf("event %s: Content-Type %q", id, ct)
		}
	}
	if n := deliveriesIn(h, "dead"); n != 3 {
		t.Errorf("replay --to changed Herald's deliveries: %d dead, want 3", n)
	}

	// Without --secret a new one is printed, and it verifies what was sent.
	gen := newReplayRecorder(t, http.StatusNoContent)
	_, errOut = runReplay(t, h, 0, "--to", gen.url(), "--event-type", "a.happened")
	printed := generatedSecretRe.FindString(errOut)
	if printed == "" {
		t.Fatalf("no generated secret on standard error: %q", errOut)
	}
	gv, err := webhook.NewVerifier(printed)
	if err != nil {
		t.Fatalf("printed secret %q: %v", printed, err)
	}
	got, hdrs, _ = gen.snapshot()
	if len(got) != 3 {
		t.Fatalf("the receiver got %d events, want 3", len(got))
	}
	for id, body := range got {
		if err := gv.Verify(body, hdrs[id]); err != nil {
			t.Errorf("event %s: does not verify with the printed secret: %v", id, err)
		}
	}

	// A receiver that fails: every failure is counted by status, and the exit status is 1.
	down := newReplayRecorder(t, http.StatusServiceUnavailable)
	out, errOut = runReplay(t, h, 1, "--to", down.url(), "--secret", secret)
	if !strings.Contains(out, "sent 0 to "+down.url()+", failed 3 (503: 3)") {
		t.Errorf("failing receiver: summary %q", out)
	}
	if !strings.Contains(errOut, "3 of 3 events were not accepted") {
		t.Errorf("failing receiver: stderr %q", errOut)
	}
	// Nothing listens there: connection failures.
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	out, _ = runReplay(t, h, 1, "--to", closed.URL, "--secret", secret, "--timeout", "2s")
	if !strings.Contains(out, "failed 3 (connection: 3)") {
		t.Errorf("closed port: summary %q", out)
	}
	h.stop()
}

// On a terminal the bar is redrawn in place and failures print above it; elsewhere a plain line.
func TestReplay_ProgressOutput(t *testing.T) {
	t.Parallel()
	var tty bytes.Buffer
	p := &replayProgress{w: &tty, tty: true, total: 4, start: time.Now()}
	p.update(1, 0)
	p.note("event evt_1: post: answered 503 Service Unavailable")
	p.update(4, 1)
	p.done()
	got := tty.String()
	for _, want := range []string{
		"\r\033[K[=======                       ] 1/4  25% 0 failed",
		"\r\033[Kreplay: event evt_1: post: answered 503 Service Unavailable\n",
		"\r\033[K[==============================] 4/4 100% 1 failed",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("terminal output %q does not contain %q", got, want)
		}
	}
	if !strings.HasSuffix(got, "\n") {
		t.Errorf("terminal output does not end the bar's line: %q", got)
	}

	var plain bytes.Buffer
	p = newReplayProgress(&plain, 2, time.Now())
	p.update(1, 0) // within the interval: no line
	p.update(2, 0)
	p.done()
	lines := strings.Split(strings.TrimSpace(plain.String()), "\n")
	if len(lines) != 2 || lines[0] != "replay: sending 2 events" || !strings.HasPrefix(lines[1], "replay: 2/2 events, 0 failed, ") || strings.Contains(plain.String(), "\r") {
		t.Errorf("plain output: %q", plain.String())
	}
}
