package httpsend

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/destination"
)

// resolverFunc lets a test decide what every name resolves to, without DNS.
type resolverFunc func(ctx context.Context, network, host string) ([]netip.Addr, error)

func (f resolverFunc) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return f(ctx, network, host)
}

// staticResolver resolves the names in m and fails for any other.
func staticResolver(m map[string][]string) resolverFunc {
	return func(_ context.Context, _, host string) ([]netip.Addr, error) {
		ss, ok := m[host]
		if !ok {
			return nil, fmt.Errorf("test resolver: no such host %q", host)
		}
		addrs := make([]netip.Addr, len(ss))
		for i, s := range ss {
			addrs[i] = netip.MustParseAddr(s)
		}
		return addrs, nil
	}
}

// dialRecorder records every address the client would dial and refuses it, so that nothing leaves
// the machine. It refuses with ECONNREFUSED, as a closed port would.
type dialRecorder struct {
	mu    sync.Mutex
	addrs []string
}

func (d *dialRecorder) hook(_ context.Context, _, address string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addrs = append(d.addrs, address)
	return fmt.Errorf("test: refusing to dial %s: %w", address, syscall.ECONNREFUSED)
}

func (d *dialRecorder) recorded() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.addrs)
}

func TestBlocked(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr    string
		blocked bool
	}{
		{"127.0.0.1", true},
		{"127.255.255.254", true},
		{"::1", true},
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"::", true},
		{"10.0.0.1", true},
		{"10.255.255.255", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"192.168.1.1", true},
		{"169.254.169.254", true},
		{"169.254.0.1", true},
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		{"febf:ffff::1", true},
		{"100.64.0.1", true},
		{"100.127.255.255", true},
		{"fc00::1", true},
		{"fd12:3456:789a::1", true},
		{"224.0.0.1", true},
		{"239.255.255.250", true},
		{"ff02::1", true},
		{"ff05::1:3", true},
		{"255.255.255.255", true},
		{"240.0.0.1", true},
		{"192.0.0.8", true},
		{"192.0.2.1", true},
		{"198.18.0.1", true},
		{"198.19.255.255", true},
		{"198.51.100.7", true},
		{"203.0.113.9", true},
		{"2001:db8::1", true},
		{"100::1", true},
		{"fec0::1", true},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", true}, // Teredo
		{"64:ff9b:1::a00:1", true},                     // local-use NAT64

		// IPv6 forms that carry an IPv4 address.
		{"::ffff:127.0.0.1", true},
		{"::ffff:7f00:1", true},
		{"::ffff:10.0.0.1", true},
		{"::ffff:169.254.169.254", true},
		{"::127.0.0.1", true},
		{"::10.0.0.1", true},
		{"::ffff:0:10.0.0.1", true},
		{"64:ff9b::a9fe:a9fe", true},
		{"64:ff9b::127.0.0.1", true},
		{"2002:a9fe:a9fe::", true},
		{"2002:7f00:1::1", true},
		{"2002:c0a8:0101:1::1", true},

		// Public addresses, including right next to blocked ranges.
		{"8.8.8.8", false},
		{"1.1.1.1", false},
		{"93.184.216.34", false},
		{"2606:4700::1", false},
		{"2001:4860:4860::8888", false},
		{"::ffff:8.8.8.8", false},
		{"64:ff9b::808:808", false},
		{"2002:808:808::1", false},
		{"9.255.255.255", false},
		{"11.0.0.0", false},
		{"100.63.255.255", false},
		{"100.128.0.0", false},
		{"172.15.255.255", false},
		{"172.32.0.0", false},
		{"192.167.255.255", false},
		{"192.169.0.0", false},
		{"198.17.255.255", false},
		{"198.20.0.0", false},
		{"223.255.255.255", false},
	}
	c := New(Config{})
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			if got := c.Blocked(netip.MustParseAddr(tt.addr)); got != tt.blocked {
				t.Errorf("Blocked(%s) = %v, want %v (reason %q)", tt.addr, got, tt.blocked, c.guard.reason(netip.MustParseAddr(tt.addr)))
			}
		})
	}
	t.Run("zero address", func(t *testing.T) {
		t.Parallel()
		if !c.Blocked(netip.Addr{}) {
			t.Error("Blocked(zero Addr) = false, want true")
		}
	})
}

