package httpsend

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/destination"
)

// margin is how much longer than its Timeout an attempt may take before we call it unbounded. It is
// generous because -race and a busy 2-core machine slow everything down.
const margin = 1500 * time.Millisecond

// devConfig lets a client reach servers on 127.0.0.1 over plain HTTP, as dev mode would.
func devConfig() Config {
	return Config{AllowHTTP: true, AllowLoopback: true}
}

// newTestClient builds a client whose dials are checked by the test itself: unless the test installs
// its own DialHook, any attempt to reach a non-loopback address fails the test and is refused, so
// no test can send a packet off this machine even if the guard were broken.
func newTestClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	if cfg.DialHook == nil {
		cfg.DialHook = func(_ context.Context, _, address string) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !ap.Addr().IsLoopback() {
				t.Errorf("test tried to dial non-loopback address %q", address)
				return fmt.Errorf("test: refusing %s", address)
			}
			return nil
		}
	}
	c := New(cfg)
	t.Cleanup(c.Close)
	return c
}

// quietServer is an httptest server that does not log handshake errors the tests provoke on purpose.
func quietServer(t testing.TB, h http.Handler, tlsOn bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tlsOn {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

// rawServer accepts TCP connections on 127.0.0.1 and hands each to handle, for peers that do not
// speak HTTP properly. done is closed at cleanup; cleanup also closes the listener and every
// connection and waits for the handlers, so a misbehaving peer leaves no goroutine behind.
func rawServer(t testing.TB, handle func(conn net.Conn, done <-chan struct{})) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
		done  = make(chan struct{})
	)
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Go(func() { handle(conn, done) })
		}
	})
	t.Cleanup(func() {
		close(done)
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// awaitDisconnect blocks a handler until the client goes away. The server only notices a closed
// connection once the request body has been consumed, so the body is read first; without that,
// the handler (and httptest.Server.Close) would wait forever.
func awaitDisconnect(r *http.Request) {
	<-disconnected(r)
}

// disconnected consumes the request body and returns a channel closed when the client goes away.
func disconnected(r *http.Request) <-chan struct{} {
	io.Copy(io.Discard, r.Body)
	return r.Context().Done()
}

// readRequest consumes one HTTP request from conn, so that what a raw peer writes next is read by
// the client as the response rather than arriving on an idle connection.
func readRequest(conn net.Conn) {
	req, err := http.ReadRequest(bufio.NewReader(conn))
	if err == nil {
		io.Copy(io.Discard, req.Body)
	}
}

// closedPort returns a loopback address on which nothing listens.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestSendClassifiesStatus(t *testing.T) {
	t.Parallel()
	httpDate := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name           string
		status         int
		retryAfter     string
		wantClass      destination.Class
		wantKind       string
		wantRetryAfter [2]time.Duration // inclusive bounds
	}{
		{name: "200 ok is success", status: 200, wantClass: destination.Success},
		{name: "201 created is success", status: 201, wantClass: destination.Success},
		{name: "204 no content is success", status: 204, wantClass: destination.Success},
		{name: "400 bad request is permanent", status: 400, wantClass: destination.Permanent, wantKind: destination.KindHTTPStatus},
		{name: "404 not found is permanent", status: 404, wantClass: destination.Permanent, wantKind: destination.KindHTTPStatus},
		{name: "408 request timeout is retryable", status: 408, wantClass: destination.Retryable, wantKind: destination.KindHTTPStatus},
		{name: "410 gone disables the endpoint", status: 410, wantClass: destination.Gone, wantKind: destination.KindHTTPStatus},
		{name: "425 too early is retryable", status: 425, wantClass: destination.Retryable, wantKind: destination.KindHTTPStatus},
		{name: "429 with retry-after seconds", status: 429, retryAfter: "120", wantClass: destination.Retryable,
			wantKind: destination.KindHTTPStatus, wantRetryAfter: [2]time.Duration{120 * time.Second, 120 * time.Second}},
		{name: "429 with retry-after http date", status: 429, retryAfter: httpDate, wantClass: destination.Retryable,
			wantKind: destination.KindHTTPStatus, wantRetryAfter: [2]time.Duration{80 * time.Second, 91 * time.Second}},
		{name: "429 with absurd retry-after is capped at a day", status: 429, retryAfter: "99999999999999999999",
			wantClass: destination.Retryable, wantKind: destination.KindHTTPStatus, wantRetryAfter: [2]time.Duration{24 * time.Hour, 24 * time.Hour}},
		{name: "500 is retryable and ignores retry-after", status: 500, retryAfter: "30", wantClass: destination.Retryable,
			wantKind: destination.KindHTTPStatus},
		{name: "503 with retry-after seconds", status: 503, retryAfter: "7", wantClass: destination.Retryable,
			wantKind: destination.KindHTTPStatus, wantRetryAfter: [2]time.Duration{7 * time.Second, 7 * time.Second}},
		{name: "503 without retry-after", status: 503, wantClass: destination.Retryable, wantKind: destination.KindHTTPStatus},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
				if tt.status != http.StatusNoContent {
					io.WriteString(w, "answer")
				}
			}), false)
			c := newTestClient(t, devConfig())

			o := c.Send(t.Context(), Request{URL: srv.URL + "/hook", Body: []byte(`{}`), Timeout: 5 * time.Second})

			if o.Class != tt.wantClass || o.ErrorKind != tt.wantKind || o.StatusCode != tt.status {
				t.Fatalf("got class %q kind %q status %d (%s), want %q %q %d",
					o.Class, o.ErrorKind, o.StatusCode, o.Error, tt.wantClass, tt.wantKind, tt.status)
			}
			if o.RetryAfter < tt.wantRetryAfter[0] || o.RetryAfter > tt.wantRetryAfter[1] {
				t.Errorf("RetryAfter = %v, want within %v", o.RetryAfter, tt.wantRetryAfter)
			}
			wantBody := "answer"
			if tt.status == http.StatusNoContent {
				wantBody = ""
			}
			if string(o.Response) != wantBody {
				t.Errorf("Response = %q, want %q", o.Response, wantBody)
			}
			if tt.wantClass != destination.Success && !strings.Contains(o.Error, fmt.Sprint(tt.status)) {
				t.Errorf("Error %q does not name the status", o.Error)
			}
			if o.Latency <= 0 {
				t.Errorf("Latency = %v, want > 0", o.Latency)
			}
		})
	}
}

func TestSendDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			var targetHits atomic.Int32
			target := quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				targetHits.Add(1)
			}), false)
			redirector := quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/moved", status)
			}), false)
			c := newTestClient(t, devConfig())

			o := c.Send(t.Context(), Request{URL: redirector.URL, Body: []byte(`{}`), Timeout: 5 * time.Second})

			if o.Class != destination.Permanent || o.ErrorKind != destination.KindRedirect || o.StatusCode != status {
				t.Fatalf("got %q %q %d (%s), want permanent redirect %d", o.Class, o.ErrorKind, o.StatusCode, o.Error, status)
			}
			if want := "redirect to " + target.URL + "/moved (redirects are not followed)"; !strings.Contains(o.Error, want) {
				t.Errorf("Error = %q, want it to contain %q", o.Error, want)
			}
			if n := targetHits.Load(); n != 0 {
				t.Errorf("redirect target received %d requests, want 0", n)
			}
		})
	}
}

func TestSendRelativeRedirectIsReportedAbsolute(t *testing.T) {
	t.Parallel()
	srv := quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "/elsewhere")
		w.WriteHeader(http.StatusFound)
	}), false)
	c := newTestClient(t, devConfig())

	o := c.Send(t.Context(), Request{URL: srv.URL + "/hook", Timeout: 5 * time.Second})

	if want := "redirect to " + srv.URL + "/elsewhere"; !strings.Contains(o.Error, want) {
		t.Errorf("Error = %q, want it to contain %q", o.Error, want)
	}
}

