package node_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/ops"
	"github.com/heraldhq/herald/internal/testcert"
	"github.com/heraldhq/herald/internal/testproxy"
)

// mtlsReceiver is a receiver that requires a client certificate from clients and serves a
// certificate from its own CA; it records the client certificate's common name per event id.
type mtlsReceiver struct {
	*httptest.Server
	mu  sync.Mutex
	got map[string][]string // webhook-id → client CNs, one per request
}

func newMTLSReceiver(t *testing.T, serverCA, clients *testcert.CA) *mtlsReceiver {
	t.Helper()
	rc := &mtlsReceiver{got: map[string][]string{}}
	rc.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		rc.mu.Lock()
		id := r.Header.Get("Webhook-Id")
		rc.got[id] = append(rc.got[id], r.TLS.PeerCertificates[0].Subject.CommonName)
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	rc.Server.Config.ErrorLog = log.New(io.Discard, "", 0)
	rc.Server.TLS = &tls.Config{Certificates: []tls.Certificate{serverCA.Server(t).TLS},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clients.Pool()}
	rc.StartTLS()
	t.Cleanup(rc.Close)
	return rc
}

func (rc *mtlsReceiver) cns(id string) []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got[id])
}

type endpointWithCert struct {
	ID                string         `json:"id"`
	Config            map[string]any `json:"config"`
	ConfigSecrets     []string       `json:"config_secrets"`
	ClientCertificate *struct {
		Subject           string    `json:"subject"`
		Issuer            string    `json:"issuer"`
		NotAfter          time.Time `json:"not_after"`
		FingerprintSHA256 string    `json:"fingerprint_sha256"`
	} `json:"client_certificate"`
}

func TestMTLS_EndToEnd(t *testing.T) {
	t.Parallel()
	mtlsEndToEnd(t, nil)
}

func TestMTLS_EndToEndOnPostgres(t *testing.T) {
	t.Parallel()
	mtlsEndToEnd(t, onPostgres(t))
}

// An endpoint with a client certificate, its key and the receiver's CA bundle delivers to a
// receiver that requires the certificate; the API shows the certificate's expiry and never the
// key, which is not in clear in the database; rotating the certificate while events flow loses
// no delivery, and later deliveries present the new certificate.
func mtlsEndToEnd(t *testing.T, mod func(*node.Config)) {
	h := start(t, mod)
	h.setup("acme", "invoice.paid")
	serverCA, clientCA := testcert.NewCA(t, "receiver CA"), testcert.NewCA(t, "acme client CA")
	rc := newMTLSReceiver(t, serverCA, clientCA)
	notAfter := time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	old := clientCA.Client(t, "acme-old", notAfter)

	// Without the certificate, the receiver refuses the handshake: a tls attempt.
	plain := h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}, "retry_schedule": []int{0},
		"config": map[string]any{"tls_ca_bundle": serverCA.PEM}})
	var ep endpointWithCert
	h.must(201, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": rc.URL, "event_types": []string{"*"},
		"config": map[string]any{"tls_client_certificate": old.CertPEM, "tls_client_key": old.KeyPEM, "tls_ca_bundle": serverCA.PEM}}, &ep)

	if ep.ClientCertificate == nil || ep.ClientCertificate.Subject != "CN=acme-old,O=Herald tests" ||
		!ep.ClientCertificate.NotAfter.Equal(notAfter) || len(ep.ClientCertificate.FingerprintSHA256) != 64 {
		t.Fatalf("client_certificate = %+v", ep.ClientCertificate)
	}
	var got json.RawMessage
	h.must(200, "GET", "/v1/tenants/acme/endpoints/"+ep.ID, nil, &got)
	keyLine := strings.Split(old.KeyPEM, "\n")[1]
	if strings.Contains(string(got), keyLine) || strings.Contains(string(got), "PRIVATE KEY") {
		t.Fatalf("the endpoint's answer shows the key: %s", got)
	}
	var shown endpointWithCert
	_ = json.Unmarshal(got, &shown)
	if _, has := shown.Config["tls_client_key"]; has || !slices.Equal(shown.ConfigSecrets, []string{"tls_client_key"}) ||
		shown.Config["tls_client_certificate"] != old.CertPEM {
		t.Fatalf("config %v, config_secrets %v", shown.Config, shown.ConfigSecrets)
	}
	assertNotInDatabase(t, h, keyLine)

	first := h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{"n": 0}})
	eventually(t, 15*time.Second, "the first delivery", func() bool { return len(rc.cns(first.ID)) > 0 })
	if cns := rc.cns(first.ID); !slices.Contains(cns, "acme-old") {
		t.Fatalf("the receiver saw %q, want acme-old", cns)
	}
	eventually(t, 15*time.Second, "the plain endpoint's tls attempt", func() bool { return len(attemptsOf(h, plain.ID)) > 0 })
	if a := attemptsOf(h, plain.ID)[0]; a.ErrorKind != "tls" {
		t.Errorf("without a client certificate: attempt %+v, want a tls failure", a)
	}

	// Rotation while events flow: none is lost, and once the new certificate is in place the
	// receiver sees it.
	rotated := clientCA.Client(t, "acme-new", time.Now().Add(180*24*time.Hour))
	var ids []string
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 1; i <= 20; i++ {
			ids = append(ids, h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{"n": i}}).ID)
			time.Sleep(10 * time.Millisecond)
		}
	})
	time.Sleep(50 * time.Millisecond)
	var after endpointWithCert
	h.must(200, "PATCH", "/v1/tenants/acme/endpoints/"+ep.ID, map[string]any{"config": map[string]any{
		"tls_client_certificate": rotated.CertPEM, "tls_client_key": rotated.KeyPEM, "tls_ca_bundle": serverCA.PEM}}, &after)
	wg.Wait()
	if after.ClientCertificate == nil || after.ClientCertificate.Subject != "CN=acme-new,O=Herald tests" {
		t.Fatalf("client_certificate after rotation = %+v", after.ClientCertificate)
	}
	last := h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{"n": "last"}})
	ids = append(ids, last.ID)
	eventually(t, 60*time.Second, "every event delivered", func() bool {
		for _, id := range ids {
			if len(rc.cns(id)) == 0 {
				return false
			}
		}
		return true
	})
	// The dispatcher reloads settings within 30 s (sooner after a change through this node);
	// the last event's attempt may come before or after: it must succeed either way, and with
	// the endpoint's current certificate once the lane reloaded.
	eventually(t, 45*time.Second, "a delivery with the new certificate", func() bool {
		p := h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{"n": "probe"}})
		ok := false
		eventually(t, 15*time.Second, "the probe", func() bool { ok = slices.Contains(rc.cns(p.ID), "acme-new"); return len(rc.cns(p.ID)) > 0 })
		return ok
	})
	assertNotInDatabase(t, h, strings.Split(rotated.KeyPEM, "\n")[1])
}

