package main

// End-to-end tests of the real binary: TestMain builds herald once, and each test runs it as a child
// process on 127.0.0.1 with its own data directory, talking to it only over HTTP and signals, as an
// operator would. Receivers are httptest servers on 127.0.0.1; no traffic leaves the machine.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/webhook"
)

// heraldBin is the binary built by TestMain; empty in -short mode.
var heraldBin string

// childConfigHome is the XDG_CONFIG_HOME of every child, unless a test gives its own: an empty
// directory, so that no child reads the profiles (herald login) of the user running the tests.
var childConfigHome string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // the end-to-end tests skip themselves
	}
	dir, err := os.MkdirTemp("", "herald-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "create build directory:", err)
		os.Exit(1)
	}
	heraldBin = filepath.Join(dir, "herald")
	childConfigHome = filepath.Join(dir, "config")
	build := exec.Command("go", "build", "-o", heraldBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build herald:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

const (
	testKey     = "hk_admin_e2e_test_key_0123456789"
	readyWithin = 15 * time.Second
)

// adminKeyRe matches a generated admin key: the prefix and base64url of 32 bytes.
var adminKeyRe = regexp.MustCompile(`hk_admin_[A-Za-z0-9_-]{43}`)

func needBinary(t *testing.T) {
	t.Helper()
	if heraldBin == "" {
		t.Skip("end-to-end test of the binary; skipped in -short mode")
	}
}

// syncBuffer collects a child's output; the exec copier writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is one herald child process.
type proc struct {
	t       *testing.T
	name    string
	addr    string // where its API listens
	cmd     *exec.Cmd
	stdout  syncBuffer
	stderr  syncBuffer
	exited  chan struct{}
	waitErr error // set before exited is closed
}

// childEnv is this process's environment without any HERALD_ variable, plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			env = append(env, kv)
		}
	}
	if childConfigHome != "" {
		env = append(env, "XDG_CONFIG_HOME="+childConfigHome) // extra, later, wins
	}
	return append(env, extra...)
}

// run starts the binary with args and the extra environment variables, and kills it at cleanup if
// it is still running. It does not wait for anything.
func run(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, exited: make(chan struct{})}
	p.cmd = exec.Command(heraldBin, args...)
	p.cmd.Env = childEnv(env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if !p.done() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("stderr of %s:\n%s", p.name, p.stderr.String())
		}
	})
	return p
}

