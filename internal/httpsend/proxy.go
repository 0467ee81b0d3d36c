package httpsend

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/proxy"
)

// Egress through a proxy. The SSRF guard keeps working: by default Herald resolves the
// destination itself, checks every address like a direct dial would, and asks the proxy for
// the checked address ("CONNECT 203.0.113.7:443", a SOCKS5 request with an IP address), so the
// proxy never resolves a name Herald did not check. TLS still runs end to end with the
// receiver, under its host name (SNI and certificate check). A proxy the operator declares
// enforcing (--egress-proxy-enforcing: it refuses internal destinations itself, like
// Smokescreen) gets the host name instead, for deployments where Herald cannot resolve names.
// IP literals in URLs are still checked by Herald in both modes.
//
// The proxy's own address is checked separately from the destination's: the node's proxy is
// the operator's choice (often on a private network) and is dialled as configured; an
// endpoint's own proxy is a tenant's and must pass the guard like any destination, or a tenant
// could reach an internal proxy.

// proxyURL is a parsed proxy URL.
type proxyURL struct {
	scheme   string // http, https or socks5
	hostport string
	host     string
	user     *url.Userinfo
	shown    string // scheme://host:port, without credentials: for errors
}

// parseProxyURL checks a proxy URL: http, https or socks5, a host, an optional port (the
// scheme's default: 80, 443, 1080), optional userinfo, nothing else.
func parseProxyURL(raw string) (*proxyURL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, credentials included
		}
		return nil, fmt.Errorf("invalid proxy URL: %w", err)
	}
	p := &proxyURL{scheme: u.Scheme, user: u.User, host: u.Hostname()}
	port := u.Port()
	switch u.Scheme {
	case "http":
		port = cmpOr(port, "80")
	case "https":
		port = cmpOr(port, "443")
	case "socks5", "socks5h":
		// socks5h (names resolved by the proxy) is what curl calls it; Herald decides what it
		// sends by enforcing mode, so both mean SOCKS5.
		p.scheme = "socks5"
		port = cmpOr(port, "1080")
	case "":
		return nil, errors.New("proxy URL must be absolute, like http://proxy.internal:3128")
	default:
		return nil, fmt.Errorf("proxy URL scheme %q is not supported: use http, https or socks5", u.Scheme)
	}
	switch {
	case p.host == "":
		return nil, errors.New("proxy URL has no host")
	case u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("proxy URL must be scheme://[user:password@]host[:port], with no path or query")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("proxy URL port %q is out of range", port)
	}
	p.hostport = net.JoinHostPort(p.host, port)
	p.shown = p.scheme + "://" + p.hostport
	return p, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ValidateProxyURL checks the form of a proxy URL (scheme, host, port, no path), without the
// guard: CheckProxyURL adds it, and every dial applies it.
func ValidateProxyURL(raw string) error {
	_, err := parseProxyURL(raw)
	return err
}

// CheckProxyURL is the save-time check of an endpoint's proxy URL: its form, and, when its host
// is an IP literal, the guard. A host name is checked at every dial.
func (c *Client) CheckProxyURL(raw string) error {
	p, err := parseProxyURL(raw)
	if err != nil {
		return err
	}
	if err := c.checkHost(p.host); err != nil {
		return fmt.Errorf("proxy %s: %w", p.shown, err)
	}
	return nil
}

// ProxyError is a failure to go through a proxy: it could not be reached, refused the
// credentials, or refused or failed to open the tunnel. Send reports it as proxy_failed. Its
// message names the proxy without credentials.
type ProxyError struct {
	Proxy  string // scheme://host:port
	Target string // what the proxy was asked to reach
	Status int    // the proxy's status for CONNECT, when it answered one
	Err    error
}

