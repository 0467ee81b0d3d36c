package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/webhook"
)

// listenSink is the developer's local app: it keeps every request, to check later against the
// secret herald listen prints.
type listenSink struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []sinkRequest
}

type sinkRequest struct {
	header http.Header
	body   []byte
}

func newListenSink(t *testing.T) *listenSink {
	t.Helper()
	s := &listenSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.got = append(s.got, sinkRequest{header: r.Header.Clone(), body: body})
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *listenSink) requests() []sinkRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// cutProxy stands between herald listen and the API, so that a test can drop the stream (and
// refuse reconnections) while Herald goes on running.
type cutProxy struct {
	t      *testing.T
	ln     net.Listener
	target string
	mu     sync.Mutex
	open   bool
	conns  []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutProxy{t: t, ln: ln, target: target, open: true}
	t.Cleanup(func() { _ = ln.Close(); c.cut() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			if !c.open {
				c.mu.Unlock()
				_ = in.Close()
				continue
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				c.mu.Unlock()
				_ = in.Close()
				continue
			}
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); _ = out.Close() }()
			go func() { _, _ = io.Copy(in, out); _ = in.Close() }()
		}
	}()
	return c
}

func (c *cutProxy) addr() string { return c.ln.Addr().String() }

// cut drops every connection and refuses new ones until restore.
func (c *cutProxy) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open = false
	for _, conn := range c.conns {
		_ = conn.Close()
	}
	c.conns = nil
}

func (c *cutProxy) restore() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open = true
}

var listenSecretRe = regexp.MustCompile(`signing secret: (whsec_\S+) \(([^)]*)\)`)