// serve runs "herald serve" on a free 127.0.0.1 port with dataDir and waits until it is ready.
func serve(t *testing.T, name, dataDir string, env []string, flags ...string) *proc {
	t.Helper()
	addr := freeAddr(t)
	args := append([]string{"serve", "--addr", addr, "--data-dir", dataDir}, flags...)
	p := run(t, name, env, args...)
	p.addr = addr
	p.waitReady()
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func (p *proc) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// logs is the child's stderr so far, for failure messages.
func (p *proc) logs() string {
	return fmt.Sprintf("\n--- stderr of %s ---\n%s--- end of stderr ---", p.name, p.stderr.String())
}

// waitReady waits until /healthz answers and the startup log line is out: everything printed
// before that line (such as a new admin key) is then in the stderr buffer.
func (p *proc) waitReady() {
	p.t.Helper()
	deadline := time.Now().Add(readyWithin)
	for {
		if p.done() {
			p.t.Fatalf("%s exited before it was ready: %v%s", p.name, p.waitErr, p.logs())
		}
		if strings.Contains(p.stderr.String(), "herald is serving") {
			if resp, err := client.Get("http://" + p.addr + "/healthz"); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s not ready on %s after %v%s", p.name, p.addr, readyWithin, p.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitExit waits up to d for the process to end and returns its exit code (-1 if a signal ended it).
func (p *proc) waitExit(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		p.t.Fatalf("%s still running %v after it was asked to stop%s", p.name, d, p.logs())
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v to %s: %v%s", sig, p.name, err, p.logs())
	}
}

// stop sends SIGTERM and requires a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	if code := p.waitExit(20 * time.Second); code != 0 {
		p.t.Fatalf("%s exited with %d after SIGTERM, want 0%s", p.name, code, p.logs())
	}
}

// client talks to herald and nothing else: loopback only, never through a proxy.
var client = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// call makes one API request with the key (none if empty) and a JSON body (none if nil).
func (p *proc) call(method, path, key string, body any) response {
	p.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			p.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+p.addr+path, rd)
	if err != nil {
		p.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v%s", method, path, err, p.logs())
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatalf("%s %s: read answer: %v%s", method, path, err, p.logs())
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// must makes a request that has to answer want, and decodes the answer into out if not nil.
func (p *proc) must(method, path, key string, body any, want int, out any) {
	p.t.Helper()
	r := p.call(method, path, key, body)
	if r.status != want {
		p.t.Fatalf("%s %s: status %d, want %d: %s%s", method, path, r.status, want, r.body, p.logs())
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			p.t.Fatalf("%s %s: decode %s: %v", method, path, r.body, err)
		}
	}
}

// waitFor polls cond every 20 ms until it holds or d has passed.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool, p *proc) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			extra := ""
			if p != nil {
				extra = p.logs()
			}
			t.Fatalf("timed out after %v waiting for %s%s", d, what, extra)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// receiver is a tenant's webhook endpoint on 127.0.0.1. It fails, holds or accepts requests by mode,
// verifies every signature, and counts what arrived by webhook-id.
type receiver struct {
	srv      *httptest.Server
	verifier *webhook.Verifier
	mode     atomic.Int32
	release  chan struct{} // closed to let held requests go
	once     sync.Once
	held     atomic.Int32 // requests being held now
	maxHeld  atomic.Int32
	badSigs  atomic.Int32

	mu       sync.Mutex
	arrivals map[string]int // every request, by webhook-id
	accepted map[string]int // requests answered 200
}

const (
	modeFail   = iota // answer 503
	modeHold          // hold until released (or the sender goes away)
	modeAccept        // answer 200
)

func newReceiver(t *testing.T, secret string, mode int32) *receiver {
	t.Helper()
	v, err := webhook.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{verifier: v, release: make(chan struct{}), arrivals: map[string]int{}, accepted: map[string]int{}}
	r.mode.Store(mode)
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	t.Cleanup(r.letGo) // runs before Close, which waits for held requests
	return r
}

func (r *receiver) url() string { return r.srv.URL + "/webhooks" }

func (r *receiver) letGo() { r.once.Do(func() { close(r.release) }) }

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	if err := r.verifier.Verify(body, req.Header); err != nil {
		r.badSigs.Add(1)
	}
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	r.arrivals[id]++
	r.mu.Unlock()
	switch r.mode.Load() {
	case modeFail:
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case modeHold:
		n := r.held.Add(1)
		for m := r.maxHeld.Load(); n > m && !r.maxHeld.CompareAndSwap(m, n); m = r.maxHeld.Load() {
		}
		defer r.held.Add(-1)
		select {
		case <-r.release:
		case <-req.Context().Done():
		}
		// Whatever is answered now, the sender that held this request never reads it: not accepted.
		w.WriteHeader(http.StatusOK)
		return
	}
	r.mu.Lock()
	r.accepted[id]++
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// counts returns how many distinct ids arrived, how many requests arrived in all, and how many of
// ids were accepted.
func (r *receiver) counts(ids []string) (distinct, total, accepted int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.arrivals {
		total += n
	}
	for _, id := range ids {
		if r.accepted[id] > 0 {
			accepted++
		}
	}
	return len(r.arrivals), total, accepted
}

// newPacedReceiver is a receiver that accepts, answering each request after minMS to
// minMS+spreadMS-1 ms, so that a kill or an outage usually lands with requests in flight.
func newPacedReceiver(t *testing.T, secret string, minMS, spreadMS int) *receiver {
	t.Helper()
	v, err := webhook.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{verifier: v, release: make(chan struct{}), arrivals: map[string]int{}, accepted: map[string]int{}}
	r.mode.Store(modeAccept)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		time.Sleep(time.Duration(minMS+rand.IntN(spreadMS)) * time.Millisecond)
		r.serve(w, req)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// storeAgrees waits up to wait until tenant acme's stats show nothing pending or dead and a
// succeeded delivery for every stored event, then checks that the store holds at least the
// acknowledged events and that every request the receiver got verified.
func storeAgrees(h *proc, rcv *receiver, acknowledged int, wait time.Duration) clusterStats {
	t := h.t
	t.Helper()
	var st clusterStats
	waitFor(t, wait, "no pending or dead deliveries in the stats", func() bool {
		h.must("GET", "/v1/tenants/acme/stats?since=1h", testKey, nil, http.StatusOK, &st)
		return st.Pending == 0 && st.Dead == 0 && st.Succeeded == st.Events
	}, h)
	if st.Events < acknowledged {
		t.Errorf("the store has %d events, fewer than the %d acknowledged", st.Events, acknowledged)
	}
	if n := rcv.badSigs.Load(); n != 0 {
		t.Errorf("%d requests had a signature that does not verify", n)
	}
	return st
}

// githubSecret is the webhook secret of the GitHub sources the tests create.
const githubSecret = "It's a Secret to Everybody"

// createGitHubSource creates a GitHub source for tenant acme and returns its ingest URL.
func createGitHubSource(p *proc) string {
	p.t.Helper()
	var src struct {
		IngestURL string `json:"ingest_url"`
	}
	p.must("POST", "/v1/tenants/acme/sources", testKey, map[string]any{
		"name": "github", "verification": map[string]any{"scheme": "github", "secrets": []string{githubSecret}},
	}, http.StatusCreated, &src)
	return src.IngestURL
}

// setUp creates tenant acme, event type a.happened and an endpoint for it with the given settings.
func setUp(p *proc, endpoint map[string]any) {
	p.t.Helper()
	p.must("POST", "/v1/tenants", testKey, map[string]any{"id": "acme", "name": "Acme Inc"}, http.StatusCreated, nil)
	p.must("POST", "/v1/event-types", testKey, map[string]any{"name": "a.happened"}, http.StatusCreated, nil)
	endpoint["event_types"] = []string{"a.happened"}
	p.must("POST", "/v1/tenants/acme/endpoints", testKey, endpoint, http.StatusCreated, nil)
}

// succeeded counts acme's succeeded deliveries through the API.
func succeeded(p *proc) int {
	p.t.Helper()
	var out struct {
		Data []struct {
			State string `json:"state"`
		} `json:"data"`
	}
	p.must("GET", "/v1/tenants/acme/deliveries?state=succeeded&limit=250", testKey, nil, http.StatusOK, &out)
	return len(out.Data)
}

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestServe_FirstStartPrintsAdminKeyOnce(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()

	first := serve(t, "first start", dir, nil)
	keys := adminKeyRe.FindAllString(first.stderr.String(), -1)
	if len(keys) != 1 {
		t.Fatalf("first start printed %d admin keys, want 1%s", len(keys), first.logs())
	}
	key := keys[0]
	first.must("GET", "/v1/tenants", key, nil, http.StatusOK, nil)

	for _, bad := range []string{"", "hk_admin_not_the_key_0123456789", testKey} {
		r := first.call("GET", "/v1/tenants", bad, nil)
		if r.status != http.StatusUnauthorized {
			t.Errorf("key %q: status %d, want 401: %s", bad, r.status, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("key %q: Content-Type %q, want application/problem+json", bad, ct)
		}
		var problem struct {
			Status int    `json:"status"`
			Detail string `json:"detail"`
		}
		if err := json.Unmarshal(r.body, &problem); err != nil || problem.Status != http.StatusUnauthorized || problem.Detail == "" {
			t.Errorf("key %q: not a 401 problem document: %s (%v)", bad, r.body, err)
		}
	}
	first.stop()

	// Only the hash is kept: the key itself is nowhere in the data directory.
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(key)) {
			t.Errorf("%s contains the admin key in clear", f.Name())
		}
	}

	second := serve(t, "second start", dir, nil)
	if again := adminKeyRe.FindAllString(second.stderr.String(), -1); len(again) != 0 {
		t.Errorf("second start printed an admin key again: %v%s", again, second.logs())
	}
	second.must("GET", "/v1/tenants", key, nil, http.StatusOK, nil)
	second.stop()
}

func TestServe_DataDirectoryIsLocked(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	owner := serve(t, "owner", dir, []string{"HERALD_API_KEY=" + testKey})

	intruder := run(t, "intruder", nil, "serve", "--addr", freeAddr(t), "--data-dir", dir, "--api-key", testKey)
	if code := intruder.waitExit(readyWithin); code == 0 {
		t.Fatalf("a second herald on the same data directory exited 0, want an error%s", intruder.logs())
	}
	if !strings.Contains(intruder.stderr.String(), "in use by another herald process") {
		t.Errorf("second herald did not say why it stopped%s", intruder.logs())
	}
	owner.must("GET", "/readyz", "", nil, http.StatusOK, nil) // the owner is unaffected
	owner.stop()
}

func TestServe_EnvironmentOverridesDefaults(t *testing.T) {
	needBinary(t)
	dir := filepath.Join(t.TempDir(), "from-env") // does not exist yet: herald creates it
	local := "http://127.0.0.1:9/webhooks"        // nothing is published, so nothing is sent there
	endpoint := map[string]any{"url": local, "event_types": []string{"a.happened"}}

	addr := freeAddr(t)
	env := []string{"HERALD_ADDR=" + addr, "HERALD_DATA_DIR=" + dir, "HERALD_API_KEY=" + testKey}
	dev := run(t, "dev from env", append(env, "HERALD_DEV=true"), "serve")
	dev.addr = addr
	dev.waitReady()
	for _, f := range []string{"herald.db", "herald.db.lock"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("HERALD_DATA_DIR not used: %v", err)
		}
	}
	if keys := adminKeyRe.FindAllString(dev.stderr.String(), -1); len(keys) != 0 {
		t.Errorf("an admin key was created although HERALD_API_KEY was set%s", dev.logs())
	}
	if !strings.Contains(dev.stderr.String(), "dev=true") {
		t.Errorf("HERALD_DEV=true did not start dev mode%s", dev.logs())
	}
	dev.must("POST", "/v1/tenants", testKey, map[string]any{"id": "acme", "name": "Acme Inc"}, http.StatusCreated, nil)
	dev.must("POST", "/v1/event-types", testKey, map[string]any{"name": "a.happened"}, http.StatusCreated, nil)
	dev.must("POST", "/v1/tenants/acme/endpoints", testKey, endpoint, http.StatusCreated, nil)
	dev.stop()

	// The same store without dev mode: the data is there, and the loopback http endpoint is refused.
	prod := run(t, "production from env", env, "serve")
	prod.addr = addr
	prod.waitReady()
	prod.must("GET", "/v1/tenants/acme", testKey, nil, http.StatusOK, nil)
	refused := func(p *proc) {
		t.Helper()
		r := p.call("POST", "/v1/tenants/acme/endpoints", testKey, endpoint)
		if r.status != http.StatusUnprocessableEntity {
			t.Fatalf("%s: endpoint %s: status %d, want 422: %s", p.name, local, r.status, r.body)
		}
		var problem struct {
			Errors []struct {
				Location string `json:"location"`
			} `json:"errors"`
		}
		if err := json.Unmarshal(r.body, &problem); err != nil || len(problem.Errors) == 0 || problem.Errors[0].Location != "body.url" {
			t.Errorf("%s: the problem does not name body.url: %s", p.name, r.body)
		}
	}
	refused(prod)
	prod.stop()

	// A flag beats its variable.
	other := freeAddr(t)
	flags := run(t, "flags over env", append(env, "HERALD_DEV=true"), "serve", "--addr", other, "--dev=false")
	flags.addr = other
	flags.waitReady()
	refused(flags)
	flags.stop()
}

