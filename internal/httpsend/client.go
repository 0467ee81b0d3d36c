// Package httpsend is the outbound HTTP client that delivers webhooks. It owns three concerns the
// dispatcher should not have to think about: not being turned against the operator's own network
// (the guard checks every address at dial time), bounding every attempt in time and memory, and
// turning whatever happened into an Outcome the dispatcher can act on.
package httpsend

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/telemetry"
)

const (
	DefaultUserAgent        = "Herald-Webhooks/0.1 (+https://github.com/heraldhq/herald)"
	DefaultMaxResponseBytes = 4096
	// DefaultTimeout bounds an attempt whose Request.Timeout is zero; an unbounded attempt would
	// hold a worker for as long as a receiver cares to stall.
	DefaultTimeout = 30 * time.Second

	// drainLimit is how much of the body beyond the recorded part we read so the connection can be
	// reused; past that, closing the connection is cheaper than reading on.
	drainLimit          = 64 << 10
	maxHeaderBytes      = 64 << 10
	tlsHandshakeTimeout = 10 * time.Second
	idleConnTimeout     = 90 * time.Second
	maxIdleConns        = 1024
	maxIdleConnsPerHost = 100
)

// Config configures a Client. The zero value is the production setting: https only, no internal
// destinations, the system resolver.
type Config struct {
	AllowHTTP        bool           // permit http:// URLs (dev mode); otherwise https only
	AllowLoopback    bool           // permit 127.0.0.0/8 and ::1 (dev mode)
	AllowCIDRs       []netip.Prefix // operator allow-list for internal destinations; overrides every block
	UserAgent        string         // default DefaultUserAgent
	MaxResponseBytes int            // bytes of response body kept for the attempt record; default 4096

	// DialHook, when set, is called with the network and the resolved "ip:port" just before every
	// dial, after the guard has approved it. A non-nil error replaces the dial (and is reported as
	// a dial error), so tests can record destinations without any packet leaving the machine.
	DialHook func(ctx context.Context, network, address string) error
	// Resolver is used for every lookup; nil means net.DefaultResolver.
	Resolver Resolver
	// TLSConfig is cloned; nil means system roots. MinVersion defaults to TLS 1.2. Its roots
	// also check an https:// proxy's certificate.
	TLSConfig *tls.Config

	// Proxy is the node's outbound proxy (--egress-proxy): http://, https:// or socks5://, with
	// optional userinfo; "" sends directly. The operator chose it, so its own address is not
	// held to the guard (it may well be on a private network); an endpoint's own proxy is.
	Proxy string
	// ProxyEnforcing declares Proxy an SSRF-enforcing proxy: Herald then hands it host names
	// instead of resolving and checking them itself (see egress.go and docs/endpoints-auth.md).
	ProxyEnforcing bool
	// MaxTransports bounds the transports (connection pools) kept for endpoints with their own
	// client certificate, CA bundle or proxy; DefaultMaxTransports if 0.
	MaxTransports int
}

// Client sends webhook requests. It is safe for concurrent use; create one and share it, since its
// value is the connection pool. With derives clients for endpoints that send differently (a
// client certificate, a CA bundle, a proxy of their own): they share this client's guard,
// limits and a bounded cache of transports (egress.go).
type Client struct {
	*core
	// Requests go straight to the Transport, not through an http.Client. An http.Client exists to
	// follow redirects and pays for it on every request (it clones the header and URL in case it
	// must follow one); we never follow them, since a redirect could point past the registration
	// check and would silently move signed payloads elsewhere. A 3xx is returned as it came and
	// classified Permanent.
	//
	// transport is the node's default transport (its TLS settings and --egress-proxy); a client
	// from With sends through the cached transport of its route instead.
	transport *http.Transport
	route     *route // nil: transport
}

