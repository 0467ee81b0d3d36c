package webhook

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
)

// Bounds of the PEM fields: a chain of a few certificates, one key, a bundle of some roots.
const (
	maxCertificatePEM = 64 << 10
	maxKeyPEM         = 16 << 10
	maxCABundlePEM    = 512 << 10
)

// checkTLS validates the mutual TLS fields (tls_*): the certificate chain parses and its leaf is
// valid now, the key parses and belongs to the certificate (both or neither), and the CA bundle
// parses. The messages never contain key material.
func checkTLS(s *Settings) []*destination.FieldError {
	var errs destination.FieldErrors
	now := time.Now()
	certOK := false
	if s.TLSClientCertificate != "" {
		certOK = checkCertificate(&errs, s.TLSClientCertificate, now)
	}
	keyOK := false
	if s.TLSClientKey != "" {
		keyOK = checkKey(&errs, s.TLSClientKey)
	}
	switch {
	case s.TLSClientCertificate != "" && s.TLSClientKey == "":
		errs.Add("tls_client_key", "required with tls_client_certificate: the certificate's private key (PEM)", nil)
	case s.TLSClientKey != "" && s.TLSClientCertificate == "":
		errs.Add("tls_client_certificate", "required with tls_client_key: the client certificate (PEM, leaf first)", nil)
	case certOK && keyOK:
		if _, err := httpsend.ParseClientCertificate(s.TLSClientCertificate, s.TLSClientKey); err != nil {
			msg := "does not belong to the certificate"
			if !strings.Contains(err.Error(), "does not match") {
				msg = "cannot be used with the certificate: " + strings.TrimPrefix(err.Error(), "client certificate: ")
			}
			errs.Add("tls_client_key", msg, nil)
		}
	}
	if s.TLSCABundle != "" {
		if len(s.TLSCABundle) > maxCABundlePEM {
			errs.Add("tls_ca_bundle", fmt.Sprintf("too long: at most %d KiB of PEM", maxCABundlePEM>>10), nil)
		} else if _, err := httpsend.ParseCertificates(s.TLSCABundle); err != nil {
			errs.Add("tls_ca_bundle", "not a PEM bundle of CA certificates: "+err.Error(), nil)
		}
	}
	return errs
}

// checkCertificate checks the client certificate chain and reports whether it is usable.
func checkCertificate(errs *destination.FieldErrors, certPEM string, now time.Time) bool {
	const field = "tls_client_certificate"
	if len(certPEM) > maxCertificatePEM {
		errs.Add(field, fmt.Sprintf("too long: at most %d KiB of PEM", maxCertificatePEM>>10), nil)
		return false
	}
	if strings.Contains(certPEM, "PRIVATE KEY-----") {
		// Pasted with the key: refuse rather than store the key in a field that is not sealed.
		errs.Add(field, "contains a private key: put the key in tls_client_key (sealed), and only certificates here", nil)
		return false
	}
	certs, err := httpsend.ParseCertificates(certPEM)
	if err != nil {
		errs.Add(field, "not a PEM certificate chain: "+err.Error(), nil)
		return false
	}
	leaf := certs[0]
	switch {
	case now.After(leaf.NotAfter):
		errs.Add(field, "the certificate expired on "+leaf.NotAfter.UTC().Format(time.RFC3339), nil)
		return false
	case now.Before(leaf.NotBefore):
		errs.Add(field, "the certificate is not valid before "+leaf.NotBefore.UTC().Format(time.RFC3339), nil)
		return false
	}
	return true
}

// checkKey checks that the key is one unencrypted PEM private key.
func checkKey(errs *destination.FieldErrors, keyPEM string) bool {
	const field = "tls_client_key"
	if len(keyPEM) > maxKeyPEM {
		errs.Add(field, fmt.Sprintf("too long: at most %d KiB of PEM", maxKeyPEM>>10), nil)
		return false
	}
	block, _ := pem.Decode([]byte(keyPEM))
	switch {
	case block == nil:
		errs.Add(field, "not a PEM private key (-----BEGIN PRIVATE KEY-----)", nil)
		return false
	case block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["Proc-Type"] != "":
		errs.Add(field, "an encrypted key: give it unencrypted (Herald seals it at rest)", nil)
		return false
	case !strings.HasSuffix(block.Type, "PRIVATE KEY"):
		errs.Add(field, fmt.Sprintf("the PEM block is a %q, not a PRIVATE KEY", block.Type), nil)
		return false
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		return true
	}
	if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return true
	}
	if _, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return true
	}
	errs.Add(field, "does not parse as a PKCS #8, PKCS #1 (RSA) or SEC 1 (EC) private key", nil)
	return false
}

// tlsSettings describes the TLS fields for forms.
func tlsSettings() []destination.Setting {
	return []destination.Setting{
		{Name: "tls_client_certificate", Kind: destination.SettingString, Multiline: true, Placeholder: "-----BEGIN CERTIFICATE-----",
			Help: "Mutual TLS: the client certificate Herald presents when the receiver asks for one (PEM, leaf first, then intermediates). Needs tls_client_key. Its expiry shows on the endpoint; an operational webhook warns 14 days before."},
		{Name: "tls_client_key", Kind: destination.SettingString, Secret: true, Multiline: true, Placeholder: "-----BEGIN PRIVATE KEY-----",
			Help: "The client certificate's private key (PEM, unencrypted): sealed at rest, never shown."},
		{Name: "tls_ca_bundle", Kind: destination.SettingString, Multiline: true, Placeholder: "-----BEGIN CERTIFICATE-----",
			Help: "CA certificates (PEM) the receiver's certificate must chain to, instead of the system's roots: for receivers with a private CA."},
	}
}

// CertificateInfo describes an endpoint's client certificate (its leaf), as the API and the
// dashboard show it.
type CertificateInfo struct {
	Subject   string    `json:"subject" doc:"The certificate's subject (RFC 2253)."`
	Issuer    string    `json:"issuer" doc:"The certificate's issuer (RFC 2253)."`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after" doc:"When the certificate expires. An endpoint.certificate_expiring operational webhook is published 14 days before."`
	// FingerprintSHA256 is the SHA-256 of the certificate's DER, lower-case hex.
	FingerprintSHA256 string `json:"fingerprint_sha256" doc:"SHA-256 of the certificate (DER), lower-case hex."`
}

// ClientCertificate describes the client certificate in a webhook endpoint's settings, or is
// nil when it has none (or it does not parse, which Check prevents).
func ClientCertificate(settings json.RawMessage) *CertificateInfo {
	s, err := settingsOf(settings)
	if err != nil || s.TLSClientCertificate == "" {
		return nil
	}
	certs, err := httpsend.ParseCertificates(s.TLSClientCertificate)
	if err != nil {
		return nil
	}
	leaf := certs[0]
	sum := sha256.Sum256(leaf.Raw)
	return &CertificateInfo{
		Subject: leaf.Subject.String(), Issuer: leaf.Issuer.String(),
		NotBefore: leaf.NotBefore.UTC(), NotAfter: leaf.NotAfter.UTC(),
		FingerprintSHA256: hex.EncodeToString(sum[:]),
	}
}

// egress is what the settings change of how requests leave (httpsend.Options).
func (s *Settings) egress() httpsend.Options {
	o := httpsend.Options{
		ClientCertificate: s.TLSClientCertificate, ClientKey: s.TLSClientKey, CABundle: s.TLSCABundle,
		Proxy: s.Proxy,
	}
	if s.Proxy == ProxyNone {
		o.Proxy = httpsend.ProxyDirect
	}
	return o
}