func TestServe_SIGTERMKeepsPendingDeliveries(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	env := []string{"HERALD_API_KEY=" + testKey}
	secret := newSecret(t)
	rcv := newReceiver(t, secret, modeFail)

	h := serve(t, "before SIGTERM", dir, env, "--dev")
	setUp(h, map[string]any{"url": rcv.url(), "secret": secret, "retry_schedule": []int{0, 1, 1, 1, 1, 1}})
	var ids []string
	for range 10 {
		var out struct {
			ID         string `json:"id"`
			Deliveries int    `json:"deliveries"`
		}
		h.must("POST", "/v1/tenants/acme/events", testKey, map[string]any{"type": "a.happened", "data": map[string]any{}}, http.StatusAccepted, &out)
		if out.Deliveries != 1 {
			t.Fatalf("publish created %d deliveries, want 1", out.Deliveries)
		}
		ids = append(ids, out.ID)
	}
	// Every event has been tried and refused once: all ten deliveries are pending a retry.
	waitFor(t, 10*time.Second, "a first attempt of every event", func() bool {
		distinct, _, _ := rcv.counts(ids)
		return distinct == len(ids)
	}, h)

	start := time.Now()
	h.stop() // SIGTERM, exit 0 within 20 s
	t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(h.stderr.String(), "shutting down") {
		t.Errorf("no shutdown message on SIGTERM%s", h.logs())
	}
	if _, _, accepted := rcv.counts(ids); accepted != 0 {
		t.Fatalf("%d events accepted while the receiver was failing", accepted)
	}

	rcv.mode.Store(modeAccept)
	h = serve(t, "after SIGTERM", dir, env, "--dev")
	waitFor(t, 15*time.Second, "every event delivered after the restart", func() bool {
		_, _, accepted := rcv.counts(ids)
		return accepted == len(ids)
	}, h)
	waitFor(t, 10*time.Second, "ten succeeded deliveries in the API", func() bool { return succeeded(h) == len(ids) }, h)
	if n := rcv.badSigs.Load(); n != 0 {
		t.Errorf("%d requests had a signature that does not verify", n)
	}
	_, total, _ := rcv.counts(ids)
	t.Logf("%d requests for %d events", total, len(ids))
	h.stop()
}

