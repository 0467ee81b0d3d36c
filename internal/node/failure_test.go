package node_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/internal/node"
)

// The proving ground (issue 6): one test per way a receiver can fail, each against a real socket
// on 127.0.0.1. Every case publishes one event and checks what Herald recorded for the first
// attempt (status, error class, excerpt), what it does next (retry at a time, dead, disabled),
// and that closing the node leaves no goroutine behind. docs/failure-modes.md lists the cases.
//
// The cases run one after another and the test is not parallel: the goroutine count is global
// to the process, so it can only say something while nothing else is running.

// failureRetry is the endpoints' schedule: the first attempt at once, the next after 600 s
// (±20 % jitter), far enough away that it never happens during the test and easy to tell apart
// from a Retry-After.
var failureRetry = []int{0, 600}

const (
	retryMin = 480 * time.Second // 600 s − 20 %
	retryMax = 720 * time.Second // 600 s + 20 %
)

// expect is what Herald must have recorded after the first attempt.
type expect struct {
	state       string        // the delivery's state: pending (retry scheduled), succeeded or dead
	status      int           // the attempt's status code; 0 when no response arrived
	kind        string        // the attempt's error_kind; "" for a clean success
	success     bool          // the attempt counts as delivered
	errHas      string        // a part of the attempt's error message, if not ""
	retryAfter  time.Duration // pending: the next attempt comes no sooner than this after the attempt
	disabled    bool          // the endpoint is disabled
	minLatency  time.Duration
	maxLatency  time.Duration // default 10 s: a receiver must never hold an attempt much past its timeout
	undelivered bool          // the receiver's handler must never have seen the request
}

type failureCase struct {
	name string
	// serve starts the receiver and returns its URL, a function that closes it, and (if not nil)
	// a count of the requests its handler saw.
	serve    func(t *testing.T) (url string, stop func(), handled func() int)
	node     func(*node.Config) // optional node settings (outbound TLS roots)
	endpoint map[string]any     // extra endpoint fields
	want     expect
	check    func(t *testing.T, a attemptOut) // optional further checks of the attempt
}

