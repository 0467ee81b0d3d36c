package httpsend

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/testcert"
	"github.com/heraldhq/herald/internal/testproxy"
)

// loopbackRecorder records every address the client dials, and refuses (failing the test) any
// that is not loopback, so no packet leaves the machine whatever the code under test does.
type loopbackRecorder struct {
	t     *testing.T
	mu    sync.Mutex
	addrs []string
}

func (r *loopbackRecorder) hook(_ context.Context, _, address string) error {
	r.mu.Lock()
	r.addrs = append(r.addrs, address)
	r.mu.Unlock()
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !ap.Addr().IsLoopback() {
		r.t.Errorf("dial of non-loopback address %q", address)
		return net.UnknownNetworkError("test: refusing " + address)
	}
	return nil
}

func (r *loopbackRecorder) dialled() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.addrs)
}

// receiver is an HTTPS server on 127.0.0.1 with a certificate for receiver.test (and localhost,
// 127.0.0.1) from its own CA.
func receiver(t *testing.T) (srv *httptest.Server, port string, ca *testcert.CA) {
	t.Helper()
	ca = testcert.NewCA(t, "receiver CA")
	srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "received by "+r.Host)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t, "receiver.test").TLS}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, _ = net.SplitHostPort(srv.Listener.Addr().String())
	return srv, port, ca
}

// proxyConfig is a client config sending through proxyURL, resolving receiver.test to loopback.
func proxyConfig(t *testing.T, ca *testcert.CA, proxyURL string, rec *loopbackRecorder) Config {
	return Config{
		AllowLoopback: true,
		Proxy:         proxyURL,
		TLSConfig:     &tls.Config{RootCAs: ca.Pool()},
		Resolver:      staticResolver(map[string][]string{"receiver.test": {"127.0.0.1"}}),
		DialHook:      rec.hook,
	}
}

func TestProxy_HTTPConnectAsksTheProxyForTheCheckedAddress(t *testing.T) {
	t.Parallel()
	tp := testproxy.StartTinyproxy(t, testproxy.TinyproxyOptions{})
	_, port, ca := receiver(t)
	rec := &loopbackRecorder{t: t}
	c := newTestClient(t, proxyConfig(t, ca, "http://"+tp.Addr, rec))

	o := send(t, c, "https://receiver.test:"+port+"/hook")
	if o.Class != destination.Success || string(o.Response) != "received by receiver.test:"+port {
		t.Fatalf("through the proxy: %q %q %q (%s)\n%s", o.Class, o.ErrorKind, o.Response, o.Error, tp.Log())
	}
	want := "CONNECT 127.0.0.1:" + port + " HTTP/1.1"
	if got := tp.Requests(t); !slices.Equal(got, []string{want}) {
		t.Errorf("tinyproxy was asked %q, want only %q (the address Herald resolved and checked)", got, want)
	}
	if got := rec.dialled(); !slices.Equal(got, []string{tp.Addr}) {
		t.Errorf("dialled %q, want only the proxy %s", got, tp.Addr)
	}
}

func TestProxy_EnforcingProxyGetsTheHostName(t *testing.T) {
	t.Parallel()
	tp := testproxy.StartTinyproxy(t, testproxy.TinyproxyOptions{})
	_, port, ca := receiver(t)
	rec := &loopbackRecorder{t: t}
	cfg := proxyConfig(t, ca, "http://"+tp.Addr, rec)
	cfg.ProxyEnforcing = true
	c := newTestClient(t, cfg)

	if o := send(t, c, "https://localhost:"+port+"/hook"); o.Class != destination.Success {
		t.Fatalf("through the enforcing proxy: %q %q (%s)\n%s", o.Class, o.ErrorKind, o.Error, tp.Log())
	}
	if got, want := tp.Requests(t), []string{"CONNECT localhost:" + port + " HTTP/1.1"}; !slices.Equal(got, want) {
		t.Errorf("tinyproxy was asked %q, want %q", got, want)
	}
}