func TestSendRequestCarriesHeadersAndBody(t *testing.T) {
	t.Parallel()
	body := []byte(`{"type":"invoice.paid","data":{"id":"in_1","amount":4200}}`)
	tests := []struct {
		name      string
		header    http.Header
		cfg       Config
		wantType  string
		wantAgent string
	}{
		{
			name:      "adds json content type and default user agent",
			header:    http.Header{"Webhook-Id": {"msg_1"}, "Webhook-Signature": {"v1,abc"}},
			wantType:  "application/json",
			wantAgent: DefaultUserAgent,
		},
		{
			name:      "keeps the caller's content type and sets the configured user agent",
			header:    http.Header{"Content-Type": {"application/cloudevents+json"}, "User-Agent": {"spoofed"}},
			cfg:       Config{UserAgent: "Herald-Test/1"},
			wantType:  "application/cloudevents+json",
			wantAgent: "Herald-Test/1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			type seen struct {
				method, path string
				header       http.Header
				body         []byte
			}
			got := make(chan seen, 1)
			srv := quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got <- seen{r.Method, r.URL.RequestURI(), r.Header.Clone(), b}
			}), false)
			cfg := tt.cfg
			cfg.AllowHTTP, cfg.AllowLoopback = true, true
			c := newTestClient(t, cfg)
			before := tt.header.Clone()

			o := c.Send(t.Context(), Request{URL: srv.URL + "/hooks/1?x=y", Header: tt.header, Body: body, Timeout: 5 * time.Second})

			if o.Class != destination.Success {
				t.Fatalf("Send: %q %q %s", o.Class, o.ErrorKind, o.Error)
			}
			s := <-got
			if s.method != http.MethodPost || s.path != "/hooks/1?x=y" {
				t.Errorf("request line = %s %s, want POST /hooks/1?x=y", s.method, s.path)
			}
			if !bytes.Equal(s.body, body) {
				t.Errorf("body = %q, want %q", s.body, body)
			}
			if v := s.header.Values("Content-Type"); len(v) != 1 || v[0] != tt.wantType {
				t.Errorf("Content-Type = %q, want exactly [%q]", v, tt.wantType)
			}
			if v := s.header.Values("User-Agent"); len(v) != 1 || v[0] != tt.wantAgent {
				t.Errorf("User-Agent = %q, want exactly [%q]", v, tt.wantAgent)
			}
			for k, v := range tt.header {
				if k == "User-Agent" {
					continue
				}
				if g := s.header.Values(k); fmt.Sprint(g) != fmt.Sprint(v) {
					t.Errorf("header %s = %q, want %q", k, g, v)
				}
			}
			if s.header.Get("Accept-Encoding") != "" {
				t.Errorf("Accept-Encoding = %q, want none (compression disabled)", s.header.Get("Accept-Encoding"))
			}
			if fmt.Sprint(tt.header) != fmt.Sprint(before) {
				t.Errorf("Send modified the caller's header: %v, was %v", tt.header, before)
			}
		})
	}
}

func TestSendReusesConnections(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		bodySize int
		chunked  bool
	}{
		{name: "small body", bodySize: 2},
		{name: "body larger than the record but within the drain limit", bodySize: 20 << 10},
		{name: "chunked body larger than the record", bodySize: 20 << 10, chunked: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var conns atomic.Int32
			payload := bytes.Repeat([]byte("x"), tt.bodySize)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !tt.chunked {
					w.Header().Set("Content-Length", fmt.Sprint(len(payload)))
				}
				w.Write(payload)
			}))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			srv.Start()
			t.Cleanup(srv.Close)
			c := newTestClient(t, devConfig())

			for i := range 5 {
				o := c.Send(t.Context(), Request{URL: srv.URL, Body: []byte(`{}`), Timeout: 5 * time.Second})
				if o.Class != destination.Success || o.ErrorKind != "" {
					t.Fatalf("send %d: %q %q %s", i, o.Class, o.ErrorKind, o.Error)
				}
				if want := min(tt.bodySize, DefaultMaxResponseBytes); len(o.Response) != want {
					t.Fatalf("send %d: kept %d bytes, want %d", i, len(o.Response), want)
				}
			}
			if n := conns.Load(); n != 1 {
				t.Errorf("server saw %d connections for 5 sequential sends, want 1 (keep-alive)", n)
			}
		})
	}
}

func TestSendKeepsConfiguredResponseBytes(t *testing.T) {
	t.Parallel()
	srv := quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("0123456789", 100))
	}), false)
	cfg := devConfig()
	cfg.MaxResponseBytes = 25
	c := newTestClient(t, cfg)

	o := c.Send(t.Context(), Request{URL: srv.URL, Timeout: 5 * time.Second})

	if want := "0123456789012345678901234"; string(o.Response) != want || o.Class != destination.Success {
		t.Errorf("got %q %q, want success %q", o.Class, o.Response, want)
	}
}

