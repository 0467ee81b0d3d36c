package node_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/inbound"
	"github.com/heraldhq/herald/internal/inbound/schema"
	"github.com/heraldhq/herald/internal/inbound/verify"
	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/store"
)

func TestInbound_Behaviour(t *testing.T) {
	t.Parallel()
	inboundBehaviour(t, nil)
}

func TestInbound_BehaviourOnPostgres(t *testing.T) {
	t.Parallel()
	inboundBehaviour(t, onPostgres(t))
}

var noVerification = verify.Config{Scheme: verify.SchemeNone}

func inboundBehaviour(t *testing.T, mod func(*node.Config)) {
	h := start(t, mod)
	json1 := http.Header{"Content-Type": {"application/json"}}

	t.Run("unknown token and disabled source answer the same 404", func(t *testing.T) {
		t.Parallel()
		h := h.on(t)
		h.setup("in_404")
		src := h.newSource("in_404", noVerification, nil)
		h.mustIngest(200, "/in/"+src.Token, json1, []byte(`{}`))
		src.Enabled = false
		h.updateSource(src)
		disabled := h.ingest("/in/"+src.Token, json1, []byte(`{}`))
		unknown := h.ingest("/in/"+randomHex(24), json1, []byte(`{}`))
		empty := h.ingest("/in/", json1, []byte(`{}`))
		for _, a := range []ingestAnswer{disabled, unknown, empty} {
			if a.status != 404 || !bytes.Equal(a.raw, disabled.raw) || a.header.Get("Content-Type") != "application/problem+json" ||
				a.header.Get("Content-Length") != disabled.header.Get("Content-Length") {
				t.Errorf("answers differ: %d %s / %d %s", a.status, a.raw, disabled.status, disabled.raw)
			}
		}
		if got := len(h.receivedOf("in_404", src.ID)); got != 1 {
			t.Errorf("%d requests stored; a 404 stores nothing", got)
		}
		src.Enabled = true
		h.updateSource(src)
		h.mustIngest(200, "/in/"+src.Token, json1, []byte(`{}`))

		req, _ := http.NewRequest(http.MethodGet, h.node.URL()+"/in/"+src.Token, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != "OPTIONS, POST, PUT, PATCH" {
			t.Errorf("GET = %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})

	t.Run("IP allowlist", func(t *testing.T) {
		t.Parallel()
		h := h.on(t)
		h.setup("in_ip")
		elsewhere := h.newSource("in_ip", noVerification, func(s *store.SourceSettings) { s.AllowIPs = []string{"192.0.2.0/24"} })
		// X-Forwarded-For is anyone's to send: never believed.
		a := h.ingest("/in/"+elsewhere.Token, http.Header{"X-Forwarded-For": {"192.0.2.1"}, "X-Real-Ip": {"192.0.2.1"}}, []byte(`{}`))
		if a.status != 403 || a.Reason != "ip_not_allowed" {
			t.Errorf("from outside the allowlist: %d %s", a.status, a.raw)
		}
		if n := len(h.receivedOf("in_ip", elsewhere.ID)); n != 0 {
			t.Errorf("%d requests stored; a 403 stores nothing", n)
		}
		here := h.newSource("in_ip", noVerification, func(s *store.SourceSettings) { s.AllowIPs = []string{"10.0.0.0/8", "127.0.0.1/32"} })
		h.mustIngest(200, "/in/"+here.Token, json1, []byte(`{}`))
	})

	t.Run("rate limit", func(t *testing.T) {
		t.Parallel()
		h := h.on(t)
		h.setup("in_rate")
		src := h.newSource("in_rate", noVerification, func(s *store.SourceSettings) { s.RateLimit, s.RateBurst = 0.5, 2 })
		h.mustIngest(200, "/in/"+src.Token, json1, []byte(`{}`))
		h.mustIngest(200, "/in/"+src.Token, json1, []byte(`{}`))
		a := h.ingest("/in/"+src.Token, json1, []byte(`{}`))
		secs, _ := strconv.Atoi(a.header.Get("Retry-After"))
		if a.status != 429 || a.Reason != "rate_limited" || secs < 1 || secs > 2 {
			t.Errorf("over the limit: %d Retry-After %q %s", a.status, a.header.Get("Retry-After"), a.raw)
		}
		if n := len(h.receivedOf("in_rate", src.ID)); n != 2 {
			t.Errorf("%d requests stored, want the 2 accepted", n)
		}
	})

	t.Run("body size", func(t *testing.T) {
		t.Parallel()
		h := h.on(t)
		h.setup("in_size")
		src := h.newSource("in_size", noVerification, func(s *store.SourceSettings) { s.MaxBodyBytes = 100 })
		at := []byte(`"` + strings.Repeat("a", 98) + `"`)
		h.mustIngest(200, "/in/"+src.Token, json1, at)
		over := append(at, ' ')
		if a := h.ingest("/in/"+src.Token, json1, over); a.status != 413 || a.Reason != "body_too_large" {
			t.Errorf("over the limit: %d %s", a.status, a.raw)
		}
		// Without a Content-Length (chunked), reading finds out.
		req, _ := http.NewRequest(http.MethodPost, h.node.URL()+"/in/"+src.Token, io.MultiReader(bytes.NewReader(over)))
		req.ContentLength = -1
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("chunked over the limit: %d", resp.StatusCode)
		}
		if n := len(h.receivedOf("in_size", src.ID)); n != 1 {
			t.Errorf("%d requests stored; a 413 stores nothing", n)
		}
	})

	t.Run("schema quarantine, then replay after fixing the schema", func(t *testing.T) {
		t.Parallel()
		h := h.on(t)
		h.setup("in_schema")
		rc := newReceiver(t, nil)
		h.endpoint("in_schema", map[string]any{"url": rc.URL, "event_types": []string{"*"}})
		strict := json.RawMessage(`{"type":"object","required":["amount"],"properties":{"amount":{"type":"number"}}}`)
		src := h.newSource("in_schema", noVerification, func(s *store.SourceSettings) {
			s.Schema = strict
			s.Dedup = store.Dedup{By: store.DedupJSONPath, Path: "id"}
		})
		body := []byte(`{"id":"o1","amount":"12.50"}`)
		a := h.mustIngest(202, "/in/"+src.Token, json1, body)
		if a.Status != "quarantined" || !strings.HasPrefix(a.Reason, "schema: ") || !strings.Contains(a.Reason, "/amount") {
			t.Errorf("quarantine answer %s", a.raw)
		}
		// A quarantined request holds its dedup key too: the sender's retry is a duplicate.
		if d := h.mustIngest(200, "/in/"+src.Token, json1, body); d.Status != "duplicate" || d.DuplicateOf != a.ID {
			t.Errorf("retry of a quarantined request: %s", d.raw)
		}
		stays(t, 300*time.Millisecond, "nothing forwarded", func() bool { return rc.count() == 0 })

		ctx := context.Background()
		_, err := h.node.Inbound.Replay(ctx, "in_schema", a.ID, false)
		if _, ok := errors.AsType[*schema.Violation](err); !ok {
			t.Fatalf("replay against the same schema: %v, want a violation", err)
		}
		src.Settings.Schema = json.RawMessage(`{"type":"object","required":["amount"]}`)
		h.updateSource(src)
		res, err := h.node.Inbound.Replay(ctx, "in_schema", a.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Accepted || res.Deliveries != 1 || res.RequestID != a.ID || !strings.HasPrefix(res.EventID, "evt_") {
			t.Errorf("replay result %+v", res)
		}
		eventually(t, 10*time.Second, "the accepted event", func() bool { return rc.count() == 1 })
		if ev := rc.events(t)[0]; ev.ID != res.EventID || ev.Type != "webhook.received" || string(ev.Data) != string(body) {
			t.Errorf("forwarded %+v", ev)
		}
		rr, err := h.node.Store.GetReceived(ctx, "in_schema", a.ID)
		if err != nil || rr.Status != store.ReceiveAccepted || rr.EventID != res.EventID {
			t.Errorf("stored after replay: %+v, %v", rr, err)
		}

		// Force skips the schema.
		b := h.mustIngest(202, "/in/"+src.Token, json1, []byte(`{"id":"o2"}`))
		res, err = h.node.Inbound.Replay(ctx, "in_schema", b.ID, true)
		if err != nil || !res.Accepted {
			t.Fatalf("forced replay: %+v, %v", res, err)
		}
		eventually(t, 10*time.Second, "the forced event", func() bool { return rc.count() == 2 })
	})

	t.Run("replay of accepted, duplicate and rejected requests", func(t *testing.T) {
		t.Parallel()
		h := h.on(t)
		h.setup("in_replay")
		rc := newReceiver(t, nil)
		h.endpoint("in_replay", map[string]any{"url": rc.URL, "event_types": []string{"orders.*"}})
		h.endpoint("in_replay", map[string]any{"url": rc.URL, "event_types": []string{"invoices.*"}}) // not subscribed
		src := h.newSource("in_replay", verify.Config{Scheme: verify.SchemeBearer, Secrets: []string{"tok_" + randomHex(8)}}, func(s *store.SourceSettings) {
			s.DefaultEventType = "orders.created"
			s.Dedup = store.Dedup{By: store.DedupBodyHash}
		})
		vc := src.Settings.Verification
		var cfg verify.Config
		_ = json.Unmarshal(vc, &cfg)
		auth := http.Header{"Authorization": {"Bearer " + cfg.Secrets[0]}, "Content-Type": {"application/json"}}
		first := h.mustIngest(200, "/in/"+src.Token, auth, []byte(`{"n":1}`))
		dup := h.mustIngest(200, "/in/"+src.Token, auth, []byte(`{"n":1}`))
		if dup.Status != "duplicate" {
			t.Fatalf("same body with body_hash dedup: %s", dup.raw)
		}
		eventually(t, 10*time.Second, "the event", func() bool { return rc.count() == 1 })
		// A resend while the attempt's result is being recorded is overwritten by that result
		// (the store's Resend does not wait for the lease): replay once it is recorded.
		settled := func(attempts int) {
			t.Helper()
			eventually(t, 10*time.Second, "the delivery recorded", func() bool {
				ds := h.deliveries("/v1/tenants/in_replay/deliveries?state=succeeded")
				return len(ds) == 1 && ds[0].AttemptCount == attempts
			})
		}
		settled(1)
		ctx := context.Background()
		res, err := h.node.Inbound.Replay(ctx, "in_replay", first.ID, false)
		if err != nil || res.Deliveries != 1 || res.EventID != first.EventID || res.Accepted {
			t.Fatalf("replay accepted: %+v, %v", res, err)
		}
		eventually(t, 10*time.Second, "the replayed event", func() bool { return rc.count() == 2 })
		settled(2)
		res, err = h.node.Inbound.Replay(ctx, "in_replay", dup.ID, false)
		if err != nil || res.RequestID != first.ID || res.EventID != first.EventID {
			t.Fatalf("replay duplicate: %+v, %v", res, err)
		}
		eventually(t, 10*time.Second, "the third copy", func() bool { return rc.count() == 3 })
		for _, ev := range rc.events(t) {
			if ev.ID != first.EventID || ev.Type != "orders.created" {
				t.Errorf("forwarded %+v", ev)
			}
		}

		// A rejected request: stored with its reason, credentials redacted, body capped.
		big := []byte(`{"pad":"` + strings.Repeat("x", 20<<10) + `"}`)
		bad := h.ingest("/in/"+src.Token, http.Header{"Authorization": {"Bearer wrong"}, "Cookie": {"session=s3cret"}}, big)
		if bad.status != 401 || bad.Reason != "bad_signature" || strings.Contains(string(bad.raw), "wrong") {
			t.Errorf("wrong token: %d %s", bad.status, bad.raw)
		}
		var rejected *store.ReceivedRequest
		for _, r := range h.receivedOf("in_replay", src.ID) {
			if r.Status == store.ReceiveRejected {
				rejected = &r
			}
		}
		if rejected == nil {
			t.Fatal("the rejected request was not stored")
		}
		if rejected.BodySize != inbound.MaxRejectedBody || !strings.HasPrefix(rejected.Reason, "bad_signature: ") ||
			rejected.Headers.Get("Authorization") != inbound.Redacted || rejected.Headers.Get("Cookie") != inbound.Redacted ||
			rejected.Method != "POST" || !strings.HasPrefix(rejected.RemoteAddr, "127.0.0.1:") {
			t.Errorf("stored rejection: body %d bytes, reason %q, headers %v, method %s, remote %s", rejected.BodySize, rejected.Reason,
				rejected.Headers, rejected.Method, rejected.RemoteAddr)
		}
		if _, err := h.node.Inbound.Replay(ctx, "in_replay", rejected.ID, true); !errors.Is(err, inbound.ErrNotReplayable) {
			t.Errorf("replay of a rejected request: %v", err)
		}
		if _, err := h.node.Inbound.Replay(ctx, "other_tenant", first.ID, false); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("replay from another tenant: %v", err)
		}
		stays(t, 300*time.Millisecond, "three copies", func() bool { return rc.count() == 3 })
	})

	t.Run("Slack url_verification", func(t *testing.T) {
		t.Parallel()
		h := h.on(t)
		h.setup("in_slack")
		secret := randomHex(16)
		src := h.newSource("in_slack", verify.Config{Scheme: verify.SchemeSlack, Secrets: []string{secret}}, nil)
		body := []byte(`{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`)
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		sig := "v0=" + hex.EncodeToString(sha256Mac([]byte(secret), []byte("v0:"+ts+":"+string(body))))
		a := h.mustIngest(200, "/in/"+src.Token, http.Header{"X-Slack-Signature": {sig}, "X-Slack-Request-Timestamp": {ts}, "Content-Type": {"application/json"}}, body)
		if a.Challenge != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" || a.ID != "" {
			t.Errorf("challenge answer %s", a.raw)
		}
		if n := len(h.receivedOf("in_slack", src.ID)); n != 0 {
			t.Errorf("%d requests stored; a challenge stores nothing", n)
		}
		// Unsigned, it is refused like anything else.
		if a := h.ingest("/in/"+src.Token, json1, body); a.status != 401 || a.Challenge != "" {
			t.Errorf("unsigned challenge: %d %s", a.status, a.raw)
		}
	})

	t.Run("form and text bodies", func(t *testing.T) {
		t.Parallel()
		h := h.on(t)
		h.setup("in_forms")
		rc := newReceiver(t, nil)
		h.endpoint("in_forms", map[string]any{"url": rc.URL, "event_types": []string{"*"}})
		src := h.newSource("in_forms", noVerification, nil)
		h.mustIngest(200, "/in/"+src.Token, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, []byte("a=1&b=x&b=y"))
		eventually(t, 10*time.Second, "the form event", func() bool { return rc.count() == 1 })
		h.mustIngest(200, "/in/"+src.Token, http.Header{"Content-Type": {"text/plain"}}, []byte("ping <3"))
		eventually(t, 10*time.Second, "the text event", func() bool { return rc.count() == 2 })
		got := map[string]bool{}
		for _, ev := range rc.events(t) {
			got[string(ev.Data)] = true
		}
		for _, want := range []string{`{"a":"1","b":["x","y"]}`, `{"body":"ping <3","content_type":"text/plain"}`} {
			if !got[want] {
				t.Errorf("no event with data %s: %v", want, got)
			}
		}
	})

	t.Run("concurrent repeats: one accepted, one event", func(t *testing.T) {
		t.Parallel()
		h := h.on(t)
		h.setup("in_race")
		rc := newReceiver(t, nil)
		h.endpoint("in_race", map[string]any{"url": rc.URL, "event_types": []string{"*"}})
		src := h.newSource("in_race", noVerification, func(s *store.SourceSettings) {
			s.Dedup = store.Dedup{By: store.DedupHeader, Header: "X-Delivery", WindowSeconds: 3600}
		})
		hdr := http.Header{"X-Delivery": {"d-" + randomHex(4)}, "Content-Type": {"application/json"}}
		const n = 12
		answers := make(chan ingestAnswer, n)
		for range n {
			go func() { answers <- h.ingest("/in/"+src.Token, hdr, []byte(`{"same":true}`)) }()
		}
		counts := map[string]int{}
		for range n {
			a := <-answers
			if a.status != 200 {
				t.Errorf("answer %d %s", a.status, a.raw)
			}
			counts[a.Status]++
		}
		if counts["accepted"] != 1 || counts["duplicate"] != n-1 {
			t.Errorf("answers %v, want 1 accepted and %d duplicates", counts, n-1)
		}
		eventually(t, 10*time.Second, "the event", func() bool { return rc.count() == 1 })
		stays(t, 300*time.Millisecond, "one event", func() bool { return rc.count() == 1 })
	})

	t.Run("a source whose settings do not compile answers 500", func(t *testing.T) {
		t.Parallel()
		h := h.on(t)
		h.setup("in_broken")
		src := h.newSource("in_broken", verify.Config{Scheme: "bogus"}, nil)
		if a := h.ingest("/in/"+src.Token, json1, []byte(`{}`)); a.status != 500 || a.Reason != "source_misconfigured" {
			t.Errorf("broken source: %d %s", a.status, a.raw)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		t.Parallel()
		h := h.on(t)
		h.setup("in_metrics")
		src := h.newSource("in_metrics", verify.Config{Scheme: verify.SchemeBearer, Secrets: []string{"right-token"}}, nil)
		h.mustIngest(200, "/in/"+src.Token, http.Header{"Authorization": {"Bearer right-token"}}, []byte(`{}`))
		h.mustIngest(401, "/in/"+src.Token, http.Header{"Authorization": {"Bearer wrong-token"}}, []byte(`{}`))
		h.mustIngest(401, "/in/"+src.Token, nil, []byte(`{}`))
		mfs := h.scrape()
		for outcome, want := range map[string]float64{"accepted": 1, "rejected_signature": 2} {
			if got := value(mfs, "herald_inbound_requests_total", map[string]string{"tenant": "in_metrics", "outcome": outcome}); got != want {
				t.Errorf("%s = %v, want %v", outcome, got, want)
			}
		}
		if got := value(mfs, "herald_inbound_ack_duration_seconds", map[string]string{"tenant": "in_metrics"}); got != 3 {
			t.Errorf("ack latency samples = %v, want 3", got)
		}
	})
}

// TestInbound_StoreFailureIsTheOnly5xx closes the store under a running node: a genuine request
// that cannot be committed, and a token that cannot be looked up, get 503 with Retry-After (so the
// sender retries), never a 404 that says the source does not exist; a forged one still gets 401.
func TestInbound_StoreFailureIsTheOnly5xx(t *testing.T) {
	t.Parallel()
	storeFailureIsTheOnly5xx(t, nil)
}

func TestInbound_StoreFailureIsTheOnly5xxOnPostgres(t *testing.T) {
	t.Parallel()
	storeFailureIsTheOnly5xx(t, onPostgres(t))
}

func storeFailureIsTheOnly5xx(t *testing.T, mod func(*node.Config)) {
	h := start(t, mod)
	h.setup("in_down")
	src := h.newSource("in_down", verify.Config{Scheme: verify.SchemeBearer, Secrets: []string{"right-token"}}, nil)
	uncached := h.newSource("in_down", verify.Config{Scheme: verify.SchemeBearer, Secrets: []string{"right-token"}}, nil)
	good := http.Header{"Authorization": {"Bearer right-token"}}
	h.mustIngest(200, "/in/"+src.Token, good, []byte(`{"n":1}`)) // the source is now cached
	if err := h.node.Store.Close(); err != nil {
		t.Fatal(err)
	}
	for name, token := range map[string]string{"commit": src.Token, "look up a source": uncached.Token, "look up an unknown token": randomHex(24)} {
		a := h.ingest("/in/"+token, good, []byte(`{"n":2}`))
		if a.status != 503 || a.Reason != "store_unavailable" || a.header.Get("Retry-After") != "5" {
			t.Errorf("%s with the store closed: %d Retry-After %q %s, want 503 with Retry-After", name, a.status, a.header.Get("Retry-After"), a.raw)
		}
		if a.header.Get("Content-Type") != "application/problem+json" || strings.Contains(string(a.raw), "sql") || strings.Contains(string(a.raw), "pool") {
			t.Errorf("%s: 5xx answer %s", name, a.raw)
		}
	}
	if a := h.ingest("/in/"+src.Token, http.Header{"Authorization": {"Bearer forged"}}, []byte(`{}`)); a.status != 401 {
		t.Errorf("a forged request while the store is down: %d, want 401", a.status)
	}
	if a := h.ingest("/in/"+src.Token, good, bytes.Repeat([]byte("x"), 2<<20)); a.status != 413 {
		t.Errorf("too large while the store is down: %d, want 413", a.status)
	}
	// The store is closed already: shut the rest down without reporting the second close.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = h.node.Close(ctx)
	h.node = nil
}
