package node_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/testcert"
)

type sourceOut struct {
	ID        string `json:"id"`
	IngestURL string `json:"ingest_url"`
}

// options sends the CloudEvents handshake to a URL and returns the answer.
func options(t *testing.T, c *http.Client, u, origin string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodOptions, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if origin != "" {
		req.Header.Set("WebHook-Request-Origin", origin)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// Herald delivers CloudEvents to a Herald source: its sender's handshake is answered by the
// receiving gateway (the source allows the sender's origin and states its rate limit), and the
// event arrives. Handshakes from origins the source does not list, or without an origin, are
// refused; a source that lists none refuses every one.
func TestReceiving_CloudEventsHandshakeHeraldToHerald(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			mod := b.mod(t)
			h := start(t, func(c *node.Config) {
				if mod != nil {
					mod(c)
				}
				c.WebhookOrigin = "herald.test"
			})
			h.setup("acme", "order.created")
			h.must(201, "POST", "/v1/tenants", map[string]any{"id": "globex", "name": "Globex"}, nil)
			placeholder := newReceiver(t, nil)
			ep := h.endpoint("acme", map[string]any{"url": placeholder.URL, "event_types": []string{"order.created"}, "format": "cloudevents-structured"})
			var src sourceOut
			h.must(201, "POST", "/v1/tenants/globex/sources", map[string]any{"name": "from-acme",
				"verification":        map[string]any{"scheme": "standard_webhooks", "secrets": []string{ep.Secret}},
				"cloudevents_origins": []string{"herald.test"}, "rate_limit": 5}, &src)
			var shown struct {
				CloudEventsOrigins []string `json:"cloudevents_origins"`
			}
			h.must(200, "GET", "/v1/tenants/globex/sources/"+src.ID, nil, &shown)
			if len(shown.CloudEventsOrigins) != 1 || shown.CloudEventsOrigins[0] != "herald.test" {
				t.Errorf("source shows cloudevents_origins %v", shown.CloudEventsOrigins)
			}
			var bad problem
			if code := h.call("PATCH", "/v1/tenants/globex/sources/"+src.ID, map[string]any{"cloudevents_origins": []string{"not a name"}}, &bad); code != 422 || bad.at("body.cloudevents_origins[0]") == "" {
				t.Errorf("bad origin: %d %+v, want 422 at body.cloudevents_origins[0]", code, bad)
			}

			resp := options(t, http.DefaultClient, src.IngestURL, "herald.test")
			if resp.StatusCode != 200 || resp.Header.Get("WebHook-Allowed-Origin") != "herald.test" || resp.Header.Get("WebHook-Allowed-Rate") != "300" {
				t.Errorf("handshake answer %d %v, want 200 allowing herald.test at 300 a minute", resp.StatusCode, resp.Header)
			}
			for _, origin := range []string{"evil.example", ""} {
				if resp := options(t, http.DefaultClient, src.IngestURL, origin); resp.StatusCode < 400 || resp.Header.Get("WebHook-Allowed-Origin") != "" {
					t.Errorf("handshake from %q answered %d %v, want a refusal", origin, resp.StatusCode, resp.Header)
				}
			}

			h.must(200, "PATCH", "/v1/tenants/acme/endpoints/"+ep.ID, map[string]any{"url": src.IngestURL}, nil)
			p := h.publish("acme", map[string]any{"type": "order.created", "data": map[string]any{"n": 7}})
			var events struct {
				Data []struct {
					Type string         `json:"type"`
					Data map[string]any `json:"data"`
				} `json:"data"`
			}
			eventually(t, 20*time.Second, "the event at globex", func() bool {
				h.must(200, "GET", "/v1/tenants/globex/events", nil, &events)
				return len(events.Data) == 1
			})
			if d := events.Data[0].Data; d["specversion"] != "1.0" || d["id"] != p.ID || d["type"] != "order.created" {
				t.Errorf("globex received %+v, want acme's CloudEvent", events.Data[0])
			}

			// A source without cloudevents_origins refuses every handshake.
			var closed sourceOut
			h.must(201, "POST", "/v1/tenants/globex/sources", map[string]any{"name": "closed",
				"verification": map[string]any{"scheme": "none"}}, &closed)
			if resp := options(t, http.DefaultClient, closed.IngestURL, "herald.test"); resp.StatusCode != 403 {
				t.Errorf("a source without origins answered the handshake %d, want 403", resp.StatusCode)
			}
		})
	}
}