// core is what a Client and the clients derived from it with With share.
type core struct {
	dialer      net.Dialer // guarded: its Control re-checks every socket address
	proxyDialer net.Dialer // for the node's own proxy, which the operator chose: not guarded
	resolver    Resolver
	guard       *guard
	dialHook    func(ctx context.Context, network, address string) error
	allowHTTP   bool
	maxResponse int
	// Header values shared by every request. The transport only reads header values, so one slice
	// serves all requests instead of one allocation each.
	userAgent   []string
	contentType []string
	// bufs holds MaxResponseBytes buffers for bodies of unknown length; the record gets an
	// exact-size copy, so the pool never hands out memory a caller still holds.
	bufs sync.Pool
	// tlsConfig is the node's outbound TLS configuration, which routes clone.
	tlsConfig *tls.Config
	// node is the node's route (its --egress-proxy, or direct), which With's options fall back to.
	node *route
	// transports holds the transports of derived clients' routes, bounded in number.
	transports *transportCache
}

// New returns a Client for cfg. A cfg.Proxy that does not parse (Config.Validate says why)
// makes every request fail with ErrorKind proxy_failed rather than go out directly.
func New(cfg Config) *Client {
	cr := &core{
		resolver:    cfg.Resolver,
		guard:       newGuard(cfg),
		dialHook:    cfg.DialHook,
		allowHTTP:   cfg.AllowHTTP,
		maxResponse: cfg.MaxResponseBytes,
		userAgent:   []string{cfg.UserAgent},
		contentType: []string{"application/json"},
	}
	c := &Client{core: cr}
	if cr.resolver == nil {
		cr.resolver = net.DefaultResolver
	}
	if cr.maxResponse <= 0 {
		cr.maxResponse = DefaultMaxResponseBytes
	}
	if cfg.UserAgent == "" {
		cr.userAgent[0] = DefaultUserAgent
	}
	size := cr.maxResponse
	cr.bufs.New = func() any {
		b := make([]byte, size)
		return &b
	}
	cr.dialer = net.Dialer{
		KeepAlive:      30 * time.Second,
		ControlContext: c.control,
	}
	cr.proxyDialer = net.Dialer{KeepAlive: 30 * time.Second}

	tlsCfg := &tls.Config{}
	if cfg.TLSConfig != nil {
		tlsCfg = cfg.TLSConfig.Clone()
	}
	if tlsCfg.MinVersion == 0 {
		tlsCfg.MinVersion = tls.VersionTLS12
	}
	cr.tlsConfig = tlsCfg
	cr.node = nodeRoute(cfg)
	cr.transports = newTransportCache(cfg.MaxTransports, c.newTransport)
	c.transport = c.newTransport(cr.node)
	return c
}

// newTransport is the transport of one route: the route's TLS settings, and its proxy (dialled
// by dialRoute) or none. Its limits are the same for every route.
func (c *Client) newTransport(r *route) *http.Transport {
	tlsCfg := c.tlsConfig
	if r.tls != nil {
		tlsCfg = r.tls
	}
	// Each transport its own copy: a transport writes its TLS config when it first sends (the
	// HTTP/2 protocols in NextProtos), so transports sharing one would race.
	tlsCfg = tlsCfg.Clone()
	return &http.Transport{
		// No http.Transport proxy, ever: it would make the connection for us, to addresses the
		// guard never saw. A route's proxy is dialled by dialRoute, which checks the destination
		// first and asks the proxy for the checked address (egress.go).
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return c.dialRoute(ctx, r, network, addr)
		},
		TLSClientConfig:        tlsCfg,
		TLSHandshakeTimeout:    tlsHandshakeTimeout,
		ForceAttemptHTTP2:      true, // needed for HTTP/2 because DialContext and TLSClientConfig are custom
		MaxIdleConns:           r.maxIdle(),
		MaxIdleConnsPerHost:    r.maxIdlePerHost(),
		IdleConnTimeout:        idleConnTimeout,
		MaxResponseHeaderBytes: maxHeaderBytes,
		// We never ask for gzip, so a receiver cannot make us inflate a bomb; we only keep a few KiB.
		DisableCompression: true,
	}
}