func TestReceiverFailureModes(t *testing.T) {
	tlsCA := newTestCA(t)
	trustCA := func(c *node.Config) { c.HTTPSend.TLSConfig = &tls.Config{RootCAs: tlsCA.pool} }
	now := time.Now()
	var written atomic.Int64 // bytes the 1 GiB receiver managed to write

	cases := []failureCase{
		// 1. Slow consumers.
		{
			name: "slow consumer within the timeout succeeds",
			serve: handlerReceiver(func(w http.ResponseWriter, r *http.Request) {
				wait(r, 4*time.Second) // 80 % of the 5 s timeout
				w.WriteHeader(http.StatusNoContent)
			}),
			endpoint: map[string]any{"timeout_seconds": 5},
			want:     expect{state: "succeeded", status: 204, success: true, minLatency: 4 * time.Second},
		},
		{
			name: "slow consumer past the timeout is retried",
			serve: handlerReceiver(func(w http.ResponseWriter, r *http.Request) {
				wait(r, 10*time.Second)
				w.WriteHeader(http.StatusOK)
			}),
			endpoint: map[string]any{"timeout_seconds": 1},
			want:     expect{state: "pending", kind: "timeout", errHas: "timed out", minLatency: 900 * time.Millisecond, maxLatency: 6 * time.Second},
		},
		// 2. Status codes.
		{
			name:  "5xx is retried",
			serve: statusReceiver(http.StatusBadGateway, nil),
			want:  expect{state: "pending", status: 502, kind: "http_status", errHas: "status 502"},
			check: func(t *testing.T, a attemptOut) {
				if a.Response != "answer 502" {
					t.Errorf("response excerpt = %q, want the receiver's body", a.Response)
				}
			},
		},
		{
			name:  "429 with Retry-After waits at least that long",
			serve: statusReceiver(http.StatusTooManyRequests, http.Header{"Retry-After": {"3600"}}),
			want:  expect{state: "pending", status: 429, kind: "http_status", retryAfter: time.Hour},
		},
		{
			name:  "410 disables the endpoint and dead-letters",
			serve: statusReceiver(http.StatusGone, nil),
			want:  expect{state: "dead", status: 410, kind: "http_status", disabled: true},
		},
		// 3. Broken answers.
		{
			name: "200 then a body that never finishes",
			serve: rawReceiverURL(func(c net.Conn, stop <-chan struct{}) {
				if readRequest(c) != nil {
					return
				}
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nthe start of a body")
				// The rest never comes; this returns when Herald gives up and closes.
				_ = c.SetReadDeadline(time.Time{})
				_, _ = io.Copy(io.Discard, c)
			}),
			endpoint: map[string]any{"timeout_seconds": 1},
			// The receiver said 200: it has the event, and a stalled body is no reason to send a
			// duplicate. The attempt records the stall.
			want: expect{state: "succeeded", status: 200, kind: "body_timeout", success: true, errHas: "reading response body",
				minLatency: 900 * time.Millisecond, maxLatency: 6 * time.Second},
			check: func(t *testing.T, a attemptOut) {
				if a.Response != "the start of a body" {
					t.Errorf("response excerpt = %q, want what arrived before the stall", a.Response)
				}
			},
		},
		{
			name: "connection reset before an answer is retried",
			serve: rawReceiverURL(func(c net.Conn, stop <-chan struct{}) {
				if readRequest(c) == nil {
					resetConn(c)
				}
			}),
			want: expect{state: "pending", kind: "connection_reset"},
		},
		{
			name: "connection reset in the middle of a 200 body",
			serve: rawReceiverURL(func(c net.Conn, stop <-chan struct{}) {
				if readRequest(c) != nil {
					return
				}
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
				// Give Herald ample time to read the status before the reset (the data would be
				// readable after it on Linux anyway; this keeps the case independent of the kernel).
				select {
				case <-time.After(500 * time.Millisecond):
				case <-stop:
				}
				resetConn(c)
			}),
			want: expect{state: "succeeded", status: 200, kind: "connection_reset", success: true},
		},
		// 4. Malformed HTTP.
		{
			name:  "garbage bytes",
			serve: rawAnswer("\x00\x01\x02\x03NOT-HTTP\xff\xfe\r\n\r\n"),
			want:  expect{state: "pending", kind: "invalid_response", errHas: "malformed HTTP response"},
		},
		{
			name:  "invalid status line",
			serve: rawAnswer("HTTP/1.1 two-hundred OK\r\nContent-Length: 0\r\n\r\n"),
			want:  expect{state: "pending", kind: "invalid_response", errHas: "malformed HTTP status code"},
		},
		{
			name:  "status code past 599",
			serve: rawAnswer("HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n"),
			want:  expect{state: "pending", status: 999, kind: "invalid_response"},
		},
		{
			name: "header larger than 1 MiB",
			serve: rawReceiverURL(func(c net.Conn, stop <-chan struct{}) {
				if readRequest(c) != nil {
					return
				}
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Huge: ")
				chunk := bytes.Repeat([]byte("a"), 64<<10)
				for range 32 { // 2 MiB; the writes fail once Herald gives up and closes
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
				_, _ = io.WriteString(c, "\r\nContent-Length: 0\r\n\r\n")
			}),
			want: expect{state: "pending", kind: "invalid_response", errHas: "headers exceeded"},
		},
		{
			name: "1 GiB body is not read whole",
			serve: rawReceiverURL(func(c net.Conn, stop <-chan struct{}) {
				if readRequest(c) != nil {
					return
				}
				const size = 1 << 30
				if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1073741824\r\n\r\n"); err != nil {
					return
				}
				// One 64 KiB buffer written again and again: the 1 GiB is never allocated.
				chunk := bytes.Repeat([]byte("0123456789abcdef"), 4<<10)
				for n := 0; n < size; n += len(chunk) {
					m, err := c.Write(chunk)
					written.Add(int64(m))
					if err != nil {
						return
					}
				}
			}),
			want: expect{state: "succeeded", status: 200, success: true, maxLatency: 5 * time.Second},
			check: func(t *testing.T, a attemptOut) {
				if len(a.Response) != 4096 || !strings.HasPrefix(a.Response, "0123456789abcdef") {
					t.Errorf("response excerpt is %d bytes (%.32q…), want the first 4096", len(a.Response), a.Response)
				}
				// Loopback socket buffers hold a few MiB at most; anything near 1 GiB means Herald read on.
				if n := written.Load(); n > 64<<20 {
					t.Errorf("the receiver wrote %d MiB before Herald closed the connection", n>>20)
				}
			},
		},
		// 5. Nobody answering.
		{
			name:     "black hole accepts and never reads",
			serve:    rawReceiverURL(nil),
			endpoint: map[string]any{"timeout_seconds": 1},
			want:     expect{state: "pending", kind: "timeout", minLatency: 900 * time.Millisecond, maxLatency: 6 * time.Second},
		},
		{
			name:  "nothing listening",
			serve: refusedURL,
			want:  expect{state: "pending", kind: "connection_refused", errHas: "refused"},
		},
		// 6. TLS.
		{
			name:  "TLS with a valid certificate is delivered (control)",
			serve: tlsReceiver(tlsCA.leaf(t, "127.0.0.1", now.Add(-time.Hour), now.Add(time.Hour))),
			node:  trustCA,
			want:  expect{state: "succeeded", status: 200, success: true},
		},
		{
			name:  "TLS with an expired certificate",
			serve: tlsReceiver(tlsCA.leaf(t, "127.0.0.1", now.Add(-48*time.Hour), now.Add(-24*time.Hour))),
			node:  trustCA,
			want:  expect{state: "pending", kind: "tls", errHas: "expired", undelivered: true},
		},
		{
			name:  "TLS with a certificate from an unknown authority",
			serve: tlsReceiver(newTestCA(t).leaf(t, "127.0.0.1", now.Add(-time.Hour), now.Add(time.Hour))),
			node:  trustCA,
			want:  expect{state: "pending", kind: "tls", errHas: "unknown authority", undelivered: true},
		},
		{
			name:  "TLS with a certificate for another host",
			serve: tlsReceiver(tlsCA.leaf(t, "example.com", now.Add(-time.Hour), now.Add(time.Hour))),
			node:  trustCA,
			want:  expect{state: "pending", kind: "tls", errHas: "127.0.0.1", undelivered: true},
		},
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runFailureCase(t, c) })
	}
}

