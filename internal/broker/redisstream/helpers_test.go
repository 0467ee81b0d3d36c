package redisstream

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
)

// sharedRedis returns the address and db of the shared test server, skipping when
// HERALD_TEST_REDIS_URL is unset.
func sharedRedis(t testing.TB) (string, int) {
	t.Helper()
	u := os.Getenv("HERALD_TEST_REDIS_URL")
	if u == "" {
		t.Skip("HERALD_TEST_REDIS_URL is not set")
	}
	o, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("HERALD_TEST_REDIS_URL: %v", err)
	}
	return o.Addr, o.DB
}

// consumer is a plain client of the test, reading what the destination wrote.
func consumer(t testing.TB, addr string, db int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, DB: db, Protocol: 2})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func uniqueName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// dialRecorder wraps the real guarded dialer of webhooks (loopback allowed, as in --dev mode),
// counting the dials and the connections open.
type dialRecorder struct {
	dial  destination.Dialer
	mu    sync.Mutex
	dials []string
	open  int
	peak  int
}

func newDialRecorder(allowLoopback bool) *dialRecorder {
	c := httpsend.New(httpsend.Config{AllowLoopback: allowLoopback})
	return &dialRecorder{dial: c.DialContext}
}

func (r *dialRecorder) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	r.mu.Lock()
	r.dials = append(r.dials, addr)
	r.mu.Unlock()
	c, err := r.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.open++
	r.peak = max(r.peak, r.open)
	r.mu.Unlock()
	return &recordedConn{Conn: c, r: r}, nil
}

func (r *dialRecorder) counts() (dials, open int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.dials), r.open
}

type recordedConn struct {
	net.Conn
	r    *dialRecorder
	once sync.Once
}

func (c *recordedConn) Close() error {
	c.once.Do(func() {
		c.r.mu.Lock()
		c.r.open--
		c.r.mu.Unlock()
	})
	return c.Conn.Close()
}

// newType returns a type whose dials go through rec; it is closed at the end of the test.
func newType(t testing.TB, rec *dialRecorder, maxConns int, idle time.Duration) *Type {
	t.Helper()
	typ := New(destination.Env{Dial: rec.Dial, InternalDial: rec.Dial, MaxConnections: maxConns, IdleTimeout: idle})
	t.Cleanup(func() { _ = typ.Close() })
	return typ
}

func settingsJSON(t testing.TB, m map[string]any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// open checks the settings as the API would, then opens a sender for them.
func open(t testing.TB, typ *Type, m map[string]any) *Sender {
	t.Helper()
	norm, errs := typ.Check(settingsJSON(t, m))
	if errs != nil {
		t.Fatalf("Check(%v): %v", m, errs)
	}
	s, err := typ.Open(destination.Target{EndpointID: "ep_test", TenantID: "tn_test", Settings: norm})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s.(*Sender)
}

const testSecretRaw = "a test signing secret, 32 bytes!"

func testSecret() string { return "whsec_" + base64.StdEncoding.EncodeToString([]byte(testSecretRaw)) }

// signedMessage builds a Message as the dispatcher does: the Standard Webhooks headers signed by
// the official library.
func signedMessage(t testing.TB, eventType string, body []byte) *destination.Message {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(testSecret())
	if err != nil {
		t.Fatal(err)
	}
	id := uniqueName("msg")
	ts := time.Now()
	sig, err := wh.Sign(id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	h.Set("webhook-signature", sig)
	h.Set("content-type", "application/json")
	h.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	return &destination.Message{ID: id, EventType: eventType, Timestamp: ts, Body: body, Header: h}
}

// privateRedis is a redis-server of the test's own, on a free port, that the test may stop.
type privateRedis struct {
	t    testing.TB
	port int
	args []string
	cmd  *exec.Cmd
}

func startPrivateRedis(t testing.TB, extra ...string) *privateRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	p := &privateRedis{t: t, port: port}
	p.args = append([]string{"--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
		"--bind", "127.0.0.1", "--dir", t.TempDir()}, extra...)
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *privateRedis) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }

func (p *privateRedis) start() {
	p.t.Helper()
	cmd := exec.Command("redis-server", p.args...)
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start redis-server: %v", err)
	}
	p.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: p.addr(), Protocol: 2, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		var rerr redis.Error
		if err == nil || errors.As(err, &rerr) { // an error reply (NOAUTH) is an answer too
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("private redis-server on %s did not answer: %v", p.addr(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *privateRedis) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.cmd = nil
}

// eventually polls f until it returns nil or the deadline passes.
func eventually(t testing.TB, within time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func outcomeErr(o destination.Outcome, want destination.Class, kind string) error {
	if o.Class != want || o.ErrorKind != kind {
		return fmt.Errorf("outcome %s/%s (%s), want %s/%s", o.Class, o.ErrorKind, o.Error, want, kind)
	}
	return nil
}