// Close closes idle connections. In-flight requests are not interrupted; cancel their contexts.
func (c *Client) Close() {
	c.transport.CloseIdleConnections()
	c.transports.closeIdle()
}

// Blocked reports whether the guard refuses addr under this client's configuration.
func (c *Client) Blocked(addr netip.Addr) bool {
	return c.guard.reason(addr) != ""
}

// Request is one delivery attempt.
type Request struct {
	URL string
	// Header already contains signature headers. Send adds Content-Type: application/json if absent
	// and sets User-Agent. Send does not modify the map, so one Header may be shared.
	Header http.Header
	Body   []byte
	// Timeout bounds the whole attempt: DNS, connect, TLS, headers and body. Zero means DefaultTimeout.
	Timeout time.Duration
	// Method is the request's method; "" is POST (OPTIONS: the CloudEvents webhook handshake).
	Method string
	// ResponseHeader, when set, is called with the response's header before its body is read.
	ResponseHeader func(http.Header)
}

// Send POSTs r and reports what happened. It never returns without an Outcome and never takes
// longer than r.Timeout (plus scheduling noise), whatever the receiver does.
func (c *Client) Send(ctx context.Context, r Request) destination.Outcome {
	start := time.Now()
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	method := r.Method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(ctx, method, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return destination.Outcome{Class: destination.Permanent, ErrorKind: destination.KindInvalidURL, Error: "invalid URL: " + unwrapURLError(err).Error(),
			Latency: time.Since(start)}
	}
	if err := c.checkURL(req.URL); err != nil {
		kind := destination.KindInvalidURL
		var be *BlockedError
		if errors.As(err, &be) {
			kind = destination.KindBlocked
		}
		return destination.Outcome{Class: destination.Permanent, ErrorKind: kind, Error: err.Error(), Latency: time.Since(start)}
	}
	req.Header = c.header(r.Header)
	// The attempt's trace context (the dispatcher's span, child of the publish) goes to the
	// receiver as W3C traceparent/tracestate, replacing any an endpoint's own headers set.
	telemetry.Inject(ctx, req.Header)

	resp, err := c.roundTripper().RoundTrip(req)
	if err != nil {
		elapsed := time.Since(start)
		class, kind := classifyError(err)
		return destination.Outcome{Class: class, ErrorKind: kind, Error: describe(kind, err, elapsed), Latency: elapsed}
	}

	o := destination.Outcome{StatusCode: resp.StatusCode}
	if r.ResponseHeader != nil {
		r.ResponseHeader(resp.Header)
	}
	classifyStatus(&o, resp, req.URL, time.Now())
	body, err := c.readResponse(resp)
	o.Response = redactEcho(body, r.Header)
	if err != nil {
		// The class stays what the status said. A receiver that answered 2xx has accepted the
		// delivery; a body that then stalls or breaks is not a reason to deliver a duplicate. For
		// other statuses the status is still what the dispatcher must act on. ErrorKind records
		// the body failure, since StatusCode already records the status.
		_, kind := classifyError(err)
		if kind == destination.KindTimeout {
			kind = destination.KindBodyTimeout
		}
		msg := "reading response body: " + describe(kind, err, time.Since(start))
		if o.Error != "" {
			msg = o.Error + "; " + msg
		}
		o.ErrorKind, o.Error = kind, msg
	}
	o.Latency = time.Since(start)
	return o
}

// header builds the outgoing header without copying values or touching the caller's map.
func (c *Client) header(in http.Header) http.Header {
	h := make(http.Header, len(in)+2)
	hasType := false
	for k, v := range in {
		switch {
		case strings.EqualFold(k, "User-Agent"):
			continue // ours identifies the platform to receivers' allow-lists and logs
		case strings.EqualFold(k, "Content-Type"):
			hasType = len(v) > 0
		}
		h[k] = v
	}
	h["User-Agent"] = c.userAgent
	if !hasType {
		h["Content-Type"] = c.contentType
	}
	return h
}

