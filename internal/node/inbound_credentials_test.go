package node_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/inbound"
	"github.com/heraldhq/herald/internal/inbound/verify"
	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/store"
)

// credentialCase is a source whose sender puts a credential (or a signature made with the
// source's secret) in a header: a genuine request and a rejected one, and the values neither may
// leave behind.
type credentialCase struct {
	name    string
	vc      verify.Config
	header  string
	good    func(body []byte) string // the header's value of a genuine request
	bad     string                   // the header's value of a rejected one
	secrets []string                 // what must never be stored or shown
	// badHeader, when set, is where the rejected request carries bad instead of header, and
	// query is added to its URL: a sender that puts the credential where the source does not
	// read it.
	badHeader, query string
}

func credentialCases() []credentialCase {
	gitlab, wrong := "glpat-"+randomHex(16), "glpat-"+randomHex(16)
	bearer, wrongBearer := randomHex(20), randomHex(20)
	basicPass, wrongPass := randomHex(12), randomHex(12)
	hmacKey := randomHex(16)
	misplaced := randomHex(20)
	basic := func(pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte("hooks:"+pass))
	}
	sig := func(body []byte) string {
		m := hmac.New(sha256.New, []byte(hmacKey))
		m.Write(body)
		return "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	forged := "sha256=" + strings.Repeat("ab", 32)
	return []credentialCase{
		{name: "bearer in X-Gitlab-Token", header: "X-Gitlab-Token",
			vc:   verify.Config{Scheme: verify.SchemeBearer, Secrets: []string{gitlab}, Header: "X-Gitlab-Token"},
			good: func([]byte) string { return gitlab }, bad: wrong, secrets: []string{gitlab, wrong}},
		{name: "bearer in Authorization", header: "Authorization",
			vc:   verify.Config{Scheme: verify.SchemeBearer, Secrets: []string{bearer}},
			good: func([]byte) string { return "Bearer " + bearer }, bad: "Bearer " + wrongBearer, secrets: []string{bearer, wrongBearer}},
		{name: "basic", header: "Authorization",
			vc:   verify.Config{Scheme: verify.SchemeBasic, Secrets: []string{"hooks:" + basicPass}},
			good: func([]byte) string { return basic(basicPass) }, bad: basic(wrongPass),
			secrets: []string{basicPass, wrongPass, basic(basicPass)[6:], basic(wrongPass)[6:]}},
		{name: "hmac in a custom header", header: "X-Acme-Signature",
			vc:   verify.Config{Scheme: verify.SchemeHMAC, Secrets: []string{hmacKey}, Header: "X-Acme-Signature", Prefix: "sha256="},
			good: sig, bad: forged, secrets: []string{hmacKey, strings.TrimPrefix(forged, "sha256=")}},
		{name: "bearer token sent in another header and the query", header: "Authorization",
			vc:   verify.Config{Scheme: verify.SchemeBearer, Secrets: []string{misplaced}},
			good: func([]byte) string { return "Bearer " + misplaced }, badHeader: "X-Gitlab-Token", bad: misplaced,
			query: "?private_token=" + misplaced, secrets: []string{misplaced}},
	}
}