func runFailureCase(t *testing.T, c failureCase) {
	base := runtime.NumGoroutine()
	url, stopReceiver, handled := c.serve(t)
	withReceiver := runtime.NumGoroutine()
	h := start(t, c.node)
	h.setup("acme", "a.happened")
	body := map[string]any{"url": url, "event_types": []string{"*"}, "retry_schedule": failureRetry}
	for k, v := range c.endpoint {
		body[k] = v
	}
	ep := h.endpoint("acme", body)
	p := h.publish("acme", map[string]any{"type": "a.happened", "data": map[string]any{"n": 1}})
	if p.Deliveries != 1 {
		t.Fatalf("publish = %+v", p)
	}

	var d deliveryOut
	eventually(t, 30*time.Second, "the first attempt to be recorded", func() bool {
		ds := h.deliveries("/v1/tenants/acme/events/" + p.ID + "/deliveries")
		if len(ds) == 1 && ds[0].AttemptCount >= 1 {
			d = ds[0]
			return true
		}
		return false
	})
	var atts struct {
		Data []attemptOut `json:"data"`
	}
	h.must(200, "GET", "/v1/tenants/acme/attempts?event_id="+p.ID, nil, &atts)
	if len(atts.Data) != 1 {
		t.Fatalf("%d attempts recorded, want 1: %+v", len(atts.Data), atts.Data)
	}
	a := atts.Data[0]
	w := c.want
	if a.StatusCode != w.status || a.ErrorKind != w.kind || a.Success != w.success {
		t.Errorf("attempt: status %d, error_kind %q, success %v; want %d, %q, %v (error %q)",
			a.StatusCode, a.ErrorKind, a.Success, w.status, w.kind, w.success, a.Error)
	}
	if w.errHas != "" && !strings.Contains(a.Error, w.errHas) {
		t.Errorf("attempt error %q does not mention %q", a.Error, w.errHas)
	}
	latency := time.Duration(a.LatencyMS * float64(time.Millisecond))
	if w.maxLatency == 0 {
		w.maxLatency = 10 * time.Second
	}
	if latency < w.minLatency || latency > w.maxLatency {
		t.Errorf("attempt latency %v, want between %v and %v", latency, w.minLatency, w.maxLatency)
	}
	if len(a.Response) > 4096 {
		t.Errorf("response excerpt is %d bytes, above the 4 KiB bound", len(a.Response))
	}

	if d.State != w.state {
		t.Errorf("delivery state %q, want %q (last error %q)", d.State, w.state, d.LastError)
	}
	switch w.state {
	case "pending":
		at, err := time.Parse(time.RFC3339Nano, a.At)
		if err != nil {
			t.Fatalf("attempt time %q: %v", a.At, err)
		}
		lo, hi := at.Add(retryMin), at.Add(retryMax+latency+5*time.Second)
		if w.retryAfter > 0 {
			lo, hi = at.Add(w.retryAfter), at.Add(w.retryAfter+latency+5*time.Second)
		}
		if d.NextAttemptAt == nil || d.NextAttemptAt.Before(lo) || d.NextAttemptAt.After(hi) {
			t.Errorf("next attempt at %v, want between %v and %v (attempt at %v)", d.NextAttemptAt, lo, hi, at)
		}
	default:
		if d.NextAttemptAt != nil {
			t.Errorf("a %s delivery has a next attempt at %v", d.State, d.NextAttemptAt)
		}
	}
	var e endpointOut
	h.must(200, "GET", "/v1/tenants/acme/endpoints/"+ep.ID, nil, &e)
	if e.Enabled == w.disabled {
		t.Errorf("endpoint enabled = %v (reason %q), want %v", e.Enabled, e.Disabled, !w.disabled)
	}
	if w.undelivered && handled != nil && handled() != 0 {
		t.Errorf("the receiver's handler saw %d requests; Herald must not deliver over a connection it does not trust", handled())
	}
	if c.check != nil {
		c.check(t, a)
	}

	// Herald's goroutines (engine, API server, outbound connections) must end with the node while
	// the receiver is still up: a connection Herald kept open would hold goroutines on both sides.
	h.stop()
	noStuckGoroutines(t, withReceiver, "the node closed")
	stopReceiver()
	noStuckGoroutines(t, base, "the receiver closed")
}