func TestSendRejectsURLsBeforeDialing(t *testing.T) {
	t.Parallel()
	srv := quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), false)
	tests := []struct {
		name     string
		cfg      Config
		url      string
		wantKind string
	}{
		{name: "http without AllowHTTP", cfg: Config{AllowLoopback: true}, url: srv.URL, wantKind: destination.KindInvalidURL},
		{name: "loopback without AllowLoopback", cfg: Config{AllowHTTP: true}, url: srv.URL, wantKind: destination.KindBlocked},
		{name: "decimal loopback literal", cfg: Config{AllowHTTP: true}, url: "http://2130706433/", wantKind: destination.KindBlocked},
		{name: "octal loopback literal", cfg: Config{AllowHTTP: true}, url: "http://0177.0.0.1/", wantKind: destination.KindBlocked},
		{name: "metadata service", cfg: Config{}, url: "https://169.254.169.254/latest/meta-data", wantKind: destination.KindBlocked},
		{name: "credentials", cfg: Config{}, url: "https://user:pass@example.com/", wantKind: destination.KindInvalidURL},
		{name: "unparseable", cfg: Config{}, url: "https://exa mple.com/", wantKind: destination.KindInvalidURL},
		{name: "relative", cfg: Config{}, url: "/hooks", wantKind: destination.KindInvalidURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var dials atomic.Int32
			tt.cfg.DialHook = func(context.Context, string, string) error {
				dials.Add(1)
				return fmt.Errorf("test: no dialing expected")
			}
			tt.cfg.Resolver = resolverFunc(func(_ context.Context, _, host string) ([]netip.Addr, error) {
				t.Errorf("unexpected lookup of %q", host)
				return nil, fmt.Errorf("test: no lookups expected")
			})
			c := newTestClient(t, tt.cfg)

			o := c.Send(t.Context(), Request{URL: tt.url, Timeout: 5 * time.Second})

			if o.Class != destination.Permanent || o.ErrorKind != tt.wantKind || o.StatusCode != 0 {
				t.Errorf("got %q %q %d (%s), want permanent %q", o.Class, o.ErrorKind, o.StatusCode, o.Error, tt.wantKind)
			}
			if n := dials.Load(); n != 0 {
				t.Errorf("dial hook called %d times, want 0", n)
			}
		})
	}
}

func TestSendTLS(t *testing.T) {
	t.Parallel()
	srv := quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secure")
	}), true)
	plain := quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), false)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	_, plainPort, _ := net.SplitHostPort(plain.Listener.Addr().String())
	// Names resolve to the test server, so certificate checks run against the URL's host while the
	// connection goes to 127.0.0.1: the guard dials literals, and TLS must still verify the name.
	resolver := resolverFunc(func(context.Context, string, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	})

	tests := []struct {
		name      string
		url       string
		trusted   bool
		wantClass destination.Class
		wantKind  string
	}{
		{name: "self-signed certificate not in roots", url: srv.URL, wantClass: destination.Retryable, wantKind: destination.KindTLS},
		{name: "certificate in configured roots", url: srv.URL, trusted: true, wantClass: destination.Success},
		{name: "name in certificate, reached through resolver", url: "https://example.com:" + port + "/", trusted: true, wantClass: destination.Success},
		{name: "name not in certificate", url: "https://wrong.test:" + port + "/", trusted: true, wantClass: destination.Retryable, wantKind: destination.KindTLS},
		{name: "https to a plain http server", url: "https://127.0.0.1:" + plainPort + "/", trusted: true, wantClass: destination.Retryable, wantKind: destination.KindTLS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{AllowLoopback: true, Resolver: resolver}
			if tt.trusted {
				cfg.TLSConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
				cfg.TLSConfig.RootCAs = roots
			}
			c := newTestClient(t, cfg)

			o := c.Send(t.Context(), Request{URL: tt.url, Body: []byte(`{}`), Timeout: 5 * time.Second})

			if o.Class != tt.wantClass || o.ErrorKind != tt.wantKind {
				t.Fatalf("got %q %q (%s), want %q %q", o.Class, o.ErrorKind, o.Error, tt.wantClass, tt.wantKind)
			}
			if tt.wantClass == destination.Success && string(o.Response) != "secure" {
				t.Errorf("Response = %q, want %q", o.Response, "secure")
			}
		})
	}
}

func TestSendCanceledByCaller(t *testing.T) {
	t.Parallel()
	srv := quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		awaitDisconnect(r)
	}), false)
	c := newTestClient(t, devConfig())
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)

	start := time.Now()
	o := c.Send(ctx, Request{URL: srv.URL, Timeout: 10 * time.Second})

	if o.Class != destination.Retryable || o.ErrorKind != destination.KindCanceled {
		t.Errorf("got %q %q (%s), want retryable canceled", o.Class, o.ErrorKind, o.Error)
	}
	if d := time.Since(start); d >= 10*time.Second {
		t.Errorf("Send took %v: it ended at its timeout, not at the cancel", d)
	}
}

