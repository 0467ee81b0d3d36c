package httpsend

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/testcert"
)

// mtlsServer is a TLS server on 127.0.0.1 that requires a client certificate issued by clients
// and answers 200 with the client certificate's common name. It counts new connections.
type mtlsServer struct {
	*httptest.Server
	mu    sync.Mutex
	conns int
}

func (m *mtlsServer) newConns() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conns
}

func startMTLS(t *testing.T, serverCA, clients *testcert.CA) *mtlsServer {
	t.Helper()
	m := &mtlsServer{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			m.mu.Lock()
			m.conns++
			m.mu.Unlock()
		}
	}
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{serverCA.Server(t).TLS},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clients.Pool(),
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	m.Server = srv
	return m
}

func send(t *testing.T, c *Client, url string) destination.Outcome {
	t.Helper()
	return c.Send(t.Context(), Request{URL: url, Body: []byte(`{}`), Timeout: 10 * time.Second})
}

func TestMTLS_RefusedWithoutCertificateAcceptedWithIt(t *testing.T) {
	t.Parallel()
	serverCA, clientCA := testcert.NewCA(t, "server CA"), testcert.NewCA(t, "client CA")
	srv := startMTLS(t, serverCA, clientCA)
	cfg := devConfig()
	cfg.TLSConfig = &tls.Config{RootCAs: serverCA.Pool()}
	c := newTestClient(t, cfg)

	if o := send(t, c, srv.URL); o.Class == destination.Success || o.ErrorKind != destination.KindTLS {
		t.Fatalf("without a client certificate: got %q %q (%s), want a tls failure", o.Class, o.ErrorKind, o.Error)
	}

	id := clientCA.Client(t, "tenant-a", time.Now().Add(24*time.Hour))
	withCert, err := c.With(Options{ClientCertificate: id.CertPEM, ClientKey: id.KeyPEM})
	if err != nil {
		t.Fatal(err)
	}
	o := send(t, withCert, srv.URL)
	if o.Class != destination.Success || string(o.Response) != "tenant-a" {
		t.Fatalf("with the client certificate: got %q %q %d %q (%s)", o.Class, o.ErrorKind, o.StatusCode, o.Response, o.Error)
	}

	// A certificate from another CA is refused by the server.
	other := testcert.NewCA(t, "other CA").Client(t, "intruder", time.Now().Add(time.Hour))
	wrong, err := c.With(Options{ClientCertificate: other.CertPEM, ClientKey: other.KeyPEM})
	if err != nil {
		t.Fatal(err)
	}
	if o := send(t, wrong, srv.URL); o.Class == destination.Success || o.ErrorKind != destination.KindTLS {
		t.Fatalf("with a certificate the server does not trust: got %q %q (%s)", o.Class, o.ErrorKind, o.Error)
	}
}

func TestMTLS_CustomCABundle(t *testing.T) {
	t.Parallel()
	privateCA, clientCA := testcert.NewCA(t, "receiver's private CA"), testcert.NewCA(t, "client CA")
	srv := startMTLS(t, privateCA, clientCA)
	c := newTestClient(t, devConfig()) // system roots only
	id := clientCA.Client(t, "tenant-b", time.Now().Add(24*time.Hour))

	noBundle, err := c.With(Options{ClientCertificate: id.CertPEM, ClientKey: id.KeyPEM})
	if err != nil {
		t.Fatal(err)
	}
	if o := send(t, noBundle, srv.URL); o.ErrorKind != destination.KindTLS || !strings.Contains(o.Error, "unknown authority") {
		t.Fatalf("without the CA bundle: got %q %q (%s), want an unknown authority", o.Class, o.ErrorKind, o.Error)
	}
	withBundle, err := c.With(Options{ClientCertificate: id.CertPEM, ClientKey: id.KeyPEM, CABundle: privateCA.PEM})
	if err != nil {
		t.Fatal(err)
	}
	if o := send(t, withBundle, srv.URL); o.Class != destination.Success {
		t.Fatalf("with the CA bundle: got %q %q (%s)", o.Class, o.ErrorKind, o.Error)
	}
	// The bundle replaces the roots: another CA's bundle does not trust the server.
	wrongBundle, err := c.With(Options{ClientCertificate: id.CertPEM, ClientKey: id.KeyPEM, CABundle: clientCA.PEM})
	if err != nil {
		t.Fatal(err)
	}
	if o := send(t, wrongBundle, srv.URL); o.ErrorKind != destination.KindTLS {
		t.Fatalf("with another CA's bundle: got %q %q (%s)", o.Class, o.ErrorKind, o.Error)
	}
}

