package httpsend

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"github.com/heraldhq/herald/internal/destination"
)

// Resolver maps a host name to addresses. *net.Resolver satisfies it; tests inject their own so
// that names resolve to chosen addresses without touching the network.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// specialRange is an address block that webhooks must not reach, with the name we give it in errors.
type specialRange struct {
	prefix netip.Prefix
	name   string
}

// specialRanges lists the blocks a tenant-supplied URL must not reach unless the operator allows them.
// It is built per Client rather than held in a package variable so that nothing global can be
// changed. Order matters: the first match names the reason (broadcast before the wider reserved block).
func specialRanges() []specialRange {
	r := func(p, name string) specialRange { return specialRange{netip.MustParsePrefix(p), name} }
	return []specialRange{
		r("0.0.0.0/8", "unspecified"), // connecting to 0.0.0.0 reaches the local host on Linux
		r("10.0.0.0/8", "private (RFC 1918)"),
		r("100.64.0.0/10", "shared address space (CGNAT)"),
		r("127.0.0.0/8", "loopback"),
		r("169.254.0.0/16", "link-local (cloud metadata)"),
		r("172.16.0.0/12", "private (RFC 1918)"),
		r("192.0.0.0/24", "IETF protocol assignments"),
		r("192.0.2.0/24", "documentation"),
		r("192.168.0.0/16", "private (RFC 1918)"),
		r("198.18.0.0/15", "benchmarking"),
		r("198.51.100.0/24", "documentation"),
		r("203.0.113.0/24", "documentation"),
		r("224.0.0.0/4", "multicast"),
		r("255.255.255.255/32", "broadcast"),
		r("240.0.0.0/4", "reserved"),
		// The deprecated 6to4 relay anycast block (RFC 7526): a relay would forward to whatever
		// IPv6 address the payload names.
		r("192.88.99.0/24", "6to4 relay anycast (deprecated)"),

		r("::/128", "unspecified"),
		r("::1/128", "loopback"),
		r("100::/64", "discard-only"),
		// Teredo embeds an obfuscated IPv4 client and a relay; no webhook receiver lives there.
		r("2001::/32", "Teredo tunnel"),
		r("2001:2::/48", "benchmarking"),
		r("2001:10::/28", "ORCHID"),
		r("2001:20::/28", "ORCHIDv2"),
		// The rest of 2001::/23 (RFC 2928) holds anycast services such as AS112 and AMT relays.
		r("2001::/23", "IETF protocol assignments"),
		r("2001:db8::/32", "documentation"),
		r("3fff::/20", "documentation"),
		r("5f00::/16", "segment routing (SRv6)"),
		// Local-use NAT64 (RFC 8215) translates to whatever IPv4 the local network chooses.
		r("64:ff9b:1::/48", "local-use NAT64"),
		r("fc00::/7", "unique local"),
		r("fe80::/10", "link-local"),
		r("fec0::/10", "site-local"),
		r("ff00::/8", "multicast"),
	}
}

// guard decides which destinations the client may connect to.
type guard struct {
	allowLoopback bool
	allow         []netip.Prefix
	ranges        []specialRange
	global6       netip.Prefix // 2000::/3, the only IPv6 block IANA allocates for global unicast
	nat64         netip.Prefix // 64:ff9b::/96, well-known NAT64
	sixToFour     netip.Prefix // 2002::/16, 6to4
	compat        netip.Prefix // ::/96, IPv4-compatible (deprecated)
	translated    netip.Prefix // ::ffff:0:0:0/96, SIIT IPv4-translated
}

func newGuard(cfg Config) *guard {
	g := &guard{
		allowLoopback: cfg.AllowLoopback,
		ranges:        specialRanges(),
		global6:       netip.MustParsePrefix("2000::/3"),
		nat64:         netip.MustParsePrefix("64:ff9b::/96"),
		sixToFour:     netip.MustParsePrefix("2002::/16"),
		compat:        netip.MustParsePrefix("::/96"),
		translated:    netip.MustParsePrefix("::ffff:0:0:0/96"),
	}
	for _, p := range cfg.AllowCIDRs {
		if p.IsValid() {
			// Masked drops a zone and host bits, so "10.1.2.3/16" behaves as the operator meant.
			g.allow = append(g.allow, p.Masked())
		}
	}
	return g
}

// reason returns why addr is refused, or "" if it may be dialled.
func (g *guard) reason(addr netip.Addr) string {
	if !addr.IsValid() {
		return "invalid address"
	}
	// netip.Prefix.Contains never matches an address with a zone, so drop it before any check;
	// otherwise "fe80::1%eth0" would slip through every IPv6 range.
	addr = addr.WithZone("")
	if g.allowed(addr) {
		return ""
	}
	if v4, form, ok := g.embeddedIPv4(addr); ok {
		if r := g.reason(v4); r != "" {
			return form + " " + v4.String() + ": " + r
		}
		return ""
	}
	if g.allowLoopback && addr.IsLoopback() {
		return ""
	}
	for _, r := range g.ranges {
		if r.prefix.Contains(addr) {
			return r.name
		}
	}
	if addr.Is6() && !g.global6.Contains(addr) {
		// Everything else outside 2000::/3 is unassigned or reserved (RFC 4291): nothing public
		// lives there today, and a block allocated later should be allowed on purpose, not by accident.
		return "reserved (not IPv6 global unicast)"
	}
	return ""
}

