package httpsend

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ValidateURL is the registration-time check for an endpoint URL. It never resolves DNS: a name is
// accepted here and its addresses are checked at every dial instead, which is the check that
// matters, since DNS can change after registration. What it can do without the network, it does:
// the URL must be absolute http(s) (https unless AllowHTTP), carry no credentials, name a host,
// and, if that host is an IP literal in any notation a resolver or browser would accept, the
// address must not be blocked. The error message names the reason; callers show it in a 422.
func (c *Client) ValidateURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the whole URL; the caller already has it
		}
		return fmt.Errorf("invalid URL: %w", err)
	}
	return c.checkURL(u)
}

// checkURL holds the rules shared by ValidateURL and Send, so a URL that slipped into storage
// some other way (or before a config change) is still refused before any connection is made.
func (c *Client) checkURL(u *url.URL) error {
	switch u.Scheme {
	case "https":
	case "http":
		if !c.allowHTTP {
			return errors.New("URL must use https")
		}
	case "":
		return errors.New("URL must be absolute, like https://example.com/webhooks")
	default:
		return fmt.Errorf("URL scheme %q is not supported; use https", u.Scheme)
	}
	if u.Opaque != "" {
		return errors.New("URL must be of the form https://host/path")
	}
	if u.User != nil {
		// Credentials in URLs end up in logs and attempt records; receivers should verify signatures.
		return errors.New("URL must not contain credentials (user:password@)")
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("URL has no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("URL port %q is out of range", p)
		}
	}
	return c.checkHost(host)
}

// checkHost refuses hosts that are, or are defined to be, blocked addresses.
func (c *Client) checkHost(host string) error {
	if strings.IndexByte(host, ':') >= 0 {
		addr, err := netip.ParseAddr(host)
		if err != nil {
			return fmt.Errorf("URL host %q is not a valid IPv6 address", host)
		}
		return c.checkAddr(host, addr)
	}

	// The transport maps non-ASCII hosts through IDNA, which turns fullwidth letters and digits and
	// ideographic dots into ASCII ("１２７。０。０。１" is 127.0.0.1); fold those the same way first.
	// "127.0.0.1." and "localhost." mean the same to resolvers as without the dot.
	name := strings.TrimSuffix(foldWidth(host), ".")
	if isLocalhost(name) {
		// RFC 6761: these names always mean the loopback interface, whatever DNS says.
		return c.checkAddr(host, netip.AddrFrom4([4]byte{127, 0, 0, 1}))
	}
	if !isASCII(name) {
		// Rather than reimplement all of IDNA, accept what is still non-ASCII only when the host
		// also has an ASCII character no IP notation contains; such a host can only ever be a
		// name, and names are checked at dial time.
		if !hasNonNumericASCII(name) {
			return fmt.Errorf("URL host %q must be written in its ASCII (xn--) form", host)
		}
		return nil
	}
	if addr, ok := parseIPv4(name); ok {
		return c.checkAddr(host, addr)
	}
	if endsInNumber(name) {
		// Browsers reject these and resolvers disagree about them; nothing legitimate looks like this.
		return fmt.Errorf("URL host %q is not a valid IP address or host name", host)
	}
	return nil
}

// foldWidth maps fullwidth ASCII forms (U+FF01–U+FF5E) to ASCII and the dots IDNA treats as full
// stops (U+3002, U+FF0E, U+FF61) to '.', leaving everything else, invalid UTF-8 included, as it is.
func foldWidth(s string) string {
	if isASCII(s) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			b.WriteByte(s[i]) // keep the invalid byte, so the result is still non-ASCII
		case r >= 0xFF01 && r <= 0xFF5E:
			b.WriteByte(byte(r - 0xFEE0))
		case r == 0x3002, r == 0xFF0E, r == 0xFF61:
			b.WriteByte('.')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func (c *Client) checkAddr(host string, addr netip.Addr) error {
	if r := c.guard.reason(addr); r != "" {
		return &BlockedError{Host: host, Addr: addr, Reason: r}
	}
	return nil
}

// parseIPv4 accepts every IPv4 notation that inet_aton and the WHATWG URL parser accept: one to
// four dot-separated parts, each decimal, octal (leading 0) or hex (0x), the last part filling the
// remaining bytes. So "2130706433", "0177.0.0.1", "0x7f.1" and "127.1" are all 127.0.0.1.
func parseIPv4(s string) (netip.Addr, bool) {
	var parts [4]uint64
	n := 0
	for {
		i := strings.IndexByte(s, '.')
		part := s
		if i >= 0 {
			part = s[:i]
		}
		if n == len(parts) {
			return netip.Addr{}, false
		}
		v, ok := parseIPv4Part(part)
		if !ok {
			return netip.Addr{}, false
		}
		parts[n] = v
		n++
		if i < 0 {
			break
		}
		s = s[i+1:]
	}
	var ip uint64
	for _, p := range parts[:n-1] {
		if p > 0xff {
			return netip.Addr{}, false
		}
		ip = ip<<8 | p
	}
	lastBits := 8 * (5 - n) // one part: 32 bits, two: 24, three: 16, four: 8
	last := parts[n-1]
	if last >= 1<<lastBits {
		return netip.Addr{}, false
	}
	ip = ip<<lastBits | last
	return netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}), true
}

func parseIPv4Part(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	base := uint64(10)
	switch {
	case len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		base, s = 16, s[2:] // "0x" alone is 0, as in WHATWG
	case len(s) >= 2 && s[0] == '0':
		base, s = 8, s[1:]
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		d, ok := digitValue(s[i])
		if !ok || d >= base {
			return 0, false
		}
		v = v*base + d
		if v > 0xffffffff { // stop before long inputs can overflow
			return 0, false
		}
	}
	return v, true
}

func digitValue(b byte) (uint64, bool) {
	switch {
	case '0' <= b && b <= '9':
		return uint64(b - '0'), true
	case 'a' <= b && b <= 'f':
		return uint64(b-'a') + 10, true
	case 'A' <= b && b <= 'F':
		return uint64(b-'A') + 10, true
	}
	return 0, false
}

// endsInNumber reports whether the last label is numeric; the WHATWG URL parser then insists the
// whole host be an IPv4 address.
func endsInNumber(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		_, ok := parseIPv4Part(last)
		return ok
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return false
		}
	}
	return true
}

func isLocalhost(name string) bool {
	const suffix = ".localhost"
	return strings.EqualFold(name, "localhost") ||
		len(name) > len(suffix) && strings.EqualFold(name[len(name)-len(suffix):], suffix)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// hasNonNumericASCII reports whether s contains an ASCII character that no IPv4 notation uses
// (anything but digits, '.', hex letters and 'x').
func hasNonNumericASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i] | 0x20 // fold ASCII letters to lower case
		switch {
		case s[i] >= 0x80, s[i] == '.', '0' <= s[i] && s[i] <= '9':
		case 'a' <= b && b <= 'f', b == 'x':
		default:
			return true
		}
	}
	return false
}