// assertNotInDatabase checks that s appears nowhere in the node's database: the SQLite files, or
// every row of every table of the PostgreSQL schema.
func assertNotInDatabase(t *testing.T, h *harness, s string) {
	t.Helper()
	if h.cfg.DatabaseURL == "" {
		for _, name := range []string{"herald.db", "herald.db-wal"} {
			b, err := os.ReadFile(filepath.Join(h.dir, name))
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			if strings.Contains(string(b), s) {
				t.Fatalf("%s holds the secret in clear", name)
			}
		}
		return
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, h.cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", h.cfg.DatabaseSchema)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(tables) == 0 {
		t.Fatalf("tables of %s: %v %v", h.cfg.DatabaseSchema, tables, err)
	}
	for _, table := range tables {
		name := pgx.Identifier{h.cfg.DatabaseSchema, table}.Sanitize()
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+name+" t WHERE strpos(t::text, $1) > 0", s).Scan(&n); err != nil {
			t.Fatalf("search %s: %v", name, err)
		}
		if n > 0 {
			t.Fatalf("table %s holds the secret in clear in %d rows", table, n)
		}
	}
}

// Bad PEM is refused at save with a problem naming the field and the reason.
func TestMTLS_BadPEMRefusedNamingTheField(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	h.setup("acme", "invoice.paid")
	ca := testcert.NewCA(t, "CA")
	good, other := ca.Client(t, "a", time.Now().Add(time.Hour)), ca.Client(t, "b", time.Now().Add(time.Hour))
	expired := ca.ClientValid(t, "old", time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	tests := []struct {
		config   map[string]any
		location string
		message  string
	}{
		{map[string]any{"tls_client_certificate": good.CertPEM, "tls_client_key": "not a key"}, "body.config.tls_client_key", "not a PEM private key"},
		{map[string]any{"tls_client_certificate": good.CertPEM, "tls_client_key": other.KeyPEM}, "body.config.tls_client_key", "does not belong"},
		{map[string]any{"tls_client_certificate": "garbage", "tls_client_key": good.KeyPEM}, "body.config.tls_client_certificate", "not a PEM certificate"},
		{map[string]any{"tls_client_certificate": expired.CertPEM, "tls_client_key": expired.KeyPEM}, "body.config.tls_client_certificate", "expired"},
		{map[string]any{"tls_client_certificate": good.CertPEM}, "body.config.tls_client_key", "required"},
		{map[string]any{"tls_ca_bundle": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, "body.config.tls_ca_bundle", "does not parse"},
		{map[string]any{"proxy": "ftp://user:hunter2@proxy.example.com"}, "body.config.proxy", "not supported"},
	}
	for _, tt := range tests {
		body, _ := json.Marshal(map[string]any{"url": "https://example.com/hook", "event_types": []string{"*"}, "config": tt.config})
		status, ctype, p := h.raw(adminKey, "POST", "/v1/tenants/acme/endpoints", string(body))
		if status != 422 || !strings.HasPrefix(ctype, "application/problem+json") {
			t.Errorf("%s: %d %s, want 422 problem+json", tt.location, status, ctype)
			continue
		}
		found := false
		for _, e := range p.Errors {
			if e.Location == tt.location && strings.Contains(e.Message, tt.message) {
				found = true
			}
			if strings.Contains(e.Message, "hunter2") || strings.Contains(e.Message, strings.Split(good.KeyPEM, "\n")[1]) {
				t.Errorf("%s: the problem shows a secret: %s", tt.location, e.Message)
			}
		}
		if !found {
			t.Errorf("problem %+v does not name %s with %q", p.Errors, tt.location, tt.message)
		}
	}
}

// The node's --egress-proxy carries deliveries (Herald asks it for the checked address); an
// endpoint may send directly ("none") or through its own proxy (here a SOCKS5 server); a proxy
// that fails is recorded as proxy_failed without its credentials.
func TestEgressProxy_EndToEnd(t *testing.T) {
	t.Parallel()
	tp := testproxy.StartTinyproxy(t, testproxy.TinyproxyOptions{})
	socks := testproxy.StartSOCKS5(t, "acme", "s0cks-pass")
	h := start(t, func(c *node.Config) { c.HTTPSend.Proxy = "http://" + tp.Addr })
	h.setup("acme", "invoice.paid")
	viaNode, direct, viaSocks := newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil)
	h.endpoint("acme", map[string]any{"url": viaNode.URL, "event_types": []string{"*"}})
	h.endpoint("acme", map[string]any{"url": direct.URL, "event_types": []string{"*"}, "config": map[string]any{"proxy": "none"}})
	var socksEP endpointWithCert
	h.must(201, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": viaSocks.URL, "event_types": []string{"*"},
		"config": map[string]any{"proxy": "socks5://acme:s0cks-pass@" + socks.Addr}}, &socksEP)
	if _, shown := socksEP.Config["proxy"]; shown || !slices.Equal(socksEP.ConfigSecrets, []string{"proxy"}) {
		t.Errorf("the proxy (a secret) is shown: config %v, config_secrets %v", socksEP.Config, socksEP.ConfigSecrets)
	}
	broken := h.endpoint("acme", map[string]any{"url": direct.URL + "/broken", "event_types": []string{"*"}, "retry_schedule": []int{0},
		"config": map[string]any{"proxy": "http://acme:pr0xy-pass@" + closedAddr(t)}})

	h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{"n": 1}})
	eventually(t, 15*time.Second, "deliveries", func() bool {
		return viaNode.count() == 1 && direct.count() == 1 && viaSocks.count() == 1
	})
	_, nodePort, _ := net.SplitHostPort(strings.TrimPrefix(viaNode.URL, "http://"))
	_, socksPort, _ := net.SplitHostPort(strings.TrimPrefix(viaSocks.URL, "http://"))
	if got, want := tp.Requests(t), []string{"CONNECT 127.0.0.1:" + nodePort + " HTTP/1.1"}; !slices.Equal(got, want) {
		t.Errorf("the node's proxy was asked %q, want %q (and nothing for the other endpoints)", got, want)
	}
	if got, want := socks.Destinations(), []string{"127.0.0.1:" + socksPort}; !slices.Equal(got, want) {
		t.Errorf("the endpoint's SOCKS5 proxy was asked for %q, want %q", got, want)
	}

	var attempts struct{ Data []attemptOut }
	eventually(t, 15*time.Second, "the broken proxy's attempt", func() bool { attempts.Data = attemptsOf(h, broken.ID); return len(attempts.Data) > 0 })
	if len(attempts.Data) == 0 || attempts.Data[0].ErrorKind != "proxy_failed" || !strings.Contains(attempts.Data[0].Error, "proxy http://127.0.0.1:") ||
		strings.Contains(attempts.Data[0].Error, "pr0xy-pass") {
		t.Fatalf("attempts %+v, want proxy_failed naming the proxy without its password", attempts.Data)
	}
}

