package redisstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/heraldhq/herald/internal/destination"
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

// newType returns a type whose dials go through rec; it is closed at the end of the test.
func newType(t testing.TB, rec *brokertest.Dialer, maxConns int, idle time.Duration) *Type {
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
	port := brokertest.FreePort(t)
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

// outcomeErr says how o differs from the class and kind wanted, or nil.
func outcomeErr(o destination.Outcome, want destination.Class, kind string) error {
	if o.Class != want || o.ErrorKind != kind {
		return fmt.Errorf("outcome %s/%s (%s), want %s/%s", o.Class, o.ErrorKind, o.Error, want, kind)
	}
	return nil
}