func TestBlockedReasonNamesTheRange(t *testing.T) {
	t.Parallel()
	g := newGuard(Config{})
	tests := map[string]string{
		"169.254.169.254":    "link-local (cloud metadata)",
		"255.255.255.255":    "broadcast",
		"::ffff:127.0.0.1":   "IPv4-mapped 127.0.0.1: loopback",
		"2002:a00:1::":       "6to4 10.0.0.1: private (RFC 1918)",
		"64:ff9b::a9fe:a9fe": "NAT64 169.254.169.254: link-local (cloud metadata)",
	}
	for addr, want := range tests {
		if got := g.reason(netip.MustParseAddr(addr)); got != want {
			t.Errorf("reason(%s) = %q, want %q", addr, got, want)
		}
	}
}

func TestBlockedWithAllowLoopback(t *testing.T) {
	t.Parallel()
	c := New(Config{AllowLoopback: true})
	tests := []struct {
		addr    string
		blocked bool
	}{
		{"127.0.0.1", false},
		{"127.1.2.3", false},
		{"::1", false},
		{"::ffff:127.0.0.1", false},
		// Loopback only: the rest stays blocked.
		{"0.0.0.0", true},
		{"::", true},
		{"10.0.0.1", true},
		{"169.254.169.254", true},
		{"::ffff:10.0.0.1", true},
	}
	for _, tt := range tests {
		if got := c.Blocked(netip.MustParseAddr(tt.addr)); got != tt.blocked {
			t.Errorf("AllowLoopback: Blocked(%s) = %v, want %v", tt.addr, got, tt.blocked)
		}
	}
}

func TestBlockedWithAllowCIDRs(t *testing.T) {
	t.Parallel()
	c := New(Config{AllowCIDRs: []netip.Prefix{
		netip.MustParsePrefix("10.1.0.0/16"),
		netip.MustParsePrefix("fd00:1::/32"),
		netip.MustParsePrefix("192.168.7.9/24"), // host bits set: means 192.168.7.0/24
	}})
	tests := []struct {
		addr    string
		blocked bool
	}{
		{"10.1.2.3", false},
		{"::ffff:10.1.2.3", false},
		{"64:ff9b::a01:203", false},
		{"10.2.0.1", true},
		{"fd00:1::5", false},
		{"fd00:2::1", true},
		{"192.168.7.200", false},
		{"192.168.8.1", true},
		{"127.0.0.1", true},
		{"8.8.8.8", false},
	}
	for _, tt := range tests {
		if got := c.Blocked(netip.MustParseAddr(tt.addr)); got != tt.blocked {
			t.Errorf("AllowCIDRs: Blocked(%s) = %v, want %v", tt.addr, got, tt.blocked)
		}
	}
}

// TestSendChecksResolvedAddressesAtDialTime covers DNS rebinding: ValidateURL accepts a name without
// resolving it, so whatever the name points to at delivery time is what must be checked. The dial
// hook records and refuses, so no case can send a packet anywhere.
func TestSendChecksResolvedAddressesAtDialTime(t *testing.T) {
	t.Parallel()
	resolver := staticResolver(map[string][]string{
		"evil.test":      {"169.254.169.254"},
		"private.test":   {"10.0.0.5"},
		"mixed.test":     {"93.184.216.34", "10.0.0.5"},
		"mapped.test":    {"::ffff:127.0.0.1"},
		"nat64.test":     {"64:ff9b::a9fe:a9fe"},
		"zero.test":      {"0.0.0.0"},
		"public.test":    {"93.184.216.34"},
		"public6.test":   {"2606:4700::1"},
		"twopublic.test": {"93.184.216.34", "2606:4700::1"},
		"empty.test":     {},
	})
	tests := []struct {
		name      string
		url       string
		wantClass destination.Class
		wantKind  string
		wantDials []string
	}{
		{name: "name resolving to the metadata service", url: "https://evil.test/", wantClass: destination.Permanent, wantKind: destination.KindBlocked},
		{name: "name resolving to a private address", url: "https://private.test/hook", wantClass: destination.Permanent, wantKind: destination.KindBlocked},
		{name: "one private address among public ones", url: "https://mixed.test/", wantClass: destination.Permanent, wantKind: destination.KindBlocked},
		{name: "name resolving to IPv4-mapped loopback", url: "https://mapped.test/", wantClass: destination.Permanent, wantKind: destination.KindBlocked},
		{name: "name resolving to NAT64 metadata", url: "https://nat64.test/", wantClass: destination.Permanent, wantKind: destination.KindBlocked},
		{name: "name resolving to 0.0.0.0", url: "https://zero.test/", wantClass: destination.Permanent, wantKind: destination.KindBlocked},
		{name: "public name is dialled by address", url: "https://public.test/", wantClass: destination.Retryable,
			wantKind: destination.KindConnRefused, wantDials: []string{"93.184.216.34:443"}},
		{name: "public IPv6 name with explicit port", url: "https://public6.test:8443/", wantClass: destination.Retryable,
			wantKind: destination.KindConnRefused, wantDials: []string{"[2606:4700::1]:8443"}},
		{name: "every public address is tried", url: "https://twopublic.test/", wantClass: destination.Retryable,
			wantKind: destination.KindConnRefused, wantDials: []string{"93.184.216.34:443", "[2606:4700::1]:443"}},
		{name: "public literal skips the resolver", url: "https://93.184.216.34/", wantClass: destination.Retryable,
			wantKind: destination.KindConnRefused, wantDials: []string{"93.184.216.34:443"}},
		{name: "unknown name", url: "https://nxdomain.test/", wantClass: destination.Retryable, wantKind: destination.KindDNS},
		{name: "name with no addresses", url: "https://empty.test/", wantClass: destination.Retryable, wantKind: destination.KindDNS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &dialRecorder{}
			c := newTestClient(t, Config{Resolver: resolver, DialHook: rec.hook})

			o := c.Send(t.Context(), Request{URL: tt.url, Body: []byte(`{}`), Timeout: 5 * time.Second})

			if o.Class != tt.wantClass || o.ErrorKind != tt.wantKind {
				t.Errorf("got %q %q (%s), want %q %q", o.Class, o.ErrorKind, o.Error, tt.wantClass, tt.wantKind)
			}
			if got := rec.recorded(); !slices.Equal(got, tt.wantDials) {
				t.Errorf("dialled %q, want %q", got, tt.wantDials)
			}
		})
	}
}