// Without dev mode (loopback not allowed), an endpoint's own proxy on loopback is refused at
// every attempt, and the node's proxy (the operator's, on loopback) reaches no internal
// destination: the refusal comes before the proxy is asked.
func TestEgressProxy_GuardKeptThroughTheProxy(t *testing.T) {
	t.Parallel()
	tp := testproxy.StartTinyproxy(t, testproxy.TinyproxyOptions{})
	h := start(t, func(c *node.Config) {
		c.Dev = false
		c.HTTPSend.Proxy = "http://" + tp.Addr
		c.HTTPSend.DialHook = func(_ context.Context, _, address string) error {
			if address != tp.Addr {
				return fmt.Errorf("test: refusing to dial %s", address)
			}
			return nil
		}
	})
	h.setup("acme", "invoice.paid")
	ep := h.endpoint("acme", map[string]any{"url": "https://localhost.example.invalid:8443/hook", "event_types": []string{"*"},
		"retry_schedule": []int{0}, "config": map[string]any{"proxy": "http://" + tp.Addr}})
	h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{"n": 1}})
	var attempts struct{ Data []attemptOut }
	eventually(t, 15*time.Second, "the attempt", func() bool { attempts.Data = attemptsOf(h, ep.ID); return len(attempts.Data) > 0 })
	if len(attempts.Data) == 0 || attempts.Data[0].ErrorKind != "blocked_destination" || !strings.Contains(attempts.Data[0].Error, "loopback") {
		t.Fatalf("attempts %+v, want blocked_destination (the endpoint's proxy is on loopback)", attempts.Data)
	}
	// Internal literals are refused at registration even with the node's proxy.
	for _, u := range []string{"https://10.0.0.1/hook", "https://169.254.169.254/latest", "https://127.0.0.1:8443/hook"} {
		body, _ := json.Marshal(map[string]any{"url": u, "event_types": []string{"*"}})
		if status, _, _ := h.raw(adminKey, "POST", "/v1/tenants/acme/endpoints", string(body)); status != 422 {
			t.Errorf("%s: %d, want 422", u, status)
		}
	}
	if got := tp.Requests(t); len(got) != 0 {
		t.Errorf("tinyproxy was asked %q, want nothing", got)
	}
}