// noStuckGoroutines waits until the number of goroutines is back to base (with a little slack
// for the runtime's own), and fails with every goroutine's stack if it does not come back.
func noStuckGoroutines(t *testing.T, base int, after string) {
	t.Helper()
	// The harness's API calls keep connections to the (now closed) node in the default client.
	http.DefaultClient.CloseIdleConnections()
	const slack = 1
	deadline := time.Now().Add(20 * time.Second)
	for runtime.NumGoroutine() > base+slack {
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Fatalf("%d goroutines 20 s after %s, %d before:\n%s", runtime.NumGoroutine(), after, base, buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wait blocks until d passes or the request ends (Herald gave up and closed the connection).
func wait(r *http.Request, d time.Duration) {
	select {
	case <-time.After(d):
	case <-r.Context().Done():
	}
}

// handlerReceiver serves f on an httptest server (which listens on 127.0.0.1).
func handlerReceiver(f http.HandlerFunc) func(t *testing.T) (string, func(), func() int) {
	return func(t *testing.T) (string, func(), func() int) {
		var n atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			_, _ = io.Copy(io.Discard, r.Body)
			f(w, r)
		}))
		t.Cleanup(srv.Close)
		return srv.URL, srv.Close, func() int { return int(n.Load()) }
	}
}