func TestNewNeverUsesAProxy(t *testing.T) {
	t.Parallel()
	c := newTestClient(t, Config{})
	if c.transport.Proxy != nil {
		t.Error("transport has a Proxy func; a proxy would connect to addresses the guard never checked")
	}
	if !c.transport.DisableCompression || c.transport.MaxResponseHeaderBytes != 64<<10 || !c.transport.ForceAttemptHTTP2 {
		t.Errorf("transport settings: compression disabled %v, header limit %d, http2 %v",
			c.transport.DisableCompression, c.transport.MaxResponseHeaderBytes, c.transport.ForceAttemptHTTP2)
	}
}

// misbehavingPeer is a receiver that stalls, floods, or does not speak HTTP.
type misbehavingPeer struct {
	name       string
	serve      func(t *testing.T) string // starts the peer and returns the URL to send to
	timeout    time.Duration
	wantClass  destination.Class
	wantKind   string
	wantStatus int
	wantBody   string
	// beforeTimeout: the peer's failure, not the timeout, ends the attempt, so it ends before
	// the timeout (how much before is the scheduler's business); otherwise the timeout ends it,
	// within margin.
	beforeTimeout bool
}

func misbehavingPeers() []misbehavingPeer {
	return []misbehavingPeer{
		{
			name: "handler sleeps past the timeout",
			serve: func(t *testing.T) string {
				return quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					awaitDisconnect(r)
				}), false).URL
			},
			timeout: 300 * time.Millisecond, wantClass: destination.Retryable, wantKind: destination.KindTimeout,
		},
		{
			name: "headers then a body that never finishes",
			serve: func(t *testing.T) string {
				return quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Length", "1000")
					io.WriteString(w, "partial")
					w.(http.Flusher).Flush()
					awaitDisconnect(r)
				}), false).URL
			},
			timeout: 300 * time.Millisecond, wantClass: destination.Success, wantKind: destination.KindBodyTimeout, wantStatus: 200, wantBody: "partial",
		},
		{
			name: "chunked body that trickles forever",
			serve: func(t *testing.T) string {
				return quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					gone := disconnected(r)
					w.WriteHeader(http.StatusServiceUnavailable)
					for {
						io.WriteString(w, ".")
						w.(http.Flusher).Flush()
						select {
						case <-gone:
							return
						case <-time.After(20 * time.Millisecond):
						}
					}
				}), false).URL
			},
			timeout: 300 * time.Millisecond, wantClass: destination.Retryable, wantKind: destination.KindBodyTimeout, wantStatus: 503,
		},
		{
			name: "10 MiB body",
			serve: func(t *testing.T) string {
				return quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Length", fmt.Sprint(10<<20))
					chunk := bytes.Repeat([]byte("a"), 32<<10)
					for range (10 << 20) / len(chunk) {
						if _, err := w.Write(chunk); err != nil {
							return
						}
					}
				}), false).URL
			},
			timeout: 10 * time.Second, wantClass: destination.Success, wantStatus: 200, wantBody: strings.Repeat("a", 4096),
			beforeTimeout: true,
		},
		{
			name: "headers that trickle in forever",
			serve: func(t *testing.T) string {
				return "http://" + rawServer(t, func(conn net.Conn, done <-chan struct{}) {
					readRequest(conn)
					io.WriteString(conn, "HTTP/1.1 200 OK\r\n")
					for {
						select {
						case <-done:
							return
						case <-time.After(20 * time.Millisecond):
						}
						if _, err := io.WriteString(conn, "X-Slow: y\r\n"); err != nil {
							return
						}
					}
				})
			},
			timeout: 300 * time.Millisecond, wantClass: destination.Retryable, wantKind: destination.KindTimeout,
		},
		{
			name: "garbage instead of HTTP",
			serve: func(t *testing.T) string {
				return "http://" + rawServer(t, func(conn net.Conn, done <-chan struct{}) {
					readRequest(conn)
					io.WriteString(conn, "SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02\r\n\r\n")
					<-done
				})
			},
			timeout: 5 * time.Second, wantClass: destination.Retryable, wantKind: destination.KindInvalidResponse, beforeTimeout: true,
		},
		{
			name: "malformed status line",
			serve: func(t *testing.T) string {
				return "http://" + rawServer(t, func(conn net.Conn, done <-chan struct{}) {
					readRequest(conn)
					io.WriteString(conn, "HTTP/1.1 two-hundred OK\r\nContent-Length: 0\r\n\r\n")
					<-done
				})
			},
			timeout: 5 * time.Second, wantClass: destination.Retryable, wantKind: destination.KindInvalidResponse, beforeTimeout: true,
		},
		{
			name: "response headers larger than 64 KiB",
			serve: func(t *testing.T) string {
				return "http://" + rawServer(t, func(conn net.Conn, done <-chan struct{}) {
					readRequest(conn)
					io.WriteString(conn, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", 80<<10)+"\r\n\r\n")
					<-done
				})
			},
			timeout: 5 * time.Second, wantClass: destination.Retryable, wantKind: destination.KindInvalidResponse, beforeTimeout: true,
		},
		{
			name: "accepts then closes",
			serve: func(t *testing.T) string {
				return "http://" + rawServer(t, func(conn net.Conn, done <-chan struct{}) {
					conn.Close()
				})
			},
			timeout: 5 * time.Second, wantClass: destination.Retryable, wantKind: destination.KindConnReset, beforeTimeout: true,
		},
		{
			name: "black hole that accepts and never reads",
			serve: func(t *testing.T) string {
				return "http://" + rawServer(t, func(conn net.Conn, done <-chan struct{}) {
					<-done
				})
			},
			timeout: 300 * time.Millisecond, wantClass: destination.Retryable, wantKind: destination.KindTimeout,
		},
		{
			name:    "closed port",
			serve:   func(t *testing.T) string { return "http://" + closedPort(t) },
			timeout: 5 * time.Second, wantClass: destination.Retryable, wantKind: destination.KindConnRefused, beforeTimeout: true,
		},
	}
}

