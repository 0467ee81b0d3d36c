package httpsend

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/destination"
)

// blockedCase is an address the guard must refuse and a part of the reason it must give.
type blockedCase struct {
	addr   string
	reason string
}

// blockedAddrs covers every range the guard refuses, at both edges where an edge is a likely
// off-by-one, plus every IPv6 form that carries an IPv4 address (generated below).
func blockedAddrs() []blockedCase {
	cases := []blockedCase{
		{"0.0.0.0", "unspecified"},
		{"0.255.255.255", "unspecified"},
		{"10.0.0.0", "private (RFC 1918)"},
		{"10.255.255.255", "private (RFC 1918)"},
		{"100.64.0.0", "CGNAT"},
		{"100.127.255.255", "CGNAT"},
		{"127.0.0.1", "loopback"},
		{"127.255.255.255", "loopback"},
		{"169.254.0.0", "link-local"},
		{"169.254.169.254", "cloud metadata"},
		{"169.254.255.255", "link-local"},
		{"172.16.0.0", "private (RFC 1918)"},
		{"172.31.255.255", "private (RFC 1918)"},
		{"192.0.0.0", "IETF protocol assignments"},
		{"192.0.0.255", "IETF protocol assignments"},
		{"192.0.2.0", "documentation"},
		{"192.0.2.255", "documentation"},
		{"192.88.99.1", "6to4 relay anycast"},
		{"192.168.0.0", "private (RFC 1918)"},
		{"192.168.255.255", "private (RFC 1918)"},
		{"198.18.0.0", "benchmarking"},
		{"198.19.255.255", "benchmarking"},
		{"198.51.100.1", "documentation"},
		{"203.0.113.255", "documentation"},
		{"224.0.0.0", "multicast"},
		{"239.255.255.255", "multicast"},
		{"240.0.0.0", "reserved"},
		{"255.255.255.254", "reserved"},
		{"255.255.255.255", "broadcast"},

		{"::", "unspecified"},
		{"::1", "loopback"},
		{"fe80::", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "link-local"},
		{"fc00::", "unique local"},
		{"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "unique local"},
		{"fec0::1", "site-local"},
		{"ff00::", "multicast"},
		{"ff02::1", "multicast"},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "multicast"},
		{"100::1", "discard-only"},
		{"2001::1", "Teredo"},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"},
		{"2001:2::1", "benchmarking"},
		{"2001:10::1", "ORCHID"},
		{"2001:20::1", "ORCHIDv2"},
		{"2001:4:112::1", "IETF protocol assignments"},
		{"2001:1ff:ffff::1", "IETF protocol assignments"},
		{"2001:db8::1", "documentation"},
		{"3fff::1", "documentation"},
		{"3fff:fff:ffff::1", "documentation"},
		{"5f00::1", "segment routing"},
		{"64:ff9b:1::a00:1", "local-use NAT64"},
		// Outside 2000::/3 and not named above: unassigned.
		{"1::1", "reserved"},
		{"::1:2:3:4", "reserved"},
		{"4000::1", "reserved"},
		{"e000::1", "reserved"},
	}

	// Each blocked IPv4 range, in each IPv6 form a kernel, translator or tunnel turns back into IPv4.
	v4 := []blockedCase{
		{"127.0.0.1", "loopback"},
		{"10.0.0.1", "private (RFC 1918)"},
		{"172.16.0.1", "private (RFC 1918)"},
		{"192.168.1.1", "private (RFC 1918)"},
		{"169.254.169.254", "link-local"},
		{"100.64.0.1", "shared address space (CGNAT)"},
		{"0.1.2.3", "unspecified"},
		{"192.0.0.8", "IETF protocol assignments"},
		{"192.0.2.1", "documentation"},
		{"198.18.0.1", "benchmarking"},
		{"224.0.0.1", "multicast"},
		{"240.0.0.1", "reserved"},
		{"255.255.255.255", "broadcast"},
	}
	for _, c := range v4 {
		b := netip.MustParseAddr(c.addr).As4()
		forms := []struct {
			name   string
			prefix [16]byte
			at     int // where the four IPv4 bytes go
		}{
			{"IPv4-mapped", [16]byte{10: 0xff, 11: 0xff}, 12},
			{"IPv4-compatible", [16]byte{}, 12},
			{"IPv4-translated", [16]byte{8: 0xff, 9: 0xff}, 12},
			{"NAT64", [16]byte{0: 0x00, 1: 0x64, 2: 0xff, 3: 0x9b}, 12},
			{"6to4", [16]byte{0: 0x20, 1: 0x02, 15: 1}, 2},
		}
		for _, f := range forms {
			a := f.prefix
			copy(a[f.at:], b[:])
			cases = append(cases, blockedCase{netip.AddrFrom16(a).String(), f.name + " " + c.addr + ": " + c.reason})
		}
	}
	return cases
}

