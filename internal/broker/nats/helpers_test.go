package natsdest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/internal/broker/brokertest"
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

func newType(t testing.TB, d *brokertest.Dialer, tune func(*destination.Env)) *Type {
	t.Helper()
	env := destination.Env{Dial: d.Dial, InternalDial: d.Dial}
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

// startServer starts a private server on a free port; configBody, if not empty, is written to a
// config file (with %PORT% and %DIR% replaced).
func startServer(t testing.TB, configBody string) *server {
	t.Helper()
	s := &server{t: t, port: brokertest.FreePort(t), dir: t.TempDir()}
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