// readResponse keeps the first maxResponse bytes of the body, reads at most drainLimit more so the
// connection can return to the pool, and closes the body. It never reads more than that, so a
// receiver answering with gigabytes costs us a few KiB and a new connection.
func (c *Client) readResponse(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	if resp.ContentLength == 0 {
		return nil, nil
	}

	// With a known, small length, read straight into an exact buffer; the spare byte lets the same
	// loop see EOF, which is what tells the transport the connection can be reused.
	if cl := resp.ContentLength; cl > 0 && cl < int64(c.maxResponse) {
		buf := make([]byte, cl+1)
		n, eof, err := readUpTo(resp.Body, buf)
		if err == nil && !eof {
			err = drain(resp.Body)
		}
		return buf[:n:n], err
	}

	bp := c.bufs.Get().(*[]byte)
	defer c.bufs.Put(bp)
	n, eof, err := readUpTo(resp.Body, *bp)
	var out []byte
	if n > 0 {
		out = bytes.Clone((*bp)[:n])
	}
	if err == nil && !eof {
		err = drain(resp.Body)
	}
	return out, err
}

// readUpTo reads until buf is full, EOF, or an error.
func readUpTo(r io.Reader, buf []byte) (n int, eof bool, err error) {
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF {
			return n, true, nil
		}
		if err != nil {
			return n, false, err
		}
	}
	return n, false, nil
}

func drain(r io.Reader) error {
	lr := io.LimitedReader{R: r, N: drainLimit}
	_, err := io.Copy(io.Discard, &lr)
	return err
}

// describe is the human-readable Error for a failure.
func describe(kind string, err error, elapsed time.Duration) string {
	switch kind {
	case destination.KindTimeout, destination.KindBodyTimeout:
		return fmt.Sprintf("timed out after %v: %v", elapsed.Round(time.Millisecond), err)
	}
	return err.Error()
}

// unwrapURLError drops the *url.Error wrapper, whose message repeats the method and URL the caller
// already has.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redactedMark replaces credentials a receiver echoes back.
const redactedMark = "[redacted]"

// minRedact is the shortest header value worth redacting: shorter ones are not credentials and
// would match ordinary text.
const minRedact = 12

// redactEcho removes from a response excerpt the signatures and credential headers of the request,
// which receivers that echo their request (debugging endpoints, request bins) would otherwise put
// into the stored attempt, where everyone who can read attempts would see them.
func redactEcho(body []byte, h http.Header) []byte {
	if len(body) == 0 || len(h) == 0 {
		return body
	}
	for name, values := range h {
		lower := strings.ToLower(name)
		sig := lower == "webhook-signature" || lower == "svix-signature"
		if !sig && !credentialHeader(lower) {
			continue
		}
		for _, v := range values {
			parts := []string{v}
			if sig {
				// "v1,<base64> v1a,<base64>": each entry's signature on its own, since a receiver may
				// echo them one by one.
				parts = strings.Fields(v)
				for i, p := range parts {
					if _, after, ok := strings.Cut(p, ","); ok {
						parts[i] = after
					}
				}
			}
			for _, p := range parts {
				if len(p) >= minRedact && bytes.Contains(body, []byte(p)) {
					body = bytes.ReplaceAll(body, []byte(p), []byte(redactedMark))
				}
			}
		}
	}
	return body
}

// credentialHeader reports whether a (lower-case) header name usually carries a credential.
func credentialHeader(name string) bool {
	switch name {
	case "authorization", "proxy-authorization", "cookie":
		return true
	}
	for _, w := range []string{"token", "secret", "key", "auth", "signature", "password"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}
