package ui_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldhq/herald/internal/testcert"
)

// A webhook endpoint with a client certificate shows it on its page: subject, issuer, expiry
// flagged within 14 days, fingerprint; the key is nowhere in the page.
func TestBrowser_EndpointShowsClientCertificateExpiry(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	shots := screenshots(t)
	n := startUINode(t)
	ca := testcert.NewCA(t, "Partner Client CA")
	cert := ca.Client(t, "acme-orders", time.Now().Add(10*24*time.Hour+time.Hour))
	var ep endpointAnswer
	apiCall(t, n, 201, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": "https://orders.example.com/hooks", "event_types": []string{"*"},
		"config": map[string]any{"tls_client_certificate": cert.CertPEM, "tls_client_key": cert.KeyPEM}}, &ep)

	b := signedInTab(t, browser, n)
	eval[bool](b, "open the endpoint", `(() => { location.hash = "#/endpoints/`+ep.ID+`"; return true; })()`)
	b.waitFor("the certificate shows", `document.querySelector("#client-certificate")`)
	text := eval[string](b, "read the certificate", `document.querySelector("#client-certificate").textContent`)
	for _, want := range []string{"CN=acme-orders", "CN=Partner Client CA", cert.Cert.NotAfter.UTC().Format("2006-01-02"), "10 days left"} {
		if !strings.Contains(text, want) {
			t.Errorf("the certificate row %q lacks %q", text, want)
		}
	}
	if flagged := eval[bool](b, "the expiry is flagged", `!!document.querySelector("#client-certificate .badge.state-dead")`); !flagged {
		t.Error("a certificate expiring in 10 days is not flagged")
	}
	if got := eval[string](b, "credentials", `document.querySelector("#credentials").textContent`); got != "tls_client_key: set" {
		t.Errorf("credentials row %q", got)
	}
	keyLine := strings.Split(cert.KeyPEM, "\n")[1]
	if eval[bool](b, "look for the key", `document.documentElement.outerHTML.includes(`+jsString(keyLine)+`)`) {
		t.Fatal("the page shows the private key")
	}
	sctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	img, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(shots, "30-endpoint-client-certificate.png"), img, 0o644); err != nil {
		t.Fatal(err)
	}
}
