package node_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/inbound"
	"github.com/heraldhq/herald/internal/inbound/verify"
	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/store"
)

func TestInbound_PublicURLIsChecked(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"hooks.example.com", "ftp://hooks.example.com", "https://u:p@hooks.example.com", "https://hooks.example.com/?a=1", "https://"} {
		_, err := node.Start(context.Background(), node.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Dev: true, PublicURL: bad})
		if err == nil || !strings.Contains(err.Error(), "public URL") {
			t.Errorf("PublicURL %q: %v", bad, err)
		}
	}
	h := start(t, func(c *node.Config) { c.PublicURL = "https://hooks.example.com/herald/" })
	h.setup("pub")
	src := h.newSource("pub", noVerification, nil)
	h.mustIngest(200, "/in/"+src.Token, nil, []byte(`{}`))
}

// TestInbound_ChangesOnOneNodeApplyOnAnother runs two nodes on one PostgreSQL database: a source
// disabled through one stops being accepted by the other within the cache's lifetime.
func TestInbound_ChangesOnOneNodeApplyOnAnother(t *testing.T) {
	t.Parallel()
	pg := onPostgres(t)
	a := start(t, pg)
	b := start(t, func(c *node.Config) {
		c.DatabaseURL, c.DatabaseSchema, c.Encryption = a.cfg.DatabaseURL, a.cfg.DatabaseSchema, a.cfg.Encryption
	})
	a.setup("shared")
	src := a.newSource("shared", noVerification, nil)
	hdr := http.Header{"Content-Type": {"application/json"}}
	a.mustIngest(200, "/in/"+src.Token, hdr, []byte(`{}`))
	b.mustIngest(200, "/in/"+src.Token, hdr, []byte(`{}`)) // b caches it
	cached := time.Now()                                   // b's entry expires by cached + its TTL
	src.Enabled = false
	a.updateSource(src) // tells a at once; b learns within its cache's TTL
	a.mustIngest(404, "/in/"+src.Token, hdr, []byte(`{}`))
	// Any request b gets once the TTL has run out must see the change, however slowly this
	// machine runs: the cache's expiry is a limit Herald keeps, not a speed.
	time.Sleep(time.Until(cached.Add(inbound.DefaultCacheTTL)))
	b.mustIngest(404, "/in/"+src.Token, hdr, []byte(`{}`))
}

func TestInbound_ServedWithMetricsOff(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *node.Config) { c.NoMetrics = true })
	h.setup("nometrics")
	src := h.newSource("nometrics", noVerification, nil)
	h.mustIngest(200, "/in/"+src.Token, nil, []byte(`{}`))
	h.mustIngest(404, "/in/"+randomHex(24), nil, []byte(`{}`))
	resp, err := http.Get(h.node.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 200 {
		t.Error("/metrics served with metrics off")
	}
}

// TestInbound_NoSecretsInLogsOrAnswers receives genuine, forged and refused requests with debug
// logging on: neither the logs nor the answers contain the source's token, its secret, the
// signature sent or the body.
func TestInbound_NoSecretsInLogsOrAnswers(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	h := start(t, func(c *node.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	h.setup("hyg")
	secret := "gh-secret-" + randomHex(8)
	src := h.newSource("hyg", verify.Config{Scheme: verify.SchemeGitHub, Secrets: []string{secret}}, func(s *store.SourceSettings) {
		s.MaxBodyBytes = 200
	})
	body := []byte(`{"action":"opened","private":"body-secret-` + randomHex(4) + `"}`)
	sig := "sha256=" + hex.EncodeToString(sha256Mac([]byte(secret), body))
	forged := "sha256=" + hex.EncodeToString(sha256Mac([]byte("other"), body))
	hdr := func(sig string) http.Header {
		return http.Header{"X-Hub-Signature-256": {sig}, "X-Github-Event": {"pull_request"}, "X-Github-Delivery": {randomHex(8)},
			"Authorization": {"Basic c2VjcmV0LWNyZWRz"}}
	}
	var answers []string
	for _, a := range []ingestAnswer{
		h.ingest("/in/"+src.Token, hdr(sig), body),
		h.ingest("/in/"+src.Token, hdr(forged), body),
		h.ingest("/in/"+src.Token, hdr("sha256=zz"), body),
		h.ingest("/in/"+src.Token, hdr(sig), bytes.Repeat(body, 10)),
		h.ingest("/in/"+src.Token+"x", hdr(sig), body),
	} {
		answers = append(answers, string(a.raw))
	}
	all := logs.String() + strings.Join(answers, "\n")
	for _, secretish := range []string{src.Token, secret, sig[7:], forged[7:], "body-secret", "c2VjcmV0LWNyZWRz"} {
		if strings.Contains(all, secretish) {
			t.Errorf("%q leaked into the logs or answers", secretish)
		}
	}
	if !strings.Contains(logs.String(), "inbound: rejected") {
		t.Error("rejections are not logged")
	}
}