func TestServe_SIGKILLRedeliversInFlight(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	env := []string{"HERALD_API_KEY=" + testKey}
	secret := newSecret(t)
	rcv := newReceiver(t, secret, modeHold)

	h := serve(t, "before SIGKILL", dir, env, "--dev")
	setUp(h, map[string]any{"url": rcv.url(), "secret": secret, "max_concurrency": 5})
	events := make([]map[string]any, 20)
	for i := range events {
		events[i] = map[string]any{"type": "a.happened", "data": map[string]any{"n": i}}
	}
	var out struct {
		Events []struct {
			ID         string `json:"id"`
			Deliveries int    `json:"deliveries"`
		} `json:"events"`
	}
	h.must("POST", "/v1/tenants/acme/events/batch", testKey, map[string]any{"events": events}, http.StatusAccepted, &out)
	if len(out.Events) != len(events) {
		t.Fatalf("batch answered %d events, want %d", len(out.Events), len(events))
	}
	var ids []string
	for _, e := range out.Events {
		if e.Deliveries != 1 {
			t.Fatalf("event %s has %d deliveries, want 1", e.ID, e.Deliveries)
		}
		ids = append(ids, e.ID)
	}

	waitFor(t, 10*time.Second, "5 requests held by the receiver", func() bool { return rcv.held.Load() == 5 }, h)
	h.signal(syscall.SIGKILL)
	if code := h.waitExit(10 * time.Second); code != -1 {
		t.Fatalf("exit code %d after SIGKILL, want -1 (killed by a signal)", code)
	}
	ws, ok := h.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("herald was not ended by SIGKILL: %v", h.cmd.ProcessState)
	}
	rcv.mode.Store(modeAccept)
	rcv.letGo()
	if maxHeld := rcv.maxHeld.Load(); maxHeld > 5 {
		t.Errorf("%d requests in flight at once to an endpoint with max_concurrency 5", maxHeld)
	}

	h = serve(t, "after SIGKILL", dir, env, "--dev")
	waitFor(t, 15*time.Second, "every event delivered after the restart", func() bool {
		_, _, accepted := rcv.counts(ids)
		return accepted == len(ids)
	}, h)
	waitFor(t, 10*time.Second, "twenty succeeded deliveries in the API", func() bool { return succeeded(h) == len(ids) }, h)
	if n := rcv.badSigs.Load(); n != 0 {
		t.Errorf("%d requests had a signature that does not verify", n)
	}
	_, total, _ := rcv.counts(ids)
	t.Logf("%d requests for %d events: %d duplicates (the 5 held when herald was killed are expected again)", total, len(ids), total-len(ids))
	h.stop()
}

