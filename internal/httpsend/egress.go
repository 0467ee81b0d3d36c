package httpsend

import (
	"container/list"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// An endpoint may send differently from the node's default: present a client certificate
// (mutual TLS), check the receiver's certificate against its own CA bundle, or go through a proxy
// of its own (or none). Each such combination is a route with its own http.Transport, since a
// transport's TLS settings and dialer are fixed; transports are kept in a cache bounded in
// number (Config.MaxTransports), so that a tenant creating endpoints cannot make Herald hold an
// unbounded number of connection pools.
//
// Connection reuse is kept: every attempt of an endpoint (and of every endpoint with the same
// certificate, CA bundle and proxy) finds its route's transport in the cache and reuses its
// kept-alive connections. Routes are keyed by a hash of their settings, so rotating a
// certificate makes a new route, whose first request opens a new connection with the new
// certificate; the old route's transport is evicted in time and its idle connections closed.

// DefaultMaxTransports bounds the transports of a Client's routes (see MaxTransports).
const DefaultMaxTransports = 128

const (
	// routeMaxIdlePerHost bounds the idle connections each route's transport keeps: a route
	// usually serves one endpoint and one host. With DefaultMaxTransports routes that is at most
	// 8,192 idle connections per Client, and the dispatcher's --max-in-flight bounds those in use.
	routeMaxIdlePerHost = 64
	// routeIdle drops a cached transport no request has used for this long, when another is added.
	routeIdle = 10 * time.Minute
)

// Options are what an endpoint changes of how its requests leave.
type Options struct {
	// ClientCertificate (PEM, leaf first, then intermediates) and ClientKey (PEM) are presented
	// when the receiver asks for a client certificate. Both or neither.
	ClientCertificate string
	ClientKey         string
	// CABundle (PEM) replaces the roots the receiver's certificate must chain to.
	CABundle string
	// Proxy: "" is the node's (Config.Proxy), ProxyDirect sends directly, otherwise the URL of
	// the endpoint's own proxy (http://, https:// or socks5://, userinfo allowed), whose address
	// must pass the guard like any destination.
	Proxy string
}

// ProxyDirect in Options.Proxy sends directly even when the node has a proxy.
const ProxyDirect = "none"

// route is one way out: TLS settings, proxy, and whether the proxy is trusted to enforce the
// guard itself.
type route struct {
	key string      // the cache key: a hash of the settings, never the settings themselves
	tls *tls.Config // nil: the client's
	// proxy is nil for a direct route. proxyErr is set instead when the proxy's URL does not
	// parse: every request of the route then fails with it.
	proxy    *proxyURL
	proxyErr error
	// guardProxy: the proxy's own address must pass the guard (an endpoint's proxy); the node's
	// proxy is the operator's choice.
	guardProxy bool
	// enforcing: the proxy checks destinations itself, so it gets host names (the node's proxy
	// with --egress-proxy-enforcing only).
	enforcing bool
	// node: this is the node's default route (its transport has the node's larger idle limits).
	node bool
}

func (r *route) maxIdle() int {
	if r.node {
		return maxIdleConns
	}
	return routeMaxIdlePerHost
}

func (r *route) maxIdlePerHost() int {
	if r.node {
		return maxIdleConnsPerHost
	}
	return routeMaxIdlePerHost
}

// nodeRoute is the node's default route.
func nodeRoute(cfg Config) *route {
	r := &route{node: true, key: "node"}
	if cfg.Proxy != "" && cfg.Proxy != ProxyDirect {
		r.proxy, r.proxyErr = parseProxyURL(cfg.Proxy)
		r.enforcing = cfg.ProxyEnforcing
	}
	return r
}

// Validate checks the parts of cfg that can be wrong: the proxy's URL.
func (cfg Config) Validate() error {
	if cfg.Proxy == "" || cfg.Proxy == ProxyDirect {
		if cfg.ProxyEnforcing {
			return errors.New("--egress-proxy-enforcing needs --egress-proxy")
		}
		return nil
	}
	if _, err := parseProxyURL(cfg.Proxy); err != nil {
		return fmt.Errorf("--egress-proxy: %w", err)
	}
	return nil
}

// With returns a client that sends with o: c itself when o changes nothing, otherwise a client
// sharing c's guard, limits and transport cache. It fails when the certificate, key or CA bundle
// do not parse; a proxy URL that does not parse fails each request instead (proxy_failed).
func (c *Client) With(o Options) (*Client, error) {
	if o == (Options{}) {
		return c, nil
	}
	r := &route{}
	switch o.Proxy {
	case "":
		r.proxy, r.proxyErr, r.enforcing = c.node.proxy, c.node.proxyErr, c.node.enforcing
	case ProxyDirect:
	default:
		r.proxy, r.proxyErr = parseProxyURL(o.Proxy)
		r.guardProxy = true
	}
	if o.ClientCertificate != "" || o.ClientKey != "" || o.CABundle != "" {
		cfg := c.tlsConfig.Clone()
		if o.ClientCertificate != "" || o.ClientKey != "" {
			cert, err := ParseClientCertificate(o.ClientCertificate, o.ClientKey)
			if err != nil {
				return nil, err
			}
			// Presented whatever CAs the server says it accepts: a receiver that asks for one
			// and names no CA, or another, still gets it, and decides.
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
		}
		if o.CABundle != "" {
			pool, err := ParseCABundle(o.CABundle)
			if err != nil {
				return nil, err
			}
			cfg.RootCAs = pool
		}
		r.tls = cfg
	}
	if r.tls == nil && r.proxy == c.node.proxy && r.proxyErr == c.node.proxyErr && r.enforcing == c.node.enforcing && !r.guardProxy {
		return c, nil // the node's route after all ("" proxy, nothing else)
	}
	r.key = routeKey(o, c.node)
	return &Client{core: c.core, transport: c.transport, route: r}, nil
}

// routeKey hashes everything that makes a route, so that equal settings share a transport and
// no credential is kept in clear as a map key.
func routeKey(o Options, node *route) string {
	h := sha256.New()
	proxy := o.Proxy
	if proxy == "" {
		proxy = "node" // the node's proxy is fixed for the client's life
	}
	for _, part := range []string{o.ClientCertificate, o.ClientKey, o.CABundle, proxy} {
		fmt.Fprintf(h, "%d:%s", len(part), part)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// roundTripper is the transport this client's requests go through.
func (c *Client) roundTripper() http.RoundTripper {
	if c.route == nil {
		return c.transport
	}
	return c.transports.get(c.route)
}

// ParseClientCertificate parses a client certificate chain and its key (PEM) and checks that
// they belong together. Its errors never contain key material.
func ParseClientCertificate(certPEM, keyPEM string) (tls.Certificate, error) {
	if certPEM == "" || keyPEM == "" {
		return tls.Certificate{}, errors.New("client certificate: the certificate and its key go together")
	}
	cert, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("client certificate: %w", err)
	}
	return cert, nil
}

// ParseCABundle parses PEM certificates into a pool; it fails on a block that is not a
// certificate or does not parse, and on a bundle with none.
func ParseCABundle(bundle string) (*x509.CertPool, error) {
	certs, err := ParseCertificates(bundle)
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// ParseCertificates parses every PEM block of s as an X.509 certificate, in order. Text between
// blocks is ignored, as openssl does; anything else is an error naming the block.
func ParseCertificates(s string) ([]*x509.Certificate, error) {
	rest := []byte(s)
	var certs []*x509.Certificate
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is a %q, not a CERTIFICATE", n, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse: %w", n, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found (-----BEGIN CERTIFICATE-----)")
	}
	return certs, nil
}

// transportCache holds the transports of routes, at most max, least recently used first out.
type transportCache struct {
	mu      sync.Mutex
	max     int
	entries map[string]*list.Element // of *cached
	lru     *list.List               // front: most recently used
	make    func(*route) *http.Transport
}

type cached struct {
	key      string
	t        *http.Transport
	lastUsed time.Time
}

func newTransportCache(max int, mk func(*route) *http.Transport) *transportCache {
	if max <= 0 {
		max = DefaultMaxTransports
	}
	return &transportCache{max: max, entries: map[string]*list.Element{}, lru: list.New(), make: mk}
}

// get returns the route's transport, making it if it is not cached. Making one may evict the
// least recently used (and those idle for routeIdle): their idle connections are closed; a
// request still in flight on one finishes, and its connection is closed when it has been idle
// for idleConnTimeout.
func (tc *transportCache) get(r *route) *http.Transport {
	now := time.Now()
	tc.mu.Lock()
	if el, ok := tc.entries[r.key]; ok {
		e := el.Value.(*cached)
		e.lastUsed = now
		tc.lru.MoveToFront(el)
		tc.mu.Unlock()
		return e.t
	}
	e := &cached{key: r.key, t: tc.make(r), lastUsed: now}
	tc.entries[r.key] = tc.lru.PushFront(e)
	var evicted []*http.Transport
	for el := tc.lru.Back(); el != nil && el != tc.lru.Front(); {
		old := el.Value.(*cached)
		if tc.lru.Len() <= tc.max && now.Sub(old.lastUsed) < routeIdle {
			break
		}
		prev := el.Prev()
		tc.lru.Remove(el)
		delete(tc.entries, old.key)
		evicted = append(evicted, old.t)
		el = prev
	}
	tc.mu.Unlock()
	for _, t := range evicted {
		t.CloseIdleConnections()
	}
	return e.t
}

// len is how many transports are cached.
func (tc *transportCache) len() int {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.lru.Len()
}

// closeIdle closes the idle connections of every cached transport.
func (tc *transportCache) closeIdle() {
	tc.mu.Lock()
	ts := make([]*http.Transport, 0, tc.lru.Len())
	for el := tc.lru.Front(); el != nil; el = el.Next() {
		ts = append(ts, el.Value.(*cached).t)
	}
	tc.mu.Unlock()
	for _, t := range ts {
		t.CloseIdleConnections()
	}
}
