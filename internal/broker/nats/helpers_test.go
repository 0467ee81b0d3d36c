package natsdest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/internal/destination"
)

// sharedURL is the shared NATS server's URL; the test is skipped when HERALD_TEST_NATS_URL is unset.
func sharedURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("HERALD_TEST_NATS_URL")
	if u == "" {
		t.Skip("HERALD_TEST_NATS_URL is not set")
	}
	return u
}

func randSuffix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// recordingDialer dials loopback for real (the test brokers are on 127.0.0.1), counting dials.
type recordingDialer struct {
	mu    sync.Mutex
	addrs []string
	// refuse, if set, is returned instead of dialling.
	refuse error
}

func (d *recordingDialer) dial(ctx context.Context, network, address string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, address)
	refuse := d.refuse
	d.mu.Unlock()
	if refuse != nil {
		return nil, refuse
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, address)
}

func (d *recordingDialer) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.addrs)
}

func newType(t testing.TB, d *recordingDialer, tune func(*destination.Env)) *Type {
	t.Helper()
	env := destination.Env{Dial: d.dial, InternalDial: d.dial}
	if tune != nil {
		tune(&env)
	}
	typ := New(env)
	t.Cleanup(func() { _ = typ.Close() })
	return typ
}

// open checks settings as the API would, then opens a sender with them.
func open(t testing.TB, typ *Type, settings map[string]any) destination.Sender {
	t.Helper()
	raw, err := json.Marshal(settings)
	if err != nil {
		t.Fatal(err)
	}
	norm, ferrs := typ.Check(raw)
	if len(ferrs) > 0 {
		t.Fatalf("Check(%s): %v", raw, ferrs[0])
	}
	s, err := typ.Open(destination.Target{EndpointID: "ep_test", TenantID: "tn_test", Settings: norm})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// admin is a plain client for the test's own setup and consumption.
func admin(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("admin connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// newStream creates a uniquely named stream capturing one unique subject, deleted at cleanup.
func newStream(t testing.TB, js jetstream.JetStream, tune func(*jetstream.StreamConfig)) (stream, subject string) {
	t.Helper()
	sfx := randSuffix(t)
	cfg := jetstream.StreamConfig{Name: "HERALD_TEST_" + sfx, Subjects: []string{"herald.test." + sfx}, Storage: jetstream.FileStorage}
	if tune != nil {
		tune(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = js.DeleteStream(ctx, cfg.Name)
	})
	return cfg.Name, cfg.Subjects[0]
}

func streamMsgs(t testing.TB, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return info.State.Msgs
}

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// signed builds a Message as the dispatcher does: signed with the official Standard Webhooks
// library.
func signed(t testing.TB, id, eventType string, body []byte) *destination.Message {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Truncate(time.Second)
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

func sendCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// server is a private nats-server with JetStream, for tests that stop a broker or need auth.
type server struct {
	t      testing.TB
	port   int
	dir    string
	config string // path of a config file, or ""
	cmd    *exec.Cmd
}

func natsServerBinary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	const p = "/usr/sbin/nats-server"
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("nats-server binary not found (PATH or %s)", p)
	}
	return p
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer starts a private server on a free port; configBody, if not empty, is written to a
// config file (with %PORT% and %DIR% replaced).
func startServer(t testing.TB, configBody string) *server {
	t.Helper()
	s := &server{t: t, port: freePort(t), dir: t.TempDir()}
	if configBody != "" {
		s.config = filepath.Join(s.dir, "nats.conf")
		body := strings.NewReplacer("%PORT%", strconv.Itoa(s.port), "%DIR%", filepath.Join(s.dir, "js")).Replace(configBody)
		if err := os.WriteFile(s.config, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

func (s *server) start() {
	s.t.Helper()
	var args []string
	if s.config != "" {
		args = []string{"-c", s.config}
	} else {
		args = []string{"-js", "-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-sd", filepath.Join(s.dir, "js")}
	}
	s.cmd = exec.Command(natsServerBinary(s.t), args...)
	s.cmd.Stdout, s.cmd.Stderr = nil, nil
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start nats-server: %v", err)
	}
	// Ready when the port accepts connections.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if s.ready() {
			return
		}
		if time.Now().After(deadline) {
			s.stop()
			s.t.Fatalf("nats-server on port %d not ready after 20s", s.port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *server) ready() bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}