// publicAddrs are allowed; most sit right next to a blocked range.
var publicAddrs = []string{
	"8.8.8.8", "1.1.1.1", "93.184.216.34",
	"9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0", "126.255.255.255", "128.0.0.0",
	"169.253.255.255", "169.255.0.0", "172.15.255.255", "172.32.0.0", "192.0.1.0", "192.0.3.0",
	"192.88.98.255", "192.88.100.0", "192.167.255.255", "192.169.0.0", "198.17.255.255", "198.20.0.0",
	"223.255.255.255",
	"2606:4700::1", "2001:4860:4860::8888", "2001:200::1", "2001:db7:ffff::1", "2001:db9::1",
	"3fff:1000::1", "3ffe::1", "2a00:1450:4001::1",
	"::ffff:8.8.8.8", "::ffff:0:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
}

func TestGuard_EveryBlockedRangeIsRefusedWithItsReason(t *testing.T) {
	t.Parallel()
	g := newGuard(Config{})
	for _, c := range blockedAddrs() {
		got := g.reason(netip.MustParseAddr(c.addr))
		if got == "" || !strings.Contains(got, c.reason) {
			t.Errorf("reason(%s) = %q, want it to contain %q", c.addr, got, c.reason)
		}
	}
	for _, a := range publicAddrs {
		if got := g.reason(netip.MustParseAddr(a)); got != "" {
			t.Errorf("reason(%s) = %q, want allowed", a, got)
		}
	}
}

// literalURL writes addr as a URL host, zone included.
func literalURL(addr netip.Addr) string {
	if addr.Is4() {
		return "https://" + addr.String() + "/hook"
	}
	s := addr.WithZone("").String()
	if z := addr.Zone(); z != "" {
		s += "%25" + z
	}
	return "https://[" + s + "]/hook"
}

// TestSend_BlockedRangesAreNeverDialled sends to every blocked address twice, once as a name that
// resolves to it (the rebinding path, checked at dial time) and once as a literal in the URL. The
// dial hook records and refuses whatever would be dialled, so nothing leaves the machine; for a
// blocked address it must record nothing, for a public one exactly that address.
func TestSend_BlockedRangesAreNeverDialled(t *testing.T) {
	t.Parallel()
	type target struct {
		addr    netip.Addr
		blocked bool
		reason  string
	}
	var targets []target
	for _, c := range blockedAddrs() {
		targets = append(targets, target{netip.MustParseAddr(c.addr), true, c.reason})
	}
	for _, a := range publicAddrs {
		targets = append(targets, target{addr: netip.MustParseAddr(a)})
	}
	for _, tt := range targets {
		t.Run(tt.addr.String(), func(t *testing.T) {
			t.Parallel()
			resolver := resolverFunc(func(_ context.Context, _, host string) ([]netip.Addr, error) {
				if host != "target.test" {
					t.Errorf("looked up %q, want only target.test", host)
					return nil, errors.New("test resolver: unexpected name")
				}
				return []netip.Addr{tt.addr}, nil
			})
			for _, url := range []string{"https://target.test/hook", literalURL(tt.addr)} {
				rec := &dialRecorder{}
				c := newTestClient(t, Config{Resolver: resolver, DialHook: rec.hook})

				o := c.Send(t.Context(), Request{URL: url, Body: []byte(`{}`), Timeout: 5 * time.Second})

				if tt.blocked {
					if o.Class != destination.Permanent || o.ErrorKind != destination.KindBlocked {
						t.Errorf("%s: got %q %q (%s), want permanent blocked_destination", url, o.Class, o.ErrorKind, o.Error)
					}
					if !strings.Contains(o.Error, tt.reason) {
						t.Errorf("%s: error %q does not name the reason %q", url, o.Error, tt.reason)
					}
					if got := rec.recorded(); len(got) != 0 {
						t.Errorf("%s: dialled %q, want nothing", url, got)
					}
					continue
				}
				want := []string{netip.AddrPortFrom(tt.addr.Unmap(), 443).String()}
				if got := rec.recorded(); !slices.Equal(got, want) {
					t.Errorf("%s: dialled %q, want %q", url, got, want)
				}
				if o.ErrorKind != destination.KindConnRefused {
					t.Errorf("%s: got %q %q (%s), want the recorder's refusal", url, o.Class, o.ErrorKind, o.Error)
				}
			}
			// The socket-level re-check agrees with the dial-time check.
			err := New(Config{}).control(t.Context(), "tcp", netip.AddrPortFrom(tt.addr, 443).String(), nil)
			if (err != nil) != tt.blocked {
				t.Errorf("control(%s) = %v, want refused %v", tt.addr, err, tt.blocked)
			}
		})
	}
}