// statusReceiver answers every request with status, the given headers and "answer <status>".
func statusReceiver(status int, header http.Header) func(t *testing.T) (string, func(), func() int) {
	return handlerReceiver(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, "answer %d", status)
	})
}

// tlsReceiver serves 200 over TLS with the given certificate.
func tlsReceiver(cert tls.Certificate) func(t *testing.T) (string, func(), func() int) {
	return func(t *testing.T) (string, func(), func() int) {
		var n atomic.Int64
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			_, _ = io.Copy(io.Discard, r.Body)
		}))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		// The failed handshakes are the point of the test, not news for its log.
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.URL, srv.Close, func() int { return int(n.Load()) }
	}
}

// refusedURL names a port on 127.0.0.1 that was free a moment ago, so a connection is refused.
func refusedURL(t *testing.T) (string, func(), func() int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr, func() {}, nil
}

// rawReceiver is a TCP listener on 127.0.0.1 whose connections get answers no HTTP server
// would give. Closing it closes every connection and waits for the handlers.
type rawReceiver struct {
	ln    net.Listener
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	once  sync.Once
}

// rawReceiverURL starts a rawReceiver whose connections are handled by handle; handle must
// return once stop is closed or the connection fails. With a nil handle, connections are held
// without a goroutine, never read and never answered (a black hole).
func rawReceiverURL(handle func(c net.Conn, stop <-chan struct{})) func(t *testing.T) (string, func(), func() int) {
	return func(t *testing.T) (string, func(), func() int) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		rr := &rawReceiver{ln: ln, stop: make(chan struct{}), conns: map[net.Conn]struct{}{}}
		rr.wg.Add(1)
		go func() {
			defer rr.wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				rr.mu.Lock()
				rr.conns[c] = struct{}{}
				rr.mu.Unlock()
				if handle == nil {
					continue
				}
				rr.wg.Add(1)
				go func() {
					defer rr.wg.Done()
					defer func() {
						rr.mu.Lock()
						delete(rr.conns, c)
						rr.mu.Unlock()
						_ = c.Close()
					}()
					handle(c, rr.stop)
				}()
			}
		}()
		t.Cleanup(rr.close)
		return "http://" + ln.Addr().String(), rr.close, nil
	}
}

func (rr *rawReceiver) close() {
	rr.once.Do(func() {
		_ = rr.ln.Close()
		close(rr.stop)
		rr.mu.Lock()
		for c := range rr.conns {
			_ = c.Close()
		}
		rr.mu.Unlock()
		rr.wg.Wait()
	})
}

// rawAnswer reads the request and writes answer verbatim, then closes the connection.
func rawAnswer(answer string) func(t *testing.T) (string, func(), func() int) {
	return rawReceiverURL(func(c net.Conn, stop <-chan struct{}) {
		if readRequest(c) == nil {
			_, _ = io.WriteString(c, answer)
		}
	})
}

// readRequest reads one whole HTTP request from c, so that what follows is an answer to it
// (closing a socket with unread data would reset the connection whatever the test meant).
func readRequest(c net.Conn) error {
	if err := c.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return err
	}
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, req.Body)
	return err
}

// resetConn closes c with SO_LINGER 0, which sends a TCP RST instead of a FIN.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "herald failure-mode test CA"},
		NotBefore:             time.Now().Add(-72 * time.Hour),
		NotAfter:              time.Now().Add(72 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// leaf issues a server certificate for host (an IP address or a DNS name), valid from notBefore
// to notAfter.
func (ca *testCA) leaf(t *testing.T, host string, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key}
}