// With loopback not allowed, no internal destination is reachable through the node's proxy,
// although the proxy itself (the operator's) is on loopback: the destination is checked before
// the proxy is asked, and the proxy never hears of it.
func TestProxy_InternalDestinationsRefusedBeforeTheProxy(t *testing.T) {
	t.Parallel()
	tp := testproxy.StartTinyproxy(t, testproxy.TinyproxyOptions{})
	_, port, _ := receiver(t)
	rec := &loopbackRecorder{t: t}
	c := newTestClient(t, Config{
		Proxy:    "http://" + tp.Addr,
		DialHook: rec.hook,
		Resolver: staticResolver(map[string][]string{
			"internal.test": {"10.0.0.1"},
			"metadata.test": {"169.254.169.254"},
			"loop.test":     {"127.0.0.1"},
			"mixed.test":    {"93.184.216.34", "192.168.1.1"},
		}),
	})
	for _, u := range []string{
		"https://internal.test/hook",
		"https://metadata.test/latest/meta-data/",
		"https://loop.test:" + port + "/hook",
		"https://mixed.test/hook",
		"https://127.0.0.1:" + port + "/hook",
		"https://169.254.169.254/latest/meta-data/",
		"https://[::ffff:10.0.0.1]/hook",
	} {
		o := send(t, c, u)
		if o.Class != destination.Permanent || o.ErrorKind != destination.KindBlocked {
			t.Errorf("%s: got %q %q (%s), want blocked_destination", u, o.Class, o.ErrorKind, o.Error)
		}
	}
	if got := tp.Requests(t); len(got) != 0 {
		t.Errorf("tinyproxy was asked %q, want nothing", got)
	}
	if got := rec.dialled(); len(got) != 0 {
		t.Errorf("dialled %q, want nothing", got)
	}
}

// An endpoint's own proxy is a tenant's choice: its address must pass the guard, so a tenant
// cannot reach an internal proxy (here on loopback, which this client does not allow).
func TestProxy_EndpointProxyMustPassTheGuard(t *testing.T) {
	t.Parallel()
	tp := testproxy.StartTinyproxy(t, testproxy.TinyproxyOptions{})
	rec := &loopbackRecorder{t: t}
	c := newTestClient(t, Config{DialHook: rec.hook,
		Resolver: staticResolver(map[string][]string{"public.test": {"93.184.216.34"}})})
	if err := c.CheckProxyURL("http://" + tp.Addr); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("CheckProxyURL(loopback proxy) = %v, want a loopback refusal", err)
	}
	ci, err := c.With(Options{Proxy: "http://" + tp.Addr})
	if err != nil {
		t.Fatal(err)
	}
	o := send(t, ci, "https://public.test/hook")
	if o.Class != destination.Permanent || o.ErrorKind != destination.KindBlocked || !strings.Contains(o.Error, "proxy") {
		t.Fatalf("through a loopback proxy: got %q %q (%s), want blocked_destination naming the proxy", o.Class, o.ErrorKind, o.Error)
	}
	if got := tp.Requests(t); len(got) != 0 {
		t.Errorf("tinyproxy was asked %q, want nothing", got)
	}
	if got := rec.dialled(); len(got) != 0 {
		t.Errorf("dialled %q, want nothing", got)
	}
}

func TestProxy_EndpointOverridesTheNodeProxy(t *testing.T) {
	t.Parallel()
	nodeProxy := testproxy.StartTinyproxy(t, testproxy.TinyproxyOptions{})
	own := testproxy.StartTinyproxy(t, testproxy.TinyproxyOptions{})
	_, port, ca := receiver(t)
	rec := &loopbackRecorder{t: t}
	c := newTestClient(t, proxyConfig(t, ca, "http://"+nodeProxy.Addr, rec))
	url := "https://receiver.test:" + port + "/hook"

	direct, err := c.With(Options{Proxy: ProxyDirect})
	if err != nil {
		t.Fatal(err)
	}
	if o := send(t, direct, url); o.Class != destination.Success {
		t.Fatalf("direct: %q %q (%s)", o.Class, o.ErrorKind, o.Error)
	}
	viaOwn, err := c.With(Options{Proxy: "http://" + own.Addr})
	if err != nil {
		t.Fatal(err)
	}
	if o := send(t, viaOwn, url); o.Class != destination.Success {
		t.Fatalf("through the endpoint's proxy: %q %q (%s)", o.Class, o.ErrorKind, o.Error)
	}
	if got := nodeProxy.Requests(t); len(got) != 0 {
		t.Errorf("the node's proxy was asked %q, want nothing", got)
	}
	if got, want := own.Requests(t), []string{"CONNECT 127.0.0.1:" + port + " HTTP/1.1"}; !slices.Equal(got, want) {
		t.Errorf("the endpoint's proxy was asked %q, want %q", got, want)
	}
}

