package httpsend

import (
	"context"
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// FuzzValidateURL checks that the registration check never panics, never touches the network, and
// never accepts a URL whose host is a blocked address in any notation the dialer would accept.
func FuzzValidateURL(f *testing.F) {
	for _, s := range []string{
		"https://example.com/hooks", "http://example.com/", "https://93.184.216.34/", "https://[2606:4700::1]:8443/x?y=z",
		"https://user:pass@example.com/", "ftp://example.com/", "//example.com", "https:example.com", "https:///x",
		"https://example.com:0/", "https://example.com:99999/", "https://exa mple.com/", "https://müller.example/",
		"https://１２７.０.０.１/", "https://example.123/", "https://1.2.3.4.5/", "https://256.1.1.1/",
		"https://%31%32%37.0.0.1/", "https://[fe80::1%25eth0]/", "https://[::ffff:127.0.0.1]/", "https://[2002:a9fe:a9fe::]/",
		"https://[64:ff9b::a9fe:a9fe]/", "https://localhost./", "https://x.localhost/", "https://0/", "https://0x/",
		"https://0x7f.1/", "https://0177.0.0.1/", "https://2130706433/", "https://127.1/", "https://127.0.0.1./",
		"https://4294967296/", "https://0xffffffff/", "https://[::]/", "https://[v1.fe80::a]/", "https://[::1%25lo]:443/", "https://\xe6.loCAlhost",
	} {
		f.Add(s)
	}
	for _, tt := range numericTricks {
		f.Add(tt.url)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		cfg := Config{
			Resolver: resolverFunc(func(_ context.Context, _, host string) ([]netip.Addr, error) {
				t.Fatalf("ValidateURL(%q) looked up %q", raw, host)
				return nil, errors.New("unreachable")
			}),
			DialHook: func(_ context.Context, _, address string) error {
				t.Fatalf("ValidateURL(%q) dialled %q", raw, address)
				return errors.New("unreachable")
			},
		}
		c := New(cfg)
		if err := c.ValidateURL(raw); err != nil {
			if err.Error() == "" {
				t.Fatalf("ValidateURL(%q) returned an error without a message", raw)
			}
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("ValidateURL(%q) accepted a URL url.Parse refuses: %v", raw, err)
		}
		if u.Scheme != "https" {
			t.Fatalf("ValidateURL(%q) accepted scheme %q in production", raw, u.Scheme)
		}
		if u.User != nil {
			t.Fatalf("ValidateURL(%q) accepted credentials", raw)
		}
		host := u.Hostname()
		if host == "" {
			t.Fatalf("ValidateURL(%q) accepted a URL without a host", raw)
		}
		// Whatever the dialer would treat as an address must be allowed.
		name := strings.TrimSuffix(host, ".")
		if addr, err := netip.ParseAddr(host); err == nil && c.Blocked(addr) {
			t.Fatalf("ValidateURL(%q) accepted blocked address %s", raw, addr)
		}
		if addr, ok := parseIPv4(name); ok && c.Blocked(addr) {
			t.Fatalf("ValidateURL(%q) accepted blocked address %s (from %q)", raw, addr, name)
		}
		if isLocalhost(name) {
			t.Fatalf("ValidateURL(%q) accepted a localhost name", raw)
		}
	})
}

// FuzzGuardEmbeddedIPv4 checks that an IPv4 address and its IPv6-mapped and NAT64 forms are judged
// alike, whatever the address.
func FuzzGuardEmbeddedIPv4(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "10.0.0.1", "169.254.169.254", "8.8.8.8", "0.0.0.0", "255.255.255.255", "100.64.0.1"} {
		f.Add(netip.MustParseAddr(s).AsSlice())
	}
	g := newGuard(Config{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) != 4 {
			return
		}
		v4 := netip.AddrFrom4([4]byte(b))
		blocked := g.reason(v4) != ""
		mapped := netip.AddrFrom16(v4.As16())
		nat64 := netip.AddrFrom16([16]byte{0: 0x00, 1: 0x64, 2: 0xff, 3: 0x9b, 12: b[0], 13: b[1], 14: b[2], 15: b[3]})
		for _, a := range []netip.Addr{mapped, nat64} {
			if (g.reason(a) != "") != blocked {
				t.Fatalf("%s: blocked %v, but %s: reason %q", v4, blocked, a, g.reason(a))
			}
		}
	})
}