// The dispatcher opens a sender (and so calls With) again when an endpoint's settings change,
// and each attempt goes through the route's cached transport: attempts of one endpoint reuse
// one connection, even through clients made by separate With calls.
func TestMTLS_ConnectionReusedAcrossAttemptsAndRotation(t *testing.T) {
	t.Parallel()
	serverCA, clientCA := testcert.NewCA(t, "server CA"), testcert.NewCA(t, "client CA")
	srv := startMTLS(t, serverCA, clientCA)
	cfg := devConfig()
	cfg.TLSConfig = &tls.Config{RootCAs: serverCA.Pool()}
	c := newTestClient(t, cfg)
	old := clientCA.Client(t, "old", time.Now().Add(24*time.Hour))

	for i := range 5 {
		ci, err := c.With(Options{ClientCertificate: old.CertPEM, ClientKey: old.KeyPEM})
		if err != nil {
			t.Fatal(err)
		}
		if o := send(t, ci, srv.URL); o.Class != destination.Success || string(o.Response) != "old" {
			t.Fatalf("attempt %d: %q %q %q (%s)", i, o.Class, o.ErrorKind, o.Response, o.Error)
		}
	}
	if n := srv.newConns(); n != 1 {
		t.Errorf("5 attempts of one endpoint opened %d connections, want 1", n)
	}

	// Rotation: the new certificate is a new route; its first request presents it.
	rotated := clientCA.Client(t, "new", time.Now().Add(48*time.Hour))
	ci, err := c.With(Options{ClientCertificate: rotated.CertPEM, ClientKey: rotated.KeyPEM})
	if err != nil {
		t.Fatal(err)
	}
	if o := send(t, ci, srv.URL); o.Class != destination.Success || string(o.Response) != "new" {
		t.Fatalf("after rotation: %q %q %q (%s)", o.Class, o.ErrorKind, o.Response, o.Error)
	}
}

func TestTransportCache_IsBounded(t *testing.T) {
	t.Parallel()
	serverCA, clientCA := testcert.NewCA(t, "server CA"), testcert.NewCA(t, "client CA")
	srv := startMTLS(t, serverCA, clientCA)
	cfg := devConfig()
	cfg.TLSConfig = &tls.Config{RootCAs: serverCA.Pool()}
	cfg.MaxTransports = 3
	c := newTestClient(t, cfg)
	for i := range 8 {
		id := clientCA.Client(t, fmt.Sprintf("endpoint-%d", i), time.Now().Add(time.Hour))
		ci, err := c.With(Options{ClientCertificate: id.CertPEM, ClientKey: id.KeyPEM})
		if err != nil {
			t.Fatal(err)
		}
		if o := send(t, ci, srv.URL); o.Class != destination.Success {
			t.Fatalf("endpoint %d: %q %q (%s)", i, o.Class, o.ErrorKind, o.Error)
		}
		if n := c.transports.len(); n > 3 {
			t.Fatalf("after %d endpoints the cache holds %d transports, want at most 3", i+1, n)
		}
	}
	if n := c.transports.len(); n != 3 {
		t.Errorf("cache holds %d transports, want 3", n)
	}
}

func TestWith_NothingToChangeIsTheSameClient(t *testing.T) {
	t.Parallel()
	c := newTestClient(t, devConfig())
	for _, o := range []Options{{}, {Proxy: ProxyDirect}} {
		got, err := c.With(o)
		if err != nil || got != c {
			t.Errorf("With(%+v) = %p, %v; want the client itself", o, got, err)
		}
	}
}

func TestWith_RefusesBadPEM(t *testing.T) {
	t.Parallel()
	c := newTestClient(t, devConfig())
	ca := testcert.NewCA(t, "CA")
	a, b := ca.Client(t, "a", time.Now().Add(time.Hour)), ca.Client(t, "b", time.Now().Add(time.Hour))
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"certificate without key", Options{ClientCertificate: a.CertPEM}, "go together"},
		{"garbage certificate", Options{ClientCertificate: "hello", ClientKey: a.KeyPEM}, "client certificate"},
		{"key of another certificate", Options{ClientCertificate: a.CertPEM, ClientKey: b.KeyPEM}, "does not match"},
		{"garbage CA bundle", Options{CABundle: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, "does not parse"},
		{"key as CA bundle", Options{CABundle: a.KeyPEM}, "not a CERTIFICATE"},
	}
	for _, tt := range tests {
		_, err := c.With(tt.o)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one containing %q", tt.name, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "PRIVATE KEY") && strings.Contains(err.Error(), a.KeyPEM[30:60]) {
			t.Errorf("%s: the error contains key material", tt.name)
		}
	}
}