// The walkthrough of issue 7: herald serve, herald listen forwarding to a local app, events
// published; the app verifies every webhook with the secret listen printed. Herald restarts, and
// later the network drops the stream for a while: each time listen reconnects and resumes after
// the last event it saw, so that the app gets every event once, in order, the ones published
// while it was cut off included.
func TestListen_ForwardsSignedEventsAndResumesAfterARestart(t *testing.T) {
	needBinary(t)
	t.Parallel()
	dataDir := t.TempDir()
	env := []string{"HERALD_API_KEY=" + testKey}
	p := serve(t, "serve", dataDir, env, "--dev")
	p.must("POST", "/v1/tenants", testKey, map[string]any{"id": "acme", "name": "Acme Inc"}, http.StatusCreated, nil)
	for _, et := range []string{"invoice.paid", "invoice.voided", "customer.created"} {
		p.must("POST", "/v1/event-types", testKey, map[string]any{"name": et}, http.StatusCreated, nil)
	}
	var key struct {
		Key string `json:"key"`
	}
	p.must("POST", "/v1/api-keys", testKey, map[string]any{"role": "tenant", "tenant_id": "acme"}, http.StatusCreated, &key)
	publish := func(p *proc, id, typ string) {
		t.Helper()
		p.must("POST", "/v1/tenants/acme/events", key.Key, map[string]any{"id": id, "type": typ, "data": map[string]any{"n": id}}, http.StatusAccepted, nil)
	}
	publish(p, "before", "invoice.paid") // published before listen starts: not forwarded

	sink := newListenSink(t)
	cfgDir := t.TempDir()
	listenEnv := []string{"XDG_CONFIG_HOME=" + cfgDir, "HERALD_API_KEY=" + key.Key}
	proxy := newCutProxy(t, p.addr)
	args := []string{"listen", "--forward-to", sink.srv.URL + "/webhooks", "--events", "invoice.*", "--tenant", "acme", "--api-url", "http://" + proxy.addr()}
	l := run(t, "listen", listenEnv, args...)
	waitFor(t, 10*time.Second, "listen to connect", func() bool { return strings.Contains(l.stdout.String(), "connected") }, l)
	m := listenSecretRe.FindStringSubmatch(l.stdout.String())
	if m == nil {
		t.Fatalf("listen printed no secret:\n%s", l.stdout.String())
	}
	secret := m[1]
	file := filepath.Join(cfgDir, "herald", "listen-secret")
	if m[2] != "new, kept in "+file {
		t.Fatalf("secret source = %q, want it new in %s", m[2], file)
	}
	if b, err := os.ReadFile(file); err != nil || strings.TrimSpace(string(b)) != secret {
		t.Fatalf("the secret file holds %q (%v), want the printed secret", b, err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the secret file's mode = %v (%v), want 0600", fi.Mode().Perm(), err)
	}

	publish(p, "i1", "invoice.paid")
	publish(p, "c1", "customer.created")
	publish(p, "i2", "invoice.voided")
	waitFor(t, 10*time.Second, "i1 and i2 to be forwarded", func() bool { return len(sink.requests()) >= 2 }, l)

	// Herald restarts on the same address and data directory; events are published as soon as
	// it is up, while listen may still be waiting to reconnect.
	p.stop()
	waitFor(t, 10*time.Second, "listen to see the stream drop", func() bool { return strings.Contains(l.stdout.String(), "stream dropped") }, l)
	p2 := run(t, "serve-again", env, "serve", "--addr", p.addr, "--data-dir", dataDir, "--dev")
	p2.addr = p.addr
	p2.waitReady()
	publish(p2, "i3", "invoice.paid")
	publish(p2, "c2", "customer.created")
	publish(p2, "i4", "invoice.paid")
	waitFor(t, 20*time.Second, "i3 and i4 to be forwarded", func() bool { return len(sink.requests()) >= 4 }, l)

	// The network drops the stream while Herald runs on; events are published while listen
	// cannot reconnect, and reach it once it can.
	connects := strings.Count(l.stdout.String(), "connected;")
	drops := strings.Count(l.stdout.String(), "stream dropped")
	proxy.cut()
	waitFor(t, 10*time.Second, "listen to retry in vain", func() bool { return strings.Count(l.stdout.String(), "stream dropped") >= drops+2 }, l)
	publish(p2, "i5", "invoice.paid")
	publish(p2, "c3", "customer.created")
	publish(p2, "i6", "invoice.voided")
	time.Sleep(300 * time.Millisecond)
	if n := len(sink.requests()); n != 4 {
		t.Fatalf("%d webhooks forwarded while the stream was cut, want 4", n)
	}
	proxy.restore()
	waitFor(t, 20*time.Second, "i5 and i6 to be forwarded", func() bool { return len(sink.requests()) >= 6 }, l)
	if n := strings.Count(l.stdout.String(), "connected;"); n != connects+1 {
		t.Fatalf("listen connected %d times after the cut, want once", n-connects)
	}
	time.Sleep(700 * time.Millisecond) // more than three polls of the stream: nothing else comes

	v, err := webhook.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range sink.requests() {
		if err := v.Verify(r.body, r.header); err != nil {
			t.Errorf("webhook %s: the signature does not verify with the printed secret: %v", r.header.Get("webhook-id"), err)
		}
		var env struct {
			ID   string          `json:"id"`
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(r.body, &env); err != nil || env.ID != r.header.Get("webhook-id") || string(env.Data) != `{"n":"`+env.ID+`"}` {
			t.Errorf("webhook body %s (%v) does not match its webhook-id %s", r.body, err, r.header.Get("webhook-id"))
		}
		ids = append(ids, env.ID)
	}
	if want := []string{"i1", "i2", "i3", "i4", "i5", "i6"}; !slices.Equal(ids, want) {
		t.Fatalf("forwarded %v, want %v: each invoice event once, in order\n%s", ids, want, l.stdout.String())
	}
	out := l.stdout.String()
	for _, want := range []string{"i1 invoice.paid -> 204", "i2 invoice.voided -> 204", "i4 invoice.paid -> 204", "reconnecting in",
		"the server closed the stream: the server is shutting down (shutdown)"} {
		if !strings.Contains(out, want) {
			t.Errorf("listen's output lacks %q:\n%s", want, out)
		}
	}

	t.Logf("listen's output:\n%s", out)
	l.signal(syscall.SIGTERM)
	if code := l.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("listen exited with %d after SIGTERM%s", code, l.logs())
	}
	// The next run signs with the same secret.
	again := run(t, "listen-again", listenEnv, args...)
	waitFor(t, 10*time.Second, "the second listen to connect", func() bool { return strings.Contains(again.stdout.String(), "connected") }, again)
	if m := listenSecretRe.FindStringSubmatch(again.stdout.String()); m == nil || m[1] != secret || m[2] != "kept in "+file {
		t.Fatalf("the second run printed %q, want the same secret, kept in %s", again.stdout.String(), file)
	}
	again.stop()
}

func TestListen_RefusedStreamEndsWithTheProblem(t *testing.T) {
	needBinary(t)
	t.Parallel()
	p := serve(t, "serve", t.TempDir(), []string{"HERALD_API_KEY=" + testKey}, "--dev")
	p.must("POST", "/v1/tenants", testKey, map[string]any{"id": "acme", "name": "Acme Inc"}, http.StatusCreated, nil)
	base := []string{"XDG_CONFIG_HOME=" + t.TempDir()}
	for name, c := range map[string]struct {
		env  []string
		args []string
		want string
	}{
		"wrong key":     {[]string{"HERALD_API_KEY=hk_admin_wrong"}, []string{"--tenant", "acme"}, "401"},
		"no tenant":     {[]string{"HERALD_API_KEY=" + testKey}, []string{"--tenant", "nobody"}, "404"},
		"bad pattern":   {[]string{"HERALD_API_KEY=" + testKey}, []string{"--tenant", "acme", "--events", "Not A Type"}, "query.events[0]"},
		"missing flags": {[]string{"HERALD_API_KEY=" + testKey}, nil, "missing --tenant"},
	} {
		args := append([]string{"listen", "--forward-to", "http://127.0.0.1:9/hooks", "--api-url", "http://" + p.addr}, c.args...)
		l := run(t, "listen "+name, append(slices.Clone(base), c.env...), args...)
		if code := l.waitExit(10 * time.Second); code == 0 || !strings.Contains(l.stderr.String(), c.want) {
			t.Errorf("%s: exit %d, stderr %q; want a failure naming %q", name, code, l.stderr.String(), c.want)
		}
	}
}

// With --max-listen-streams-per-key 1 and the key's one stream taken, herald listen shows the
// server's 429, waits its Retry-After, and connects once the other stream has ended.
func TestListen_WaitsWhenTheKeyHasTooManyStreams(t *testing.T) {
	needBinary(t)
	t.Parallel()
	p := serve(t, "serve", t.TempDir(), []string{"HERALD_API_KEY=" + testKey}, "--dev", "--max-listen-streams-per-key", "1")
	p.must("POST", "/v1/tenants", testKey, map[string]any{"id": "acme", "name": "Acme Inc"}, http.StatusCreated, nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+p.addr+"/v1/tenants/acme/listen", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	held, err := http.DefaultClient.Do(req)
	if err != nil || held.StatusCode != http.StatusOK {
		t.Fatalf("the first stream: %v %v", held, err)
	}

	args := []string{"listen", "--forward-to", "http://127.0.0.1:9/hooks", "--tenant", "acme", "--api-url", "http://" + p.addr}
	l := run(t, "listen", []string{"XDG_CONFIG_HOME=" + t.TempDir(), "HERALD_API_KEY=" + testKey}, args...)
	waitFor(t, 10*time.Second, "listen to be refused", func() bool {
		return strings.Contains(l.stdout.String(), "429 Too Many Requests: ") && strings.Contains(l.stdout.String(), "reconnecting in 5s")
	}, l)
	if !strings.Contains(l.stdout.String(), "this API key already has 1 open") || strings.Contains(l.stdout.String(), "connected;") {
		t.Fatalf("listen's output does not show the server's reason, or it connected:\n%s", l.stdout.String())
	}
	cancel()
	_ = held.Body.Close()
	waitFor(t, 20*time.Second, "listen to connect once the other stream ended", func() bool { return strings.Contains(l.stdout.String(), "connected;") }, l)
	l.stop()
}