func TestProxy_Failures(t *testing.T) {
	t.Parallel()
	authed := testproxy.StartTinyproxy(t, testproxy.TinyproxyOptions{User: "herald", Password: "pr0xy-s3cret-pw"})
	portsOnly := testproxy.StartTinyproxy(t, testproxy.TinyproxyOptions{ConnectPorts: []int{1}})
	socks := testproxy.StartSOCKS5(t, "herald", "s0cks-s3cret-pw")
	_, port, ca := receiver(t)
	url := "https://receiver.test:" + port + "/hook"
	tests := []struct {
		name, proxy, want string
	}{
		{"credentials missing", "http://" + authed.Addr, "407"},
		{"credentials wrong", "http://herald:wrong-password-here@" + authed.Addr, "CONNECT refused"}, // tinyproxy answers 401
		{"CONNECT to a port the proxy refuses", "http://" + portsOnly.Addr, "403"},
		{"proxy unreachable", "http://" + closedPort(t), "connection refused"},
		{"socks5 credentials wrong", "socks5://herald:wrong-password-here@" + socks.Addr, "socks"},
		{"socks5 unreachable", "socks5://" + closedPort(t), "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newTestClient(t, proxyConfig(t, ca, tt.proxy, &loopbackRecorder{t: t}))
			o := send(t, c, url)
			if o.Class != destination.Retryable || o.ErrorKind != destination.KindProxy || !strings.Contains(o.Error, tt.want) {
				t.Fatalf("got %q %q (%s), want retryable proxy_failed mentioning %q", o.Class, o.ErrorKind, o.Error, tt.want)
			}
			for _, secret := range []string{"wrong-password-here", "pr0xy-s3cret-pw", "s0cks-s3cret-pw"} {
				if strings.Contains(o.Error, secret) {
					t.Errorf("the error shows a proxy password: %s", o.Error)
				}
			}
		})
	}
	c := newTestClient(t, proxyConfig(t, ca, "http://herald:pr0xy-s3cret-pw@"+authed.Addr, &loopbackRecorder{t: t}))
	if o := send(t, c, url); o.Class != destination.Success {
		t.Fatalf("with the right credentials: %q %q (%s)", o.Class, o.ErrorKind, o.Error)
	}
}

// An https:// proxy: TLS to the proxy (checked against the node's roots), CONNECT inside it,
// and TLS to the receiver inside the tunnel.
func TestProxy_HTTPSProxy(t *testing.T) {
	t.Parallel()
	tp := testproxy.StartTinyproxy(t, testproxy.TinyproxyOptions{})
	_, port, ca := receiver(t)
	front := testproxy.TLSFront(t, ca.Server(t).TLS, tp.Addr)
	c := newTestClient(t, proxyConfig(t, ca, "https://"+front, &loopbackRecorder{t: t}))
	if o := send(t, c, "https://receiver.test:"+port+"/hook"); o.Class != destination.Success {
		t.Fatalf("through the https proxy: %q %q (%s)\n%s", o.Class, o.ErrorKind, o.Error, tp.Log())
	}
	if got, want := tp.Requests(t), []string{"CONNECT 127.0.0.1:" + port + " HTTP/1.1"}; !slices.Equal(got, want) {
		t.Errorf("tinyproxy was asked %q, want %q", got, want)
	}

	// A proxy certificate the node does not trust is a proxy failure.
	other := testcert.NewCA(t, "untrusted")
	untrusted := testproxy.TLSFront(t, other.Server(t).TLS, tp.Addr)
	c = newTestClient(t, proxyConfig(t, ca, "https://"+untrusted, &loopbackRecorder{t: t}))
	if o := send(t, c, "https://receiver.test:"+port+"/hook"); o.ErrorKind != destination.KindProxy {
		t.Fatalf("through an untrusted https proxy: %q %q (%s), want proxy_failed", o.Class, o.ErrorKind, o.Error)
	}
}