// clientPKI is a CA and the client certificates it signs, for a source requiring one.
type clientPKI struct {
	caFile string
	ca     *x509.Certificate
	key    *ecdsa.PrivateKey
}

func newClientPKI(t *testing.T) *clientPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test client CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "client-ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &clientPKI{caFile: file, ca: ca, key: key}
}

// issue signs a client certificate for cn (also its DNS SAN).
func (p *clientPKI) issue(t *testing.T, cn string) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func post(t *testing.T, c *http.Client, u string, header map[string]string) int {
	t.Helper()
	return postBody(t, c, u, `{"type":"ping"}`, header)
}

func postBody(t *testing.T, c *http.Client, u, body string, header map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// A source requiring a client certificate accepts requests whose certificate Herald's own TLS
// listener verified against --tls-client-ca (with one of the source's names), and refuses the
// others; the API and other sources still work without one.
func TestReceiving_ClientCertificateOnHeraldsListener(t *testing.T) {
	t.Parallel()
	pki := newClientPKI(t)
	certFile, keyFile, pool := testcert.WriteSelfSigned(t, t.TempDir())
	h := start(t, func(c *node.Config) {
		c.TLSCertFile, c.TLSKeyFile, c.TLSClientCAFile = certFile, keyFile, pki.caFile
	})
	plain := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	api := func(path string, body any, out any) {
		t.Helper()
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequest(http.MethodPost, h.node.URL()+path, bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+adminKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := plain.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 201 {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatal(err)
			}
		}
	}
	api("/v1/tenants", map[string]any{"id": "acme", "name": "Acme"}, nil)
	var src sourceOut
	api("/v1/tenants/acme/sources", map[string]any{"name": "partner",
		"verification": map[string]any{"scheme": "none"}, "client_cert": map[string]any{"required": true, "names": []string{"partner.example"}}}, &src)
	var open sourceOut
	api("/v1/tenants/acme/sources", map[string]any{"name": "open", "verification": map[string]any{"scheme": "none"}}, &open)

	withCert := func(cn string) *http.Client {
		cert, _ := pki.issue(t, cn)
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil,
			TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
	}
	if code := post(t, withCert("partner.example"), src.IngestURL, nil); code != 200 {
		t.Errorf("with the partner's certificate: %d, want 200", code)
	}
	if code := post(t, withCert("someone.example"), src.IngestURL, nil); code != 403 {
		t.Errorf("with another name's certificate: %d, want 403", code)
	}
	if code := post(t, plain, src.IngestURL, nil); code != 403 {
		t.Errorf("without a certificate: %d, want 403", code)
	}
	// Forwarded headers from an untrusted address prove nothing.
	if code := post(t, plain, src.IngestURL, map[string]string{"X-Forwarded-Client-Cert": `Subject="CN=partner.example"`}); code != 403 {
		t.Errorf("with a forged X-Forwarded-Client-Cert: %d, want 403", code)
	}
	if code := post(t, plain, open.IngestURL, nil); code != 200 {
		t.Errorf("a source without the requirement: %d, want 200", code)
	}
}

// Behind a trusted proxy, a source takes the certificate the proxy verified from Envoy's
// X-Forwarded-Client-Cert or nginx's X-SSL-Client-Verify and X-SSL-Client-Cert; the same
// headers from an address that is not a trusted proxy are ignored.
func TestReceiving_ClientCertificateFromATrustedProxy(t *testing.T) {
	t.Parallel()
	pki := newClientPKI(t)
	_, partnerPEM := pki.issue(t, "partner.example")
	_, otherPEM := pki.issue(t, "other.example")
	trusted := start(t, func(c *node.Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} })
	untrusted := start(t, nil)
	for _, h := range []*harness{trusted, untrusted} {
		h.must(201, "POST", "/v1/tenants", map[string]any{"id": "acme", "name": "Acme"}, nil)
	}
	source := func(h *harness) sourceOut {
		var src sourceOut
		h.must(201, "POST", "/v1/tenants/acme/sources", map[string]any{"name": "partner",
			"verification": map[string]any{"scheme": "none"}, "client_cert": map[string]any{"required": true, "names": []string{"partner.example"}}}, &src)
		return src
	}
	ts, us := source(trusted), source(untrusted)
	tu, uu := ts.IngestURL, us.IngestURL
	c := &http.Client{Timeout: 10 * time.Second}
	xfcc := `By=spiffe://herald.example/gw;Hash=abc;Subject="O=Partner,CN=partner.example";URI=;DNS=partner.example`
	for _, tc := range []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"envoy", map[string]string{"X-Forwarded-Client-Cert": xfcc}, 200},
		{"envoy, another name", map[string]string{"X-Forwarded-Client-Cert": `Subject="CN=other.example"`}, 403},
		{"nginx", map[string]string{"X-SSL-Client-Verify": "SUCCESS", "X-SSL-Client-Cert": url.QueryEscape(string(partnerPEM))}, 200},
		{"nginx, another name", map[string]string{"X-SSL-Client-Verify": "SUCCESS", "X-SSL-Client-Cert": url.QueryEscape(string(otherPEM))}, 403},
		{"nginx, not verified", map[string]string{"X-SSL-Client-Verify": "FAILED:certificate has expired", "X-SSL-Client-Cert": url.QueryEscape(string(partnerPEM))}, 403},
		{"nothing forwarded", nil, 403},
	} {
		if code := post(t, c, tu, tc.header); code != tc.want {
			t.Errorf("%s through the trusted proxy: %d, want %d", tc.name, code, tc.want)
		}
		if code := post(t, c, uu, tc.header); code != 403 {
			t.Errorf("%s from an untrusted address: %d, want 403", tc.name, code)
		}
	}
	var bad problem
	if code := trusted.call("PATCH", "/v1/tenants/acme/sources/"+ts.ID, map[string]any{"client_cert": map[string]any{"required": false, "names": []string{"a"}}}, &bad); code != 422 || bad.at("body.client_cert.names") == "" {
		t.Errorf("names without required: %d %+v, want 422 at body.client_cert.names", code, bad)
	}
	// Removing the requirement opens the source again.
	trusted.must(200, "PATCH", "/v1/tenants/acme/sources/"+ts.ID, map[string]any{"client_cert": map[string]any{"required": false}}, nil)
	eventually(t, 10*time.Second, "the requirement to be gone", func() bool { return post(t, c, tu, nil) == 200 })
}

