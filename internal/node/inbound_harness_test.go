package node_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/inbound/verify"
	"github.com/heraldhq/herald/internal/store"
)

// newSource creates an enabled source through the store (the API's source routes are tested on
// their own) and returns it with its token.
func (h *harness) newSource(tenant string, vc verify.Config, mod func(*store.SourceSettings)) *store.Source {
	h.t.Helper()
	doc, err := json.Marshal(vc)
	if err != nil {
		h.t.Fatal(err)
	}
	now := time.Now().UTC()
	s := &store.Source{ID: "src_" + randomHex(8), TenantID: tenant, Name: string(vc.Scheme), Token: randomHex(24),
		Enabled: true, Settings: store.SourceSettings{Verification: doc}, CreatedAt: now, UpdatedAt: now}
	if mod != nil {
		mod(&s.Settings)
	}
	if err := h.node.Store.CreateSource(context.Background(), s); err != nil {
		h.t.Fatal(err)
	}
	return s
}

// updateSource writes a changed source and tells the node, as the API does.
func (h *harness) updateSource(s *store.Source) {
	h.t.Helper()
	s.UpdatedAt = time.Now().UTC()
	if err := h.node.Store.UpdateSource(context.Background(), s); err != nil {
		h.t.Fatal(err)
	}
	h.node.Inbound.SourceChanged(s.ID)
}

// on is the harness for a subtest: its failures are the subtest's.
func (h *harness) on(t *testing.T) *harness {
	return &harness{t: t, node: h.node, dir: h.dir, cfg: h.cfg}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ingestAnswer is a source's answer: a 2xx document or a problem.
type ingestAnswer struct {
	status int
	header http.Header
	raw    []byte

	ID string `json:"id"`
	// Status is the 2xx answer's status ("accepted", …); a problem's numeric status is not kept.
	Status      string          `json:"-"`
	RawStatus   json.RawMessage `json:"status"`
	EventID     string          `json:"event_id"`
	DuplicateOf string          `json:"duplicate_of"`
	Reason      string          `json:"reason"`
	Type        string          `json:"type"`
	Title       string          `json:"title"`
	Detail      string          `json:"detail"`
	Challenge   string          `json:"challenge"`
}

// ingest posts body to a source's URL (path is "/in/<token>" plus any query) with header.
func (h *harness) ingest(path string, header http.Header, body []byte) ingestAnswer {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.node.URL()+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	a := ingestAnswer{status: resp.StatusCode, header: resp.Header}
	if a.raw, err = io.ReadAll(resp.Body); err != nil {
		h.t.Fatal(err)
	}
	if len(a.raw) > 0 {
		if err := json.Unmarshal(a.raw, &a); err != nil {
			h.t.Fatalf("POST %s: answer %d is not JSON: %q", path, a.status, a.raw)
		}
		_ = json.Unmarshal(a.RawStatus, &a.Status)
	}
	return a
}

// mustIngest posts and checks the status.
func (h *harness) mustIngest(want int, path string, header http.Header, body []byte) ingestAnswer {
	h.t.Helper()
	a := h.ingest(path, header, body)
	if a.status != want {
		h.t.Fatalf("POST %s = %d, want %d: %s", path, a.status, want, a.raw)
	}
	return a
}

// received lists the stored requests of a source.
func (h *harness) receivedOf(tenant, sourceID string) []store.ReceivedRequest {
	h.t.Helper()
	rs, _, err := h.node.Store.ListReceived(context.Background(), store.ReceivedFilter{TenantID: tenant, SourceID: sourceID, Page: store.Page{Limit: store.MaxLimit}})
	if err != nil {
		h.t.Fatal(err)
	}
	return rs
}

// forwarded is an event as an endpoint got it.
type forwarded struct {
	ID     string          `json:"id"`
	Type   string          `json:"type"`
	Data   json.RawMessage `json:"data"`
	Source string          `json:"source"`
	// Inbound names the received request and the sender's own delivery id.
	Inbound struct {
		RequestID  string `json:"request_id"`
		ProviderID string `json:"provider_id"`
	} `json:"inbound"`
}

func (rc *receiver) events(t *testing.T) []forwarded {
	t.Helper()
	var out []forwarded
	for _, r := range rc.got() {
		var f forwarded
		if err := json.Unmarshal(r.body, &f); err != nil {
			t.Fatalf("endpoint got %q: %v", r.body, err)
		}
		out = append(out, f)
	}
	return out
}

// stays checks that cond holds for a while: that nothing more arrives.
func stays(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !cond() {
			t.Fatalf("%s no longer holds", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