// attemptsOf lists the attempts to an endpoint of the tenant acme, newest first.
func attemptsOf(h *harness, endpointID string) []attemptOut {
	h.t.Helper()
	var page struct {
		Data []attemptOut `json:"data"`
	}
	h.must(200, "GET", "/v1/tenants/acme/attempts?endpoint_id="+endpointID, nil, &page)
	return page.Data
}

func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// An endpoint whose client certificate expires within 14 days is reported once as
// endpoint.certificate_expiring, however many checks run; one far from expiry is not.
func TestOps_CertificateExpiringReportedOnce(t *testing.T) {
	t.Parallel()
	h, opsRC := startOps(t, nil, func(c *node.Config) { c.CertificateCheck = 50 * time.Millisecond })
	h.setup("acme", "invoice.paid")
	ca := testcert.NewCA(t, "client CA")
	soon := ca.Client(t, "expiring", time.Now().Add(10*24*time.Hour))
	later := ca.Client(t, "fine", time.Now().Add(60*24*time.Hour))
	var ep endpointWithCert
	h.must(201, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": "https://example.com/a", "event_types": []string{"*"},
		"config": map[string]any{"tls_client_certificate": soon.CertPEM, "tls_client_key": soon.KeyPEM}}, nil)
	h.must(201, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": "https://example.com/b", "event_types": []string{"*"},
		"config": map[string]any{"tls_client_certificate": later.CertPEM, "tls_client_key": later.KeyPEM}}, &ep)

	eventually(t, 15*time.Second, ops.EndpointCertificateExpiring, func() bool {
		return len(opsRC.opsEvents(t, ops.EndpointCertificateExpiring)) > 0
	})
	time.Sleep(500 * time.Millisecond) // ten more checks
	evs := opsRC.opsEvents(t, ops.EndpointCertificateExpiring)
	if len(evs) != 1 {
		t.Fatalf("%d endpoint.certificate_expiring events, want 1", len(evs))
	}
	d := decodeData[ops.CertificateExpiringData](t, evs[0])
	if d.Tenant != "acme" || d.Endpoint == ep.ID || d.Subject != "CN=expiring,O=Herald tests" || d.DaysLeft < 9 || d.DaysLeft > 10 ||
		len(d.FingerprintSHA256) != 64 || evs[0].Resource.ID != d.Endpoint {
		t.Fatalf("data %+v", d)
	}
}
