package webhook_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/destination/webhook"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/testcert"
)

func settingsJSON(t *testing.T, m map[string]any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckTLS(t *testing.T) {
	t.Parallel()
	typ := webhook.New(httpsend.New(httpsend.Config{}), nil)
	ca := testcert.NewCA(t, "client CA")
	good := ca.Client(t, "tenant", time.Now().Add(30*24*time.Hour))
	other := ca.Client(t, "other", time.Now().Add(30*24*time.Hour))
	expired := ca.ClientValid(t, "old", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	future := ca.ClientValid(t, "future", time.Now().Add(24*time.Hour), time.Now().Add(48*time.Hour))
	encrypted := "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n"

	tests := []struct {
		name      string
		settings  map[string]any
		wantField string
		wantMsg   string
	}{
		{"certificate and key", map[string]any{"tls_client_certificate": good.CertPEM, "tls_client_key": good.KeyPEM}, "", ""},
		{"chain with the CA", map[string]any{"tls_client_certificate": good.CertPEM + ca.PEM, "tls_client_key": good.KeyPEM}, "", ""},
		{"CA bundle alone", map[string]any{"tls_ca_bundle": ca.PEM}, "", ""},
		{"certificate without key", map[string]any{"tls_client_certificate": good.CertPEM}, "tls_client_key", "required"},
		{"key without certificate", map[string]any{"tls_client_key": good.KeyPEM}, "tls_client_certificate", "required"},
		{"certificate is not PEM", map[string]any{"tls_client_certificate": "hello", "tls_client_key": good.KeyPEM}, "tls_client_certificate", "no PEM certificate"},
		{"certificate does not parse", map[string]any{"tls_client_certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "tls_client_key": good.KeyPEM}, "tls_client_certificate", "does not parse"},
		{"certificate with its key pasted in", map[string]any{"tls_client_certificate": good.CertPEM + good.KeyPEM, "tls_client_key": good.KeyPEM}, "tls_client_certificate", "contains a private key"},
		{"expired certificate", map[string]any{"tls_client_certificate": expired.CertPEM, "tls_client_key": expired.KeyPEM}, "tls_client_certificate", "expired on"},
		{"certificate not yet valid", map[string]any{"tls_client_certificate": future.CertPEM, "tls_client_key": future.KeyPEM}, "tls_client_certificate", "not valid before"},
		{"key is not PEM", map[string]any{"tls_client_certificate": good.CertPEM, "tls_client_key": "secret"}, "tls_client_key", "not a PEM private key"},
		{"key is a certificate", map[string]any{"tls_client_certificate": good.CertPEM, "tls_client_key": good.CertPEM}, "tls_client_key", "not a PRIVATE KEY"},
		{"encrypted key", map[string]any{"tls_client_certificate": good.CertPEM, "tls_client_key": encrypted}, "tls_client_key", "encrypted"},
		{"key of another certificate", map[string]any{"tls_client_certificate": good.CertPEM, "tls_client_key": other.KeyPEM}, "tls_client_key", "does not belong"},
		{"CA bundle is not PEM", map[string]any{"tls_ca_bundle": "nope"}, "tls_ca_bundle", "no PEM certificate"},
		{"CA bundle holds a key", map[string]any{"tls_ca_bundle": good.KeyPEM}, "tls_ca_bundle", "not a CERTIFICATE"},
	}
	for _, tt := range tests {
		out, errs := typ.Check(settingsJSON(t, tt.settings))
		if tt.wantField == "" {
			if len(errs) != 0 || out == nil {
				t.Errorf("%s: errors %v, want none", tt.name, errs)
			}
			continue
		}
		if len(errs) != 1 || errs[0].Field != tt.wantField || !strings.Contains(errs[0].Message, tt.wantMsg) {
			t.Errorf("%s: errors %v, want one at %s containing %q", tt.name, errs, tt.wantField, tt.wantMsg)
			continue
		}
		if keyLine := strings.Split(good.KeyPEM, "\n")[1]; strings.Contains(errs[0].Message, keyLine) || errs[0].Value != nil {
			t.Errorf("%s: the error shows the value: %q %v", tt.name, errs[0].Message, errs[0].Value)
		}
	}
}

func TestCheckProxy(t *testing.T) {
	t.Parallel()
	typ := webhook.New(httpsend.New(httpsend.Config{}), nil)
	for _, ok := range []string{"none", "http://proxy.example.com:3128", "https://u:p@proxy.example.com", "socks5://proxy.example.com"} {
		if _, errs := typ.Check(settingsJSON(t, map[string]any{"proxy": ok})); len(errs) != 0 {
			t.Errorf("proxy %q: %v, want accepted", ok, errs)
		}
	}
	for _, bad := range []string{"direct", "ftp://proxy.example.com", "http://user:hunter2@proxy.example.com/path", "http://:3128"} {
		_, errs := typ.Check(settingsJSON(t, map[string]any{"proxy": bad}))
		if len(errs) != 1 || errs[0].Field != "proxy" {
			t.Errorf("proxy %q: %v, want an error at proxy", bad, errs)
			continue
		}
		if strings.Contains(errs[0].Message, "hunter2") {
			t.Errorf("proxy %q: the error shows the password: %s", bad, errs[0].Message)
		}
	}
}

func TestClientCertificateInfo(t *testing.T) {
	t.Parallel()
	ca := testcert.NewCA(t, "client CA")
	notAfter := time.Now().Add(10 * 24 * time.Hour).Truncate(time.Second)
	id := ca.Client(t, "orders-prod", notAfter)
	info := webhook.ClientCertificate(settingsJSON(t, map[string]any{"tls_client_certificate": id.CertPEM + ca.PEM, "tls_client_key": id.KeyPEM}))
	sum := sha256.Sum256(id.Cert.Raw)
	if info == nil || info.Subject != "CN=orders-prod,O=Herald tests" || info.Issuer != "CN=client CA,O=Herald tests" ||
		!info.NotAfter.Equal(notAfter) || info.FingerprintSHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("info = %+v", info)
	}
	if webhook.ClientCertificate(nil) != nil || webhook.ClientCertificate(settingsJSON(t, map[string]any{"proxy": "none"})) != nil {
		t.Error("info for settings without a certificate")
	}
}

// The sender presents the endpoint's client certificate to a server that requires one, and
// checks the server against the endpoint's CA bundle.
func TestWebhook_SendsWithClientCertificate(t *testing.T) {
	t.Parallel()
	serverCA, clientCA := testcert.NewCA(t, "receiver's private CA"), testcert.NewCA(t, "client CA")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCA.Server(t).TLS},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCA.Pool()}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	typ := webhook.New(httpsend.New(httpsend.Config{AllowLoopback: true}), nil)
	t.Cleanup(func() { _ = typ.Close() })
	id := clientCA.Client(t, "endpoint-1", time.Now().Add(time.Hour))

	raw, errs := typ.Check(settingsJSON(t, map[string]any{"tls_client_certificate": id.CertPEM, "tls_client_key": id.KeyPEM, "tls_ca_bundle": serverCA.PEM}))
	if errs != nil {
		t.Fatal(errs)
	}
	s, err := typ.Open(destination.Target{EndpointID: "ep_1", URL: srv.URL, Settings: raw})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o := s.Send(ctx, &destination.Message{ID: "evt_1", Body: []byte(`{}`), Header: http.Header{}})
	if o.Class != destination.Success || string(o.Response) != "endpoint-1" {
		t.Fatalf("outcome %q %q %q (%s)", o.Class, o.ErrorKind, o.Response, o.Error)
	}

	plain, err := typ.Open(destination.Target{EndpointID: "ep_2", URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if o := plain.Send(ctx, &destination.Message{ID: "evt_1", Body: []byte(`{}`), Header: http.Header{}}); o.ErrorKind != destination.KindTLS {
		t.Fatalf("without the settings: %q %q (%s), want tls", o.Class, o.ErrorKind, o.Error)
	}
}