// TestSendCatchesRebindingBetweenAttempts resolves a name to a public address for the first
// attempt and to the metadata service for the second, as a rebinding attacker would.
func TestSendCatchesRebindingBetweenAttempts(t *testing.T) {
	t.Parallel()
	var lookups atomic.Int32
	resolver := resolverFunc(func(context.Context, string, string) ([]netip.Addr, error) {
		if lookups.Add(1) == 1 {
			return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("169.254.169.254")}, nil
	})
	rec := &dialRecorder{}
	c := newTestClient(t, Config{Resolver: resolver, DialHook: rec.hook})
	req := Request{URL: "https://rebind.test/", Timeout: 5 * time.Second}

	first := c.Send(t.Context(), req)
	second := c.Send(t.Context(), req)

	if first.ErrorKind != destination.KindConnRefused {
		t.Errorf("first attempt: %q %q (%s), want a refused connection", first.Class, first.ErrorKind, first.Error)
	}
	if second.Class != destination.Permanent || second.ErrorKind != destination.KindBlocked {
		t.Errorf("second attempt: %q %q (%s), want permanent blocked_destination", second.Class, second.ErrorKind, second.Error)
	}
	if got := rec.recorded(); !slices.Equal(got, []string{"93.184.216.34:443"}) {
		t.Errorf("dialled %q, want only the first, public address", got)
	}
}

func TestDialHookErrorReplacesTheDial(t *testing.T) {
	t.Parallel()
	c := newTestClient(t, Config{
		Resolver: staticResolver(map[string][]string{"public.test": {"93.184.216.34"}}),
		DialHook: func(context.Context, string, string) error { return errors.New("test: not today") },
	})

	o := c.Send(t.Context(), Request{URL: "https://public.test/", Timeout: 5 * time.Second})

	if o.Class != destination.Retryable || o.ErrorKind != destination.KindConnFailed {
		t.Errorf("got %q %q (%s), want retryable connection_failed", o.Class, o.ErrorKind, o.Error)
	}
}

// TestControlRechecksSocketAddress exercises the defence-in-depth check that runs on the socket
// itself, in case anything ever reaches the dialer without passing dialContext's check.
func TestControlRechecksSocketAddress(t *testing.T) {
	t.Parallel()
	c := New(Config{})
	tests := []struct {
		address string
		refuse  bool
	}{
		{"127.0.0.1:80", true},
		{"10.0.0.1:443", true},
		{"169.254.169.254:80", true},
		{"[::ffff:127.0.0.1]:443", true},
		{"[fe80::1%eth0]:443", true},
		{"not-an-address", true},
		{"93.184.216.34:443", false},
		{"[2606:4700::1]:443", false},
	}
	for _, tt := range tests {
		err := c.control(t.Context(), "tcp", tt.address, nil)
		if (err != nil) != tt.refuse {
			t.Errorf("control(%q) = %v, want refused %v", tt.address, err, tt.refuse)
		}
	}
	if c.dialer.ControlContext == nil {
		t.Error("dialer has no ControlContext; the socket-level re-check is not installed")
	}
}
