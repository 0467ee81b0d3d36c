package node_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/testcert"
)

func TestNode_ServesHTTPSWithACertificate(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := testcert.WriteSelfSigned(t, t.TempDir())
	h := start(t, func(c *node.Config) { c.TLSCertFile, c.TLSKeyFile = certFile, keyFile })
	if !strings.HasPrefix(h.node.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL() = %q, want https://127.0.0.1:…", h.node.URL())
	}

	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: h2}
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		req, err := http.NewRequest("GET", h.node.URL()+"/v1/tenants", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+adminKey)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("HTTPS request (HTTP/2 %v): %v", h2, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if resp.StatusCode != http.StatusOK || resp.TLS == nil || !resp.TLS.HandshakeComplete {
			t.Errorf("HTTPS request (HTTP/2 %v): status %d, TLS %v", h2, resp.StatusCode, resp.TLS != nil)
		}
		if resp.TLS.Version < tls.VersionTLS12 {
			t.Errorf("negotiated TLS version %x, want at least 1.2", resp.TLS.Version)
		}
		if h2 && resp.ProtoMajor != 2 {
			t.Errorf("with HTTP/2 offered, the server spoke %s", resp.Proto)
		}
	}

	// A client that does not trust the certificate refuses it.
	untrusting := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}, Timeout: 10 * time.Second}
	if resp, err := untrusting.Get(h.node.URL() + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("a client without the certificate in its roots connected")
	} else if ue := new(x509.UnknownAuthorityError); !errors.As(err, ue) {
		t.Errorf("untrusting client: %v, want an unknown authority error", err)
	}

	// Plain HTTP on the HTTPS port carries no API key to anyone: it is refused.
	resp, err := http.Get("http://" + h.node.Addr + "/healthz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the HTTPS port = %d, want 400", resp.StatusCode)
		}
	}
}

func TestNode_TLSSettingsAreChecked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, _ := testcert.WriteSelfSigned(t, dir)
	otherCert, _, _ := testcert.WriteSelfSigned(t, t.TempDir())
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a pem file"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, cert, key, want string
	}{
		{"certificate without key", certFile, "", "both a certificate and its key"},
		{"key without certificate", "", keyFile, "both a certificate and its key"},
		{"missing file", filepath.Join(dir, "nope.pem"), keyFile, "load the TLS certificate"},
		{"not PEM", garbage, keyFile, "load the TLS certificate"},
		{"key of another certificate", otherCert, keyFile, "load the TLS certificate"},
	}
	for _, c := range cases {
		_, err := node.Start(context.Background(), node.Config{
			Addr: "127.0.0.1:0", DataDir: t.TempDir(), APIKey: adminKey, TLSCertFile: c.cert, TLSKeyFile: c.key,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Start = %v, want an error containing %q", c.name, err, c.want)
		}
	}
}