func TestInbound_CredentialHeadersAreNeverStored(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	h := start(t, func(c *node.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	// The SQLite files with their write-ahead log, and the debug log.
	credentialHeadersAreNeverStored(t, h, func(t *testing.T, tenant string) []byte {
		return append(dataFiles(t, h.dir), logs.String()...)
	})
}

func TestInbound_CredentialHeadersAreNeverStoredOnPostgres(t *testing.T) {
	t.Parallel()
	url, schema := pgtest.Schema(t, "herald_node_")
	mod := onPostgres(t)
	h := start(t, func(c *node.Config) { mod(c); c.DatabaseURL, c.DatabaseSchema = url, schema })
	credentialHeadersAreNeverStored(t, h, func(t *testing.T, tenant string) []byte {
		// The rows as the table holds them, read past the store.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, "SELECT headers::text, path, query, coalesce(dedup_key, ''), reason FROM "+
			pgx.Identifier{schema, "received_requests"}.Sanitize()+" WHERE tenant_id = $1", tenant)
		if err != nil {
			t.Fatal(err)
		}
		var all []byte
		n := 0
		for rows.Next() {
			var hdr, path, query, key, reason string
			if err := rows.Scan(&hdr, &path, &query, &key, &reason); err != nil {
				t.Fatal(err)
			}
			all = append(all, hdr+path+query+key+reason...)
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Fatalf("%d rows of %s in received_requests, want 2", n, tenant)
		}
		return all
	})
}

// credentialHeadersAreNeverStored sends, for each scheme that reads a credential or a signature
// from a header, a genuine request and a rejected one, and looks for the header's values in the
// stored rows (raw: the SQLite files with their write-ahead log, or PostgreSQL's table), in what
// the API shows a tenant key and a portal link, and in the ingest answers.
func credentialHeadersAreNeverStored(t *testing.T, h *harness, raw func(t *testing.T, tenant string) []byte) {
	for i, c := range credentialCases() {
		t.Run(c.name, func(t *testing.T) {
			h := h.on(t)
			tenant := "in_cred" + string(rune('a'+i))
			h.setup(tenant)
			src := h.newSource(tenant, c.vc, nil)
			body := []byte(`{"object_kind":"push","ref":"refs/heads/main"}`)
			json1 := http.Header{"Content-Type": {"application/json"}}
			badHeader := c.header
			if c.badHeader != "" {
				badHeader = c.badHeader
			}
			good, bad := json1.Clone(), json1.Clone()
			good.Set(c.header, c.good(body))
			bad.Set(badHeader, c.bad)
			secrets := append([]string{c.good(body), c.bad}, c.secrets...)
			answers := [][]byte{
				h.mustIngest(200, "/in/"+src.Token, good, body).raw,
				h.mustIngest(401, "/in/"+src.Token+c.query, bad, body).raw,
			}

			stored := h.receivedOf(tenant, src.ID)
			if len(stored) != 2 {
				t.Fatalf("%d requests stored, want the accepted and the rejected one", len(stored))
			}
			for _, r := range stored {
				name := c.header
				if r.Status == store.ReceiveRejected {
					name = badHeader
				}
				if got := r.Headers.Get(name); got != inbound.Redacted {
					t.Errorf("%s request: %s stored as %q, want %s", r.Status, name, got, inbound.Redacted)
				}
			}

			var key struct {
				Key string `json:"key"`
			}
			h.must(201, "POST", "/v1/api-keys", map[string]any{"role": "tenant", "tenant_id": tenant}, &key)
			var link struct {
				URL string `json:"url"`
			}
			h.must(201, "POST", "/v1/tenants/"+tenant+"/portal-links", map[string]any{"expires_in_seconds": 600}, &link)
			_, portal, ok := strings.Cut(link.URL, "#portal=")
			if !ok {
				t.Fatalf("portal link %q", link.URL)
			}
			for _, cred := range []string{key.Key, portal} {
				var list json.RawMessage
				if st := h.callAs(cred, "GET", "/v1/tenants/"+tenant+"/received-requests?source_id="+src.ID, nil, &list); st != 200 {
					t.Fatalf("list: %d %s", st, list)
				}
				answers = append(answers, list)
				for _, r := range stored {
					var one json.RawMessage
					if st := h.callAs(cred, "GET", "/v1/tenants/"+tenant+"/received-requests/"+r.ID, nil, &one); st != 200 {
						t.Fatalf("get %s: %d %s", r.ID, st, one)
					}
					if !bytes.Contains(one, []byte(inbound.Redacted)) {
						t.Errorf("%s as the API shows it: %s, want %s redacted", r.ID, one, c.header)
					}
					answers = append(answers, one)
				}
			}

			files := raw(t, tenant)
			for _, s := range secrets {
				if bytes.Contains(files, []byte(s)) {
					t.Errorf("the stored rows (or the log) hold %q", s)
				}
				for _, a := range answers {
					if bytes.Contains(a, []byte(s)) {
						t.Errorf("an answer shows %q: %s", s, a)
					}
				}
			}
		})
	}
}