func TestProxy_SOCKS5(t *testing.T) {
	t.Parallel()
	socks := testproxy.StartSOCKS5(t, "herald", "s0cks-pw")
	_, port, ca := receiver(t)
	rec := &loopbackRecorder{t: t}
	c := newTestClient(t, proxyConfig(t, ca, "socks5://herald:s0cks-pw@"+socks.Addr, rec))
	if o := send(t, c, "https://receiver.test:"+port+"/hook"); o.Class != destination.Success {
		t.Fatalf("through SOCKS5: %q %q (%s)", o.Class, o.ErrorKind, o.Error)
	}
	if got, want := socks.Destinations(), []string{"127.0.0.1:" + port}; !slices.Equal(got, want) {
		t.Errorf("the SOCKS5 server was asked for %q, want %q", got, want)
	}
	if got := rec.dialled(); !slices.Equal(got, []string{socks.Addr}) {
		t.Errorf("dialled %q, want only the proxy %s", got, socks.Addr)
	}

	enforcing := proxyConfig(t, ca, "socks5://herald:s0cks-pw@"+socks.Addr, rec)
	enforcing.ProxyEnforcing = true
	c = newTestClient(t, enforcing)
	if o := send(t, c, "https://localhost:"+port+"/hook"); o.Class != destination.Success {
		t.Fatalf("through an enforcing SOCKS5 proxy: %q %q (%s)", o.Class, o.ErrorKind, o.Error)
	}
	if got := socks.Destinations(); len(got) != 2 || got[1] != "localhost:"+port {
		t.Errorf("the enforcing SOCKS5 proxy was asked for %q, want the host name last", got)
	}

	// Internal destinations are refused before the SOCKS5 proxy is asked.
	guarded := newTestClient(t, Config{Proxy: "socks5://herald:s0cks-pw@" + socks.Addr, DialHook: rec.hook,
		Resolver: staticResolver(map[string][]string{"internal.test": {"10.0.0.1"}})})
	before := len(socks.Destinations())
	for _, u := range []string{"https://internal.test/", "https://127.0.0.1:" + port + "/"} {
		if o := send(t, guarded, u); o.ErrorKind != destination.KindBlocked {
			t.Errorf("%s through SOCKS5: %q %q (%s), want blocked_destination", u, o.Class, o.ErrorKind, o.Error)
		}
	}
	if got := socks.Destinations(); len(got) != before {
		t.Errorf("the SOCKS5 proxy was asked for %q after the refused ones", got[before:])
	}
}

func TestCheckProxyURL(t *testing.T) {
	t.Parallel()
	c := newTestClient(t, Config{})
	tests := []struct {
		in, want string // want "" means accepted
	}{
		{"http://proxy.example.com:3128", ""},
		{"https://user:pw@proxy.example.com", ""},
		{"socks5://proxy.example.com", ""},
		{"socks5h://proxy.example.com:1080", ""},
		{"ftp://proxy.example.com", "not supported"},
		{"proxy.example.com:3128", "not supported"},
		{"//proxy.example.com", "absolute"},
		{"http://", "no host"},
		{"http://proxy.example.com/path", "no path"},
		{"http://proxy.example.com:99999", "out of range"},
		{"http://10.1.2.3:3128", "private"},
		{"http://127.0.0.1:3128", "loopback"},
		{"socks5://[::1]:1080", "loopback"},
		{"http://169.254.169.254", "link-local"},
	}
	for _, tt := range tests {
		err := c.CheckProxyURL(tt.in)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckProxyURL(%q) = %v, want accepted", tt.in, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("CheckProxyURL(%q) = %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
	if err := (Config{Proxy: "http://user:pw@[bad"}).Validate(); err == nil || strings.Contains(err.Error(), "pw") {
		t.Errorf("Validate of a bad proxy URL = %v, want an error without the password", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cfg  Config
		want string // "" accepted
	}{
		{Config{}, ""},
		{Config{Proxy: "http://proxy.internal:3128"}, ""},
		{Config{Proxy: "socks5://u:p@10.0.0.5", ProxyEnforcing: true}, ""},
		{Config{ProxyEnforcing: true}, "needs --egress-proxy"},
		{Config{Proxy: "gopher://proxy"}, "not supported"},
	} {
		err := tt.cfg.Validate()
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
	}
}
