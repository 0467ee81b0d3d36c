package node_test

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/pgtest"
)

// onPostgres configures a node for PostgreSQL in a schema of its own, dropped at cleanup.
func onPostgres(t *testing.T) func(*node.Config) {
	t.Helper()
	url, schema := pgtest.Schema(t, "herald_node_")
	// Nodes sharing a database share its encryption key, as operators must configure them.
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return func(c *node.Config) {
		c.DatabaseURL, c.DatabaseSchema = url, schema
		c.Encryption.Key = base64.StdEncoding.EncodeToString(key)
	}
}

func TestPostgres_DeliversRetriesAndSurvivesRestart(t *testing.T) {
	t.Parallel()
	h := start(t, onPostgres(t))
	rc, setHealthy := newSwitchableReceiver(t, 503)
	h.setup("acme", "invoice.paid")
	ep := h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"invoice.*"}, "retry_schedule": []int{0, 1, 1, 1, 1}})
	var ids []string
	for i := range 10 {
		ids = append(ids, h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{"i": i}}).ID)
	}
	eventually(t, 10*time.Second, "first attempts", func() bool { return rc.count() >= 10 })
	// A restart on PostgreSQL keeps the leases of the run that stopped (other nodes may hold some),
	// releasing its own at shutdown; the deliveries resume.
	h.stop()
	setHealthy(true)
	h.boot()
	eventually(t, 15*time.Second, "every delivery", func() bool {
		return len(h.deliveries("/v1/tenants/acme/deliveries?state=succeeded")) == 10
	})
	wh, err := standardwebhooks.NewWebhook(ep.Secret)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range rc.got() {
		if err := wh.VerifyIgnoringTimestamp(r.body, r.header); err != nil {
			t.Fatalf("signature: %v", err)
		}
		seen[r.header.Get("webhook-id")] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Fatalf("event %s never arrived", id)
		}
	}
	// Dead letters and replay work the same way.
	setHealthy(false)
	h.must(200, "PATCH", "/v1/tenants/acme/endpoints/"+ep.ID, map[string]any{"retry_schedule": []int{0}}, nil)
	h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{}})
	eventually(t, 10*time.Second, "a dead letter", func() bool { return len(h.deliveries("/v1/tenants/acme/deliveries?state=dead")) == 1 })
	setHealthy(true)
	var replay struct {
		Queued int `json:"queued"`
	}
	h.must(202, "POST", "/v1/tenants/acme/replays", map[string]any{}, &replay)
	if replay.Queued != 1 {
		t.Fatalf("replay queued %d", replay.Queued)
	}
	eventually(t, 10*time.Second, "the replayed delivery", func() bool {
		return len(h.deliveries("/v1/tenants/acme/deliveries?state=succeeded")) == 11
	})
}

// Two nodes on one database share the work, and a publish on one wakes the other at once.
func TestPostgres_TwoNodesShareTheWork(t *testing.T) {
	t.Parallel()
	pg := onPostgres(t)
	a := start(t, pg)
	b := start(t, func(c *node.Config) { pg(c) })
	rc := newReceiver(t, nil)
	a.setup("acme", "invoice.paid")
	a.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}, "max_concurrency": 4})
	for i := range 200 {
		h := a
		if i%2 == 1 {
			h = b
		}
		h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{"i": i}})
	}
	eventually(t, 20*time.Second, "200 deliveries", func() bool { return rc.count() >= 200 })
	seen := map[string]int{}
	for _, r := range rc.got() {
		seen[r.header.Get("webhook-id")]++
	}
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	if len(seen) != 200 {
		t.Fatalf("%d distinct events arrived, want 200", len(seen))
	}
	if dups != 0 {
		t.Fatalf("%d duplicates without any crash: two nodes sent the same delivery", dups)
	}
}

// An endpoint's concurrency limit holds across the cluster, not per node: both nodes have work
// for the endpoint, yet the receiver never sees more requests at once than max_concurrency. The
// leases are far shorter than the time deliveries wait in a lane's queue, so they live only by
// being renewed: without renewal the other node would take queued deliveries over and send
// duplicates.
func TestPostgres_ClusterWideConcurrencyAndRenewedLeases(t *testing.T) {
	t.Parallel()
	pg := onPostgres(t)
	short := func(c *node.Config) {
		pg(c)
		c.Dispatch.LeaseMargin = 300 * time.Millisecond // renewed every 100 ms
	}
	a := start(t, short)
	b := start(t, short)
	var now, peak atomic.Int32
	rc := newReceiver(t, func(int, *http.Request) int {
		n := now.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(250 * time.Millisecond)
		now.Add(-1)
		return 200
	})
	a.setup("acme", "invoice.paid")
	// A lease is the timeout (1 s) + 300 ms; at two at a time, 250 ms each, the last of a queue of
	// 12 waits 1.5 s before it starts.
	a.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}, "max_concurrency": 2, "timeout_seconds": 1})
	const events = 30
	for i := range events {
		h := a
		if i%2 == 1 {
			h = b
		}
		h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{"i": i}})
	}
	eventually(t, 30*time.Second, "every event", func() bool {
		seen := map[string]bool{}
		for _, r := range rc.got() {
			seen[r.header.Get("webhook-id")] = true
		}
		return len(seen) == events
	})
	time.Sleep(2 * time.Second) // room for a duplicate to show up
	if got := rc.count(); got != events {
		t.Fatalf("the receiver got %d requests for %d events: leases ran out while deliveries were queued", got, events)
	}
	if p := peak.Load(); p > 2 {
		t.Fatalf("the receiver saw %d requests at once; max_concurrency is 2 across the cluster", p)
	}
}