func (g *guard) allowed(addr netip.Addr) bool {
	for _, p := range g.allow {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// embeddedIPv4 extracts the IPv4 address carried by IPv6 forms that the kernel, a translator or a
// tunnel turns back into IPv4: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d), SIIT-translated,
// well-known NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:aabb:ccdd::). Without this, ::ffff:127.0.0.1 or
// 64:ff9b::a9fe:a9fe would reach loopback or the metadata service while looking like IPv6.
func (g *guard) embeddedIPv4(addr netip.Addr) (v4 netip.Addr, form string, ok bool) {
	if !addr.Is6() {
		return netip.Addr{}, "", false
	}
	b := addr.As16()
	last := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	switch {
	case addr.Is4In6():
		return last, "IPv4-mapped", true
	case g.compat.Contains(addr):
		// :: and ::1 share the prefix but are the IPv6 unspecified and loopback addresses.
		if addr == netip.IPv6Unspecified() || addr == netip.IPv6Loopback() {
			return netip.Addr{}, "", false
		}
		return last, "IPv4-compatible", true
	case g.translated.Contains(addr):
		return last, "IPv4-translated", true
	case g.nat64.Contains(addr):
		return last, "NAT64", true
	case g.sixToFour.Contains(addr):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), "6to4", true
	}
	return netip.Addr{}, "", false
}

// BlockedError reports a destination the guard refused. Send maps it to a Permanent outcome with
// ErrorKind "blocked_destination".
type BlockedError struct {
	Host   string     // the host as written in the URL (name or literal)
	Addr   netip.Addr // the address that was refused
	Reason string     // e.g. "loopback", "IPv4-mapped 10.0.0.1: private (RFC 1918)"
}

func (e *BlockedError) Error() string {
	if e.Host == "" || e.Host == e.Addr.String() {
		return fmt.Sprintf("destination %s is not allowed (%s)", e.Addr, e.Reason)
	}
	return fmt.Sprintf("destination %s resolves to %s, which is not allowed (%s)", e.Host, e.Addr, e.Reason)
}

// dnsError marks a failed lookup so that it is classified as "dns" whatever the resolver returns.
type dnsError struct {
	host string
	err  error
}

func (e *dnsError) Error() string { return "resolve " + e.host + ": " + e.err.Error() }
func (e *dnsError) Unwrap() error { return e.err }

// dialContext is the Transport's only way out. It resolves the host itself, refuses the connection if
// ANY resolved address is blocked (a mixed answer is the classic rebinding trick), and dials the
// approved literals, so a name that passed registration but now points inside is caught here,
// at every new connection.
func (c *Client) dialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("dial %s: bad port: %w", address, err)
	}

	addrs, err := c.resolveChecked(ctx, network, host)
	if err != nil {
		return nil, err
	}

	// Addresses are tried in resolver order, each bounded only by the attempt's context: the
	// attempt timeout is the budget the operator configured, and most receivers have one address.
	var lastErr error
	for _, ip := range addrs {
		ap := netip.AddrPortFrom(ip.Unmap(), uint16(port))
		addr := ap.String()
		if c.dialHook != nil {
			if err := c.dialHook(ctx, network, addr); err != nil {
				lastErr = &net.OpError{Op: "dial", Net: network, Addr: net.TCPAddrFromAddrPort(ap), Err: err}
				continue
			}
		}
		conn, err := c.dialer.DialContext(ctx, network, addr)
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

// resolveChecked resolves host (or parses it, when it is an address in any notation) and
// refuses it if ANY of its addresses is blocked: a mixed answer is the classic rebinding trick.
func (c *Client) resolveChecked(ctx context.Context, network, host string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else if ip, ok := parseIPv4(host); ok {
		// "0x7f.1" and friends are addresses to inet_aton (and so to a cgo resolver): treat them
		// as the address registration saw, rather than as names for the resolver to interpret.
		addrs = []netip.Addr{ip}
	} else {
		addrs, err = c.resolver.LookupNetIP(ctx, lookupNetwork(network), host)
		if err != nil {
			return nil, &dnsError{host: host, err: err}
		}
		if len(addrs) == 0 {
			return nil, &dnsError{host: host, err: fmt.Errorf("no addresses")}
		}
	}
	for _, ip := range addrs {
		if r := c.guard.reason(ip); r != "" {
			return nil, &BlockedError{Host: host, Addr: ip, Reason: r}
		}
	}
	return addrs, nil
}

// control runs on the raw socket just before connect. dialContext has already checked the address;
// this re-checks what is actually being connected to, so a future change to the dial path (or a
// resolver returning something surprising) cannot quietly open a hole.
func (c *Client) control(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("guard: unexpected socket address %q: %w", address, err)
	}
	if r := c.guard.reason(ap.Addr()); r != "" {
		return &BlockedError{Addr: ap.Addr(), Reason: r}
	}
	return nil
}

func lookupNetwork(network string) string {
	switch network {
	case "tcp4":
		return "ip4"
	case "tcp6":
		return "ip6"
	}
	return "ip"
}

// DialContext opens a TCP connection through the same guard as webhook requests: the host is
// resolved here, every address checked, and only approved literals dialled. Broker destinations
// dial with it, so a broker address is held to the rules of a webhook URL, at every connection.
func (c *Client) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return c.dialContext(ctx, network, address)
}

// ClassifyDialError is the class and kind of an error DialContext (or a library dialling with it)
// returned: blocked destination, DNS, timeout, refused, reset, TLS.
func ClassifyDialError(err error) (destination.Class, string) {
	return classifyError(err)
}
