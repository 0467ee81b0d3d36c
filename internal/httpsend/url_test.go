package httpsend

import (
	"context"
	"net/netip"
	"strings"
	"testing"
)

func TestValidateURL(t *testing.T) {
	t.Parallel()
	prod := Config{}
	dev := Config{AllowHTTP: true, AllowLoopback: true}
	httpOnly := Config{AllowHTTP: true}
	tests := []struct {
		name    string
		cfg     Config
		url     string
		wantErr string // substring of the error; "" means valid
	}{
		{name: "https name", cfg: prod, url: "https://example.com"},
		{name: "https name with path, query and port", cfg: prod, url: "https://hooks.example.com:8443/in/abc?token=x"},
		{name: "public literal", cfg: prod, url: "https://93.184.216.34/hook"},
		{name: "public IPv6 literal", cfg: prod, url: "https://[2606:4700::1]/hook"},
		{name: "IDN name", cfg: prod, url: "https://müller.example/hook"},
		{name: "punycode name", cfg: prod, url: "https://xn--mller-kva.example/hook"},
		{name: "http rejected in production", cfg: prod, url: "http://example.com/", wantErr: "must use https"},
		{name: "http accepted with AllowHTTP", cfg: httpOnly, url: "http://example.com/"},
		{name: "other scheme", cfg: prod, url: "ftp://example.com/", wantErr: `scheme "ftp"`},
		{name: "relative", cfg: prod, url: "/hooks", wantErr: "absolute"},
		{name: "scheme-relative", cfg: prod, url: "//example.com/hooks", wantErr: "absolute"},
		{name: "opaque", cfg: prod, url: "https:example.com", wantErr: "https://host/path"},
		{name: "credentials", cfg: prod, url: "https://user:pass@example.com/", wantErr: "credentials"},
		{name: "user without password", cfg: prod, url: "https://user@example.com/", wantErr: "credentials"},
		{name: "no host", cfg: prod, url: "https:///path", wantErr: "no host"},
		{name: "port zero", cfg: prod, url: "https://example.com:0/", wantErr: "port"},
		{name: "port too large", cfg: prod, url: "https://example.com:70000/", wantErr: "port"},
		{name: "unparseable", cfg: prod, url: "https://exa mple.com/", wantErr: "invalid URL"},

		// Blocked literals in every notation.
		{name: "dotted loopback", cfg: httpOnly, url: "http://127.0.0.1/", wantErr: "loopback"},
		{name: "decimal loopback", cfg: httpOnly, url: "http://2130706433/", wantErr: "loopback"},
		{name: "octal loopback", cfg: httpOnly, url: "http://0177.0.0.1/", wantErr: "loopback"},
		{name: "hex-dotted loopback", cfg: httpOnly, url: "http://0x7f.0.0.1/", wantErr: "loopback"},
		{name: "hex loopback", cfg: httpOnly, url: "http://0x7f000001/", wantErr: "loopback"},
		{name: "short loopback", cfg: httpOnly, url: "http://127.1/", wantErr: "loopback"},
		{name: "trailing-dot loopback", cfg: httpOnly, url: "http://127.0.0.1./", wantErr: "loopback"},
		{name: "percent-encoded loopback", cfg: httpOnly, url: "http://%31%32%37.0.0.1/", wantErr: "invalid URL"},
		{name: "IPv6 loopback", cfg: httpOnly, url: "http://[::1]/", wantErr: "loopback"},
		{name: "IPv4-mapped loopback", cfg: httpOnly, url: "http://[::ffff:127.0.0.1]/", wantErr: "loopback"},
		{name: "IPv4-mapped loopback in hex", cfg: httpOnly, url: "http://[::ffff:7f00:1]/", wantErr: "loopback"},
		{name: "IPv4-compatible private", cfg: prod, url: "https://[::10.0.0.1]/", wantErr: "private"},
		{name: "metadata service", cfg: httpOnly, url: "http://169.254.169.254/latest/meta-data", wantErr: "link-local"},
		{name: "metadata service in decimal", cfg: httpOnly, url: "http://2852039166/", wantErr: "link-local"},
		{name: "link-local IPv6 with zone", cfg: prod, url: "https://[fe80::1%25eth0]/", wantErr: "link-local"},
		{name: "unspecified", cfg: httpOnly, url: "http://0.0.0.0:8080/", wantErr: "unspecified"},
		{name: "zero shorthand", cfg: httpOnly, url: "http://0/", wantErr: "unspecified"},
		{name: "private", cfg: prod, url: "https://192.168.0.10/", wantErr: "private"},
		{name: "localhost name", cfg: httpOnly, url: "http://localhost:3000/", wantErr: "loopback"},
		{name: "localhost subdomain", cfg: prod, url: "https://api.LOCALHOST./", wantErr: "loopback"},
		{name: "fullwidth digits", cfg: prod, url: "https://１２７.０.０.１/", wantErr: "loopback"},
		{name: "ideographic full stops", cfg: prod, url: "https://127。0。0。1/", wantErr: "loopback"},
		{name: "fullwidth localhost", cfg: prod, url: "https://hooks.ｌｏｃａｌｈｏｓｔ/", wantErr: "loopback"},
		{name: "non-ASCII subdomain of localhost", cfg: prod, url: "https://\xe6.loCAlhost/", wantErr: "loopback"},
		{name: "non-ASCII digits only", cfg: prod, url: "https://١٢٧.٠.٠.١/", wantErr: "ASCII"},
		{name: "ends in a number but is no address", cfg: prod, url: "https://example.123/", wantErr: "not a valid IP address"},
		{name: "five numeric parts", cfg: prod, url: "https://1.2.3.4.5/", wantErr: "not a valid IP address"},
		{name: "octet out of range", cfg: prod, url: "https://256.1.1.1/", wantErr: "not a valid IP address"},

		// Dev mode lets loopback through, but nothing else.
		{name: "loopback in dev mode", cfg: dev, url: "http://127.0.0.1:8080/hook"},
		{name: "localhost in dev mode", cfg: dev, url: "http://localhost:8080/hook"},
		{name: "decimal loopback in dev mode", cfg: dev, url: "http://2130706433/"},
		{name: "private in dev mode", cfg: dev, url: "http://10.0.0.1/", wantErr: "private"},
		{name: "allow-listed private", cfg: Config{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			url: "https://10.20.30.40/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// ValidateURL must never resolve or dial; these fail the test if it tries.
			tt.cfg.Resolver = resolverFunc(func(_ context.Context, _, host string) ([]netip.Addr, error) {
				t.Errorf("ValidateURL looked up %q", host)
				return nil, context.Canceled
			})
			tt.cfg.DialHook = func(_ context.Context, _, address string) error {
				t.Errorf("ValidateURL dialled %q", address)
				return context.Canceled
			}
			err := New(tt.cfg).ValidateURL(tt.url)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("ValidateURL(%q) = %v, want nil", tt.url, err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("ValidateURL(%q) = nil, want error containing %q", tt.url, tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("ValidateURL(%q) = %q, want it to contain %q", tt.url, err, tt.wantErr)
			}
		})
	}
}

func TestParseIPv4(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string // "" means not an IPv4 address
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"2130706433", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"0x7f.0.0.1", "127.0.0.1"},
		{"0X7F.0.0.1", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"017700000001", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"0x7f.1", "127.0.0.1"},
		{"169.254.43518", "169.254.169.254"},
		{"0xa9.0376.0xa9fe", "169.254.169.254"},
		{"0", "0.0.0.0"},
		{"0x", "0.0.0.0"},
		{"4294967295", "255.255.255.255"},
		{"255.255.255.255", "255.255.255.255"},
		{"4294967296", ""},
		{"99999999999999999999999", ""},
		{"256.0.0.1", ""},
		{"1.256.0.1", ""},
		{"1.2.65536", ""},
		{"1.2.3.256", ""},
		{"1.2.3.4.5", ""},
		{"08.0.0.1", ""},
		{"0x1g.0.0.1", ""},
		{"1..2.3", ""},
		{".1.2.3", ""},
		{"", ""},
		{"example.com", ""},
		{"1.2.3.a", ""},
	}
	for _, tt := range tests {
		got, ok := parseIPv4(tt.in)
		switch {
		case tt.want == "" && ok:
			t.Errorf("parseIPv4(%q) = %v, want not an address", tt.in, got)
		case tt.want != "" && (!ok || got != netip.MustParseAddr(tt.want)):
			t.Errorf("parseIPv4(%q) = %v, %v; want %s", tt.in, got, ok, tt.want)
		}
	}
}