// numericTricks are hosts that mean a blocked address in some notation a resolver, inet_aton or
// browser accepts. Registration must refuse them, naming the reason, and Send must never dial them.
var numericTricks = []struct {
	url    string
	reason string
}{
	{"https://2130706433/", "loopback"},
	{"https://0177.0.0.1/", "loopback"},
	{"https://0177.1/", "loopback"},
	{"https://0x7f.1/", "loopback"},
	{"https://0x7f000001/", "loopback"},
	{"https://0X7F.0X0.0X0.0X1/", "loopback"},
	{"https://017700000001/", "loopback"},
	{"https://127.1/", "loopback"},
	{"https://127.0.1/", "loopback"},
	{"https://127.000.000.001/", "loopback"},
	{"https://127.0.0.1./", "loopback"},
	{"https://LOCALHOST/", "loopback"},
	{"https://hooks.localhost./", "loopback"},
	{"https://0/", "unspecified"},
	{"https://0x0/", "unspecified"},
	{"https://0.0.0.0:8443/", "unspecified"},
	{"https://2852039166/", "link-local"},
	{"https://0xa9fea9fe/", "link-local"},
	{"https://169.254.43518/", "link-local"},
	{"https://0251.0376.0251.0376/", "link-local"},
	{"https://167772161/", "private"},
	{"https://012.1/", "private"},
	{"https://0xc0a80001/", "private"},
	{"https://1681915905/", "CGNAT"},
	{"https://4294967295/", "broadcast"},
	{"https://[::1]/", "loopback"},
	{"https://[0:0:0:0:0:0:0:1]/", "loopback"},
	{"https://[::ffff:127.0.0.1]/", "IPv4-mapped 127.0.0.1: loopback"},
	{"https://[::ffff:7f00:1]/", "IPv4-mapped 127.0.0.1: loopback"},
	{"https://[0:0:0:0:0:ffff:a9fe:a9fe]/", "IPv4-mapped 169.254.169.254"},
	{"https://[::127.0.0.1]/", "IPv4-compatible 127.0.0.1"},
	{"https://[::ffff:0:10.0.0.1]/", "IPv4-translated 10.0.0.1"},
	{"https://[64:ff9b::169.254.169.254]/", "NAT64 169.254.169.254"},
	{"https://[2002:a9fe:a9fe::1]/", "6to4 169.254.169.254"},
	{"https://[fe80::1%25eth0]/", "link-local"},
	{"https://[FC00::1]/", "unique local"},
}

func TestValidateURL_NumericTricksAreRefusedWithTheirReason(t *testing.T) {
	t.Parallel()
	for _, tt := range numericTricks {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			rec := &dialRecorder{}
			c := newTestClient(t, Config{
				Resolver: resolverFunc(func(_ context.Context, _, host string) ([]netip.Addr, error) {
					t.Errorf("looked up %q: a literal must never reach the resolver", host)
					return nil, errors.New("test resolver: no lookups")
				}),
				DialHook: rec.hook,
			})

			err := c.ValidateURL(tt.url)
			var be *BlockedError
			if !errors.As(err, &be) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("ValidateURL = %v, want a BlockedError naming %q", err, tt.reason)
			}

			// A URL stored before a config change (or some other way) is refused at send time too.
			o := c.Send(t.Context(), Request{URL: tt.url, Timeout: 5 * time.Second})
			if o.Class != destination.Permanent || o.ErrorKind != destination.KindBlocked {
				t.Errorf("Send: %q %q (%s), want permanent blocked_destination", o.Class, o.ErrorKind, o.Error)
			}
			if got := rec.recorded(); len(got) != 0 {
				t.Errorf("Send dialled %q, want nothing", got)
			}
		})
	}
}

// TestSend_LegacyIPv4NotationIsDialledAsTheAddress makes sure a public host in inet_aton notation
// is dialled as the address registration checked, not handed to a resolver to interpret.
func TestSend_LegacyIPv4NotationIsDialledAsTheAddress(t *testing.T) {
	t.Parallel()
	rec := &dialRecorder{}
	c := newTestClient(t, Config{
		Resolver: resolverFunc(func(_ context.Context, _, host string) ([]netip.Addr, error) {
			t.Errorf("looked up %q, want no lookup", host)
			return nil, errors.New("test resolver: no lookups")
		}),
		DialHook: rec.hook,
	})
	for _, url := range []string{"https://0x5db8d822/", "https://1572395042/", "https://93.0xb8.55330/"} {
		if err := c.ValidateURL(url); err != nil {
			t.Errorf("ValidateURL(%s) = %v, want nil (93.184.216.34 is public)", url, err)
		}
		c.Send(t.Context(), Request{URL: url, Timeout: 5 * time.Second})
	}
	want := []string{"93.184.216.34:443", "93.184.216.34:443", "93.184.216.34:443"}
	if got := rec.recorded(); !slices.Equal(got, want) {
		t.Errorf("dialled %q, want %q", got, want)
	}
}