// TestLargeEvents: an event of 200 KiB (under the default 256 KiB limit) arrives byte for byte;
// one over the limit is refused at publish with a clear 413, and nothing is stored or sent.
// Not parallel, for the goroutine count (see TestReceiverFailureModes).
func TestLargeEvents(t *testing.T) {
	blob := func(n int) string {
		return strings.Repeat("0123456789abcdef", n/16)
	}

	t.Run("200 KiB is delivered intact", func(t *testing.T) {
		base := runtime.NumGoroutine()
		rc := newReceiver(t, nil)
		withReceiver := runtime.NumGoroutine()
		h := start(t, nil)
		h.setup("acme", "a.happened")
		ep := h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}})
		data := blob(200 << 10)
		p := h.publish("acme", map[string]any{"type": "a.happened", "data": map[string]any{"blob": data}})
		eventually(t, 30*time.Second, "the delivery to succeed", func() bool {
			ds := h.deliveries("/v1/tenants/acme/events/" + p.ID + "/deliveries")
			return len(ds) == 1 && ds[0].State == "succeeded"
		})
		got := rc.got()
		if len(got) != 1 {
			t.Fatalf("the receiver got %d requests, want 1", len(got))
		}
		var env struct {
			ID   string `json:"id"`
			Data struct {
				Blob string `json:"blob"`
			} `json:"data"`
		}
		if err := json.Unmarshal(got[0].body, &env); err != nil {
			t.Fatalf("body of %d bytes: %v", len(got[0].body), err)
		}
		if env.ID != p.ID || env.Data.Blob != data {
			t.Fatalf("the event arrived altered: id %q, %d bytes of data, want %q and %d", env.ID, len(env.Data.Blob), p.ID, len(data))
		}
		wh, err := standardwebhooks.NewWebhook(ep.Secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(got[0].body, got[0].header); err != nil {
			t.Fatalf("the signature of the large event does not verify: %v", err)
		}
		h.stop()
		noStuckGoroutines(t, withReceiver, "the node closed")
		rc.Close()
		noStuckGoroutines(t, base, "the receiver closed")
	})

	for _, c := range []struct {
		name, want string
		size       int
	}{
		// Over the event limit but within the request limit: the envelope is measured.
		{"300 KiB is refused at publish", "the limit is 262144", 300 << 10},
		// Far over: past the request body limit (the event limit + 64 KiB), refused the same way.
		{"2 MiB is refused at publish", "", 2 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			rc := newReceiver(t, nil)
			withReceiver := runtime.NumGoroutine()
			h := start(t, nil)
			h.setup("acme", "a.happened")
			h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}})
			body, err := json.Marshal(map[string]any{"type": "a.happened", "data": map[string]any{"blob": blob(c.size)}})
			if err != nil {
				t.Fatal(err)
			}
			req, err := http.NewRequest("POST", h.node.URL()+"/v1/tenants/acme/events", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+adminKey)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
				t.Fatalf("publish of %d bytes = %d %s: %.300s; want 413 problem+json", len(body), resp.StatusCode, resp.Header.Get("Content-Type"), raw)
			}
			var problem struct {
				Status int    `json:"status"`
				Title  string `json:"title"`
				Detail string `json:"detail"`
				Errors []struct {
					Message  string `json:"message"`
					Location string `json:"location"`
				} `json:"errors"`
			}
			if err := json.Unmarshal(raw, &problem); err != nil {
				t.Fatalf("problem %q: %v", raw, err)
			}
			if problem.Status != 413 || problem.Title == "" {
				t.Errorf("problem = %s", raw)
			}
			if c.want != "" && !strings.Contains(string(raw), c.want) {
				t.Errorf("problem %s does not say %q", raw, c.want)
			}
			var events struct {
				Data []json.RawMessage `json:"data"`
			}
			h.must(200, "GET", "/v1/tenants/acme/events", nil, &events)
			if len(events.Data) != 0 {
				t.Errorf("a refused event was stored: %s", events.Data)
			}
			h.stop()
			if n := rc.count(); n != 0 {
				t.Errorf("the receiver got %d requests for a refused event", n)
			}
			noStuckGoroutines(t, withReceiver, "the node closed")
			rc.Close()
			noStuckGoroutines(t, base, "the receiver closed")
		})
	}
}