// A source made with a preset through the API verifies the provider's requests: Linear's
// Linear-Signature (hex HMAC-SHA256 of the body), and shows the filled-in scheme.
func TestReceiving_PresetThroughTheAPI(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	h.must(201, "POST", "/v1/tenants", map[string]any{"id": "acme", "name": "Acme"}, nil)
	const secret = "lin_wh_s3cr3t"
	var src sourceOut
	h.must(201, "POST", "/v1/tenants/acme/sources", map[string]any{"name": "linear",
		"verification": map[string]any{"preset": "linear", "secrets": []string{secret}}, "event_type_prefix": "linear."}, &src)
	var shown struct {
		Verification map[string]any `json:"verification"`
	}
	h.must(200, "GET", "/v1/tenants/acme/sources/"+src.ID, nil, &shown)
	if v := shown.Verification; v["preset"] != "linear" || v["scheme"] != "hmac" || v["header"] != "Linear-Signature" {
		t.Errorf("verification shown %v", v)
	}
	var bad problem
	if code := h.call("POST", "/v1/tenants/acme/sources", map[string]any{"name": "x",
		"verification": map[string]any{"preset": "paypal", "secrets": []string{"s"}}}, &bad); code != 422 || bad.at("body.verification.preset") == "" {
		t.Errorf("unknown preset: %d %+v", code, bad)
	}
	body := `{"action":"create","type":"Issue","data":{"id":"2174add1"}}`
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	if code := postBody(t, http.DefaultClient, src.IngestURL, body, map[string]string{"Linear-Signature": hex.EncodeToString(m.Sum(nil)), "Linear-Delivery": "d-1"}); code != 200 {
		t.Errorf("Linear's request: %d, want 200", code)
	}
	if code := postBody(t, http.DefaultClient, src.IngestURL, body, map[string]string{"Linear-Signature": strings.Repeat("0", 64), "Linear-Delivery": "d-2"}); code != 401 {
		t.Errorf("a forged request: %d, want 401", code)
	}
}