// TestMisbehavingPeers is deliberately not parallel with other top-level tests: it counts
// goroutines, and that count only means something while nothing else runs. Its cases run in
// parallel with each other.
func TestMisbehavingPeers(t *testing.T) {
	baseline := runtime.NumGoroutine()

	t.Run("cases", func(t *testing.T) {
		for _, tt := range misbehavingPeers() {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				url := tt.serve(t)
				c := newTestClient(t, devConfig())

				start := time.Now()
				o := c.Send(t.Context(), Request{URL: url, Body: []byte(`{"n":1}`), Timeout: tt.timeout})
				elapsed := time.Since(start)
				t.Logf("outcome: %s %s status %d in %v: %s", o.Class, o.ErrorKind, o.StatusCode, elapsed.Round(time.Millisecond), o.Error)

				if o.Class != tt.wantClass || o.ErrorKind != tt.wantKind || o.StatusCode != tt.wantStatus {
					t.Errorf("got %q %q status %d (%s), want %q %q %d",
						o.Class, o.ErrorKind, o.StatusCode, o.Error, tt.wantClass, tt.wantKind, tt.wantStatus)
				}
				if tt.wantBody != "" && string(o.Response) != tt.wantBody {
					t.Errorf("Response = %.40q (%d bytes), want %.40q (%d bytes)",
						o.Response, len(o.Response), tt.wantBody, len(tt.wantBody))
				}
				if tt.beforeTimeout && elapsed >= tt.timeout {
					t.Errorf("Send took %v: the timeout (%v) ended it, not the peer's failure", elapsed, tt.timeout)
				}
				if limit := tt.timeout + margin; elapsed > limit {
					t.Errorf("Send took %v, want at most %v", elapsed, limit)
				}
				if o.Latency <= 0 || o.Latency > elapsed {
					t.Errorf("Latency = %v, want in (0, %v]", o.Latency, elapsed)
				}
			})
		}
	})

	// Every server, connection and client from the cases is closed by now; what is left running
	// would be a leak. Connection goroutines take a moment to notice their sockets closed.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d, baseline %d\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func BenchmarkSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()
	c := New(devConfig())
	defer c.Close()
	req := Request{
		URL:     srv.URL + "/hook",
		Header:  http.Header{"Webhook-Id": {"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"}, "Webhook-Timestamp": {"1700000000"}, "Webhook-Signature": {"v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="}},
		Body:    bytes.Repeat([]byte("x"), 512),
		Timeout: 5 * time.Second,
	}
	ctx := context.Background()

	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if o := c.Send(ctx, req); o.Class != destination.Success {
				b.Fatalf("%q %q %s", o.Class, o.ErrorKind, o.Error)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if o := c.Send(ctx, req); o.Class != destination.Success {
					b.Errorf("%q %q %s", o.Class, o.ErrorKind, o.Error)
					return
				}
			}
		})
	})
}