func TestVersionAndBadFlags(t *testing.T) {
	needBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	cmd := exec.CommandContext(ctx, heraldBin, "version")
	cmd.Env = childEnv()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("herald version: %v", err)
	}
	if want := "herald " + node.Version + "\n"; string(out) != want {
		t.Errorf("herald version printed %q, want %q", out, want)
	}

	for _, c := range []struct {
		name  string
		env   []string
		args  []string
		wants []string
	}{
		{"bogus --log-format", nil, []string{"--log-format", "bogus"}, []string{"--log-format", "text or json", `"bogus"`}},
		{"bogus HERALD_LOG_FORMAT", []string{"HERALD_LOG_FORMAT=bogus"}, nil, []string{"--log-format", "text or json", `"bogus"`}},
		{"bogus --log-level", nil, []string{"--log-level", "loud"}, []string{"--log-level"}},
		{"bogus HERALD_DEV", []string{"HERALD_DEV=maybe"}, nil, []string{"HERALD_DEV", "maybe"}},
		{"short --api-key", nil, []string{"--api-key", "short"}, []string{"at least 16 characters"}},
	} {
		args := append([]string{"serve", "--addr", freeAddr(t), "--data-dir", t.TempDir()}, c.args...)
		cmd := exec.CommandContext(ctx, heraldBin, args...)
		cmd.Env = childEnv(c.env...)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Errorf("%s: want a non-zero exit, got %v; output:\n%s", c.name, err, out)
			continue
		}
		for _, w := range c.wants {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s: output does not mention %s:\n%s", c.name, w, out)
			}
		}
	}
}
