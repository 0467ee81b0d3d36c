package inbound

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/heraldhq/herald/internal/store"
)

// A source may require a verified client certificate (store.SourceSettings.ClientCert). TLS
// usually ends at a proxy in front of Herald, so the certificate is taken from, in order:
//
//   - Herald's own TLS listener (--tls-cert, --tls-key and --tls-client-ca): a certificate the
//     listener verified against the CA;
//   - a request from a trusted proxy (Config.TrustedProxies, --trusted-proxy-cidr) carrying
//     Envoy's X-Forwarded-Client-Cert (its last element: the one the nearest proxy added), or
//     nginx's X-SSL-Client-Verify: SUCCESS with the certificate in X-SSL-Client-Cert
//     ($ssl_client_escaped_cert).
//
// Headers from any other address are ignored, so a sender cannot claim a certificate; the
// proxy must set (not append to) these headers. When the requirement lists names, the
// certificate's subject common name, DNS or URI SANs must include one. docs/receiving.md has
// the proxies' configuration.

// Headers of the proxies' forwarded client certificates.
const (
	HeaderXFCC            = "X-Forwarded-Client-Cert"
	HeaderSSLClientVerify = "X-SSL-Client-Verify"
	HeaderSSLClientCert   = "X-SSL-Client-Cert"
)

// clientCert checks the request against a source's client certificate requirement.
func (s *Service) clientCert(r *http.Request, req *store.ClientCertRequirement) error {
	names, err := s.certNames(r)
	if err != nil {
		return err
	}
	if len(req.Names) == 0 || slices.ContainsFunc(names, func(n string) bool { return slices.Contains(req.Names, n) }) {
		return nil
	}
	return fmt.Errorf("the certificate's names (%s) are not among the source's", strings.Join(names, ", "))
}

// certNames are the names of the request's verified client certificate.
func (s *Service) certNames(r *http.Request) ([]string, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		return x509Names(r.TLS.VerifiedChains[0][0]), nil
	}
	if !s.trustedProxy(remoteAddr(r)) {
		if r.TLS != nil {
			return nil, errors.New("none was presented and verified (Herald's listener checks them against --tls-client-ca)")
		}
		return nil, errors.New("none was presented, and the request did not come through a trusted proxy")
	}
	if v := r.Header.Get(HeaderXFCC); v != "" {
		return xfccNames(v)
	}
	if v := r.Header.Get(HeaderSSLClientVerify); v != "" {
		if v != "SUCCESS" {
			return nil, fmt.Errorf("the proxy did not verify it (%s)", v)
		}
		return escapedPEMNames(r.Header.Get(HeaderSSLClientCert))
	}
	return nil, errors.New("the trusted proxy forwarded none")
}

func (s *Service) trustedProxy(a netip.Addr) bool {
	return slices.ContainsFunc(s.cfg.TrustedProxies, func(p netip.Prefix) bool { return p.Contains(a) })
}

// x509Names are a certificate's subject common name, DNS and URI SANs.
func x509Names(c *x509.Certificate) []string {
	var names []string
	if c.Subject.CommonName != "" {
		names = append(names, c.Subject.CommonName)
	}
	names = append(names, c.DNSNames...)
	for _, u := range c.URIs {
		names = append(names, u.String())
	}
	return names
}

// escapedPEMNames reads nginx's $ssl_client_escaped_cert (the PEM, URL-encoded).
func escapedPEMNames(v string) ([]string, error) {
	raw, err := url.QueryUnescape(v)
	if err != nil {
		return nil, fmt.Errorf("the forwarded certificate is not URL-encoded PEM: %w", err)
	}
	block, _ := pem.Decode([]byte(raw))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("the forwarded certificate is not PEM")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the forwarded certificate: %w", err)
	}
	return x509Names(c), nil
}

// xfccNames reads Envoy's X-Forwarded-Client-Cert: elements separated by commas, each of
// key=value pairs separated by semicolons, values optionally double-quoted (with \" escapes).
// The last element is the one the nearest proxy added: its Subject's CN, DNS and URI entries.
func xfccNames(v string) ([]string, error) {
	elements := splitQuoted(v, ',')
	pairs := splitQuoted(elements[len(elements)-1], ';')
	var names []string
	for _, p := range pairs {
		k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			continue
		}
		val = unquote(val)
		switch strings.ToLower(k) {
		case "subject":
			for _, rdn := range splitQuoted(val, ',') {
				if cn, ok := strings.CutPrefix(strings.TrimSpace(rdn), "CN="); ok {
					names = append(names, cn)
				}
			}
		case "dns", "uri":
			names = append(names, val)
		}
	}
	if len(names) == 0 {
		return nil, errors.New("the forwarded certificate has no subject, DNS or URI name")
	}
	return names, nil
}

// splitQuoted splits s at sep outside double quotes.
func splitQuoted(s string, sep byte) []string {
	var parts []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quoted:
			i++
		case s[i] == '"':
			quoted = !quoted
		case s[i] == sep && !quoted:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return strings.ReplaceAll(v[1:len(v)-1], `\"`, `"`)
	}
	return v
}
