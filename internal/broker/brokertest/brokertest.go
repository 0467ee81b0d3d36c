// Package brokertest holds the test helpers every broker package (internal/broker/*) needs: a
// dialer that records (and may refuse) the connections a type opens, free ports for private
// brokers, unique names, polling with a deadline, and messages signed as the dispatcher signs
// them. It is imported by tests only.
package brokertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
)

// Dialer is a destination.Dialer for tests: it records every dial and the connections open (and
// their peak), and dials through the node's real guarded dialer with loopback allowed (as in
// --dev mode: the test brokers are on 127.0.0.1), or refuses every dial with an error set by
// Refuse. Use d.Dial as Env.Dial / Env.InternalDial.
type Dialer struct {
	base destination.Dialer

	mu     sync.Mutex
	addrs  []string
	open   int
	peak   int
	refuse error
}

// NewDialer returns a recording Dialer through the guarded dialer with loopback allowed.
func NewDialer() *Dialer {
	return &Dialer{base: httpsend.New(httpsend.Config{AllowLoopback: true}).DialContext}
}

// Through returns a recording Dialer over base (the production guard, say, which refuses
// loopback).
func Through(base destination.Dialer) *Dialer { return &Dialer{base: base} }

// Refusing returns a Dialer that refuses every dial as the guard refuses a blocked address: with
// an *httpsend.BlockedError. Nothing is dialled; the attempts are recorded.
func Refusing() *Dialer {
	d := NewDialer()
	d.refuse = errBlocked
	return d
}

// errBlocked marks a Dialer built by Refusing: each refusal names the address dialled.
var errBlocked = errors.New("blocked")

// Refuse makes every later dial fail with err (nil: dial again).
func (d *Dialer) Refuse(err error) {
	d.mu.Lock()
	d.refuse = err
	d.mu.Unlock()
}

// Blocked is the error the guard returns for a blocked address ("host:port").
func Blocked(address string) *httpsend.BlockedError {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		host = address
	}
	e := &httpsend.BlockedError{Host: host, Reason: "loopback"}
	if a, err := netip.ParseAddr(host); err == nil {
		e.Addr = a
	}
	return e
}

// Dial is the destination.Dialer.
func (d *Dialer) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, address)
	refuse := d.refuse
	d.mu.Unlock()
	if refuse == errBlocked {
		return nil, Blocked(address)
	}
	if refuse != nil {
		return nil, refuse
	}
	c, err := d.base(ctx, network, address)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.open++
	d.peak = max(d.peak, d.open)
	d.mu.Unlock()
	return &recordedConn{Conn: c, d: d}, nil
}

// Dials is how many dials were attempted (refused ones included).
func (d *Dialer) Dials() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.addrs)
}

// Counts are Dials and Open together.
func (d *Dialer) Counts() (dials, open int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.addrs), d.open
}

// Addrs are the addresses dialled, in order.
func (d *Dialer) Addrs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.addrs...)
}

// Open is how many connections dialled are not closed yet.
func (d *Dialer) Open() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.open
}

// Peak is the most connections open at once.
func (d *Dialer) Peak() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.peak
}

type recordedConn struct {
	net.Conn
	d    *Dialer
	once sync.Once
}

func (c *recordedConn) Close() error {
	c.once.Do(func() {
		c.d.mu.Lock()
		c.d.open--
		c.d.mu.Unlock()
	})
	return c.Conn.Close()
}

// FreePort is a TCP port of 127.0.0.1 free now, for a private broker the test starts (and may
// stop and start again on the same port).
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitListening waits until 127.0.0.1:port accepts connections, or fails the test after within.
func WaitListening(t testing.TB, port int, within time.Duration) {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	Eventually(t, within, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// UniqueName is prefix and a random suffix: a stream, queue or group name no other test uses.
func UniqueName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// Eventually polls f until it returns nil, or fails the test with f's last error after within.
func Eventually(t testing.TB, within time.Duration, f func() error) {
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

// Secret is the signing secret of SignedMessage.
const Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// SignedMessage builds a Message as the dispatcher does: the Standard Webhooks headers signed
// with Secret by the official library, content-type and a traceparent.
func SignedMessage(t testing.TB, id, eventType string, body []byte) *destination.Message {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(Secret)
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

// Message is SignedMessage with a fresh id.
func Message(t testing.TB, eventType string, body []byte) *destination.Message {
	t.Helper()
	return SignedMessage(t, UniqueName("msg"), eventType, body)
}

// Verify checks a message as a consumer does: the Standard Webhooks signature of body under the
// headers it came with, with Secret.
func Verify(t testing.TB, header http.Header, body []byte) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(Secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(body, header); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
}