func (e *ProxyError) Error() string {
	var b strings.Builder
	b.WriteString("proxy ")
	b.WriteString(e.Proxy)
	if e.Target != "" {
		b.WriteString(" (to " + e.Target + ")")
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *ProxyError) Unwrap() error { return e.Err }

// dialRoute opens a connection to address ("host:port", as the transport asks) by the route:
// directly through the guard, or through its proxy.
func (c *Client) dialRoute(ctx context.Context, r *route, network, address string) (net.Conn, error) {
	if r.proxyErr != nil {
		return nil, &ProxyError{Proxy: "(unusable)", Err: r.proxyErr}
	}
	if r.proxy == nil {
		return c.dialContext(ctx, network, address)
	}
	if r.guardProxy {
		// An endpoint's proxy written as an address is refused before anything is resolved
		// (a name is checked when it is dialled).
		if err := c.checkHost(r.proxy.host); err != nil {
			return nil, fmt.Errorf("proxy %s: %w", r.proxy.shown, err)
		}
	}
	if r.enforcing {
		return c.tunnel(ctx, r, network, address)
	}
	host, port, err := splitHostPort(address)
	if err != nil {
		return nil, err
	}
	addrs, err := c.resolveChecked(ctx, network, host)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for _, ip := range addrs {
		conn, err := c.tunnel(ctx, r, network, netip.AddrPortFrom(ip.Unmap(), port).String())
		if err == nil {
			return conn, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func splitHostPort(address string) (string, uint16, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return "", 0, fmt.Errorf("dial %s: %w", address, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("dial %s: bad port: %w", address, err)
	}
	return host, uint16(port), nil
}

// tunnel asks the route's proxy for a connection to target.
func (c *Client) tunnel(ctx context.Context, r *route, network, target string) (net.Conn, error) {
	p := r.proxy
	fail := func(err error) error {
		var be *BlockedError
		if errors.As(err, &be) {
			return fmt.Errorf("proxy %s: %w", p.shown, err) // a blocked proxy is blocked_destination
		}
		return &ProxyError{Proxy: p.shown, Target: target, Err: err}
	}
	if p.scheme == "socks5" {
		var auth *proxy.Auth
		if p.user != nil {
			pw, _ := p.user.Password()
			auth = &proxy.Auth{User: p.user.Username(), Password: pw}
		}
		d, err := proxy.SOCKS5("tcp", p.hostport, auth, proxyDialer{c: c, r: r})
		if err != nil {
			return nil, fail(err)
		}
		conn, err := d.(proxy.ContextDialer).DialContext(ctx, network, target)
		if err != nil {
			return nil, fail(err)
		}
		return conn, nil
	}
	conn, err := c.dialProxy(ctx, r, network)
	if err != nil {
		return nil, fail(err)
	}
	if p.scheme == "https" {
		tconn := tls.Client(conn, &tls.Config{
			ServerName: p.host,
			RootCAs:    c.tlsConfig.RootCAs,
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"http/1.1"},
		})
		if err := tconn.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fail(fmt.Errorf("TLS to the proxy: %w", err))
		}
		conn = tconn
	}
	tc, err := connect(ctx, conn, p, target)
	if err != nil {
		conn.Close()
		var pe *ProxyError
		if errors.As(err, &pe) {
			pe.Proxy, pe.Target = p.shown, target
			return nil, pe
		}
		return nil, fail(err)
	}
	return tc, nil
}

// dialProxy opens a TCP connection to the route's proxy: through the guard for an endpoint's
// proxy, as configured for the node's.
func (c *Client) dialProxy(ctx context.Context, r *route, network string) (net.Conn, error) {
	if r.guardProxy {
		return c.dialContext(ctx, network, r.proxy.hostport)
	}
	host, port, err := splitHostPort(r.proxy.hostport)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else if addrs, err = c.resolver.LookupNetIP(ctx, lookupNetwork(network), host); err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	var lastErr error = errors.New("no addresses")
	for _, ip := range addrs {
		ap := netip.AddrPortFrom(ip.Unmap(), port)
		if c.dialHook != nil {
			if err := c.dialHook(ctx, network, ap.String()); err != nil {
				lastErr = &net.OpError{Op: "dial", Net: network, Addr: net.TCPAddrFromAddrPort(ap), Err: err}
				continue
			}
		}
		conn, err := c.proxyDialer.DialContext(ctx, network, ap.String())
		if err == nil {
			return conn, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// proxyDialer lets the SOCKS5 client reach the proxy through dialProxy.
type proxyDialer struct {
	c *Client
	r *route
}

func (d proxyDialer) Dial(network, _ string) (net.Conn, error) {
	return d.c.dialProxy(context.Background(), d.r, network)
}

func (d proxyDialer) DialContext(ctx context.Context, network, _ string) (net.Conn, error) {
	return d.c.dialProxy(ctx, d.r, network)
}

// maxConnectAnswer bounds the proxy's answer to CONNECT.
const maxConnectAnswer = 16 << 10

// connect asks an HTTP proxy, on conn, for a tunnel to target.
func connect(ctx context.Context, conn net.Conn, p *proxyURL, target string) (net.Conn, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
		defer conn.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	var b strings.Builder
	b.WriteString("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n")
	if p.user != nil {
		pw, _ := p.user.Password()
		b.WriteString("Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(p.user.Username()+":"+pw)) + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	br := bufio.NewReaderSize(&limitedConn{Conn: conn, n: maxConnectAnswer}, 1024)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return nil, fmt.Errorf("read the answer to CONNECT: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		resp.Body.Close()
		return nil, &ProxyError{Status: resp.StatusCode, Err: fmt.Errorf("CONNECT refused: %s", resp.Status)}
	}
	if br.Buffered() > 0 {
		// The proxy may not speak first in a tunnel; a server-first protocol through it is not ours.
		return nil, errors.New("the proxy sent data after its answer to CONNECT")
	}
	return conn, nil
}

// limitedConn reads at most n bytes: a proxy cannot make us read an endless answer to CONNECT.
type limitedConn struct {
	net.Conn
	n int
}

func (l *limitedConn) Read(b []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("the answer to CONNECT is too long")
	}
	if len(b) > l.n {
		b = b[:l.n]
	}
	n, err := l.Conn.Read(b)
	l.n -= n
	return n, err
}
