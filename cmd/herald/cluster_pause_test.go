package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A node paused (SIGSTOP) while it delivers is fenced by the other node once its heartbeat has
// ended; the other delivers everything meanwhile. Resumed (SIGCONT), the paused node learns it
// was fenced and drops what it held: it sends nothing it held before the pause, so the only
// duplicates are the requests it had already sent when it was paused.
func TestCluster_PausedNodeIsFencedAndSendsNothingTakenOver(t *testing.T) {
	needBinary(t)
	url, schema := pgSchema(t)
	const (
		events    = 3000
		batchSize = 500
		endpoints = 2
		tenant    = "acme"
		rate      = 150 // per endpoint and second: the drain lasts ~20 s, so a node is paused mid-way
	)
	nodes := startClusterNodes(t, 2, url, schema)
	from := newSenders(nodes)
	if !from.ok {
		t.Skip("/proc/net/tcp cannot be read: which node sent what is unknown")
	}
	n1 := nodes[0]
	n1.must("POST", "/v1/tenants", testKey, map[string]any{"id": tenant, "name": "Acme Inc"}, http.StatusCreated, nil)
	n1.must("POST", "/v1/event-types", testKey, map[string]any{"name": "order.created"}, http.StatusCreated, nil)
	rcvs := make([]*receiver, endpoints)
	times := make([]*arrivalTimes, endpoints)
	for i := range rcvs {
		secret := newSecret(t)
		times[i] = &arrivalTimes{}
		rcvs[i] = newClusterReceiver(t, secret, from, times[i])
		n1.must("POST", "/v1/tenants/"+tenant+"/endpoints", testKey, map[string]any{
			"url": rcvs[i].url(), "secret": secret, "event_types": []string{"*"},
			"timeout_seconds": 10, "max_concurrency": 4, "rate_limit": rate,
		}, http.StatusCreated, nil)
	}
	var ids []string
	for b := range events / batchSize {
		evs := make([]map[string]any, batchSize)
		for i := range evs {
			evs[i] = map[string]any{"type": "order.created", "data": map[string]any{"n": b*batchSize + i}}
		}
		body, err := json.Marshal(map[string]any{"events": evs})
		if err != nil {
			t.Fatal(err)
		}
		status, answer, err := postJSON(n1.addr, "/v1/tenants/"+tenant+"/events/batch", body)
		if status != http.StatusAccepted {
			t.Fatalf("publish: %d %v %s", status, err, answer)
		}
		var out struct {
			Events []struct {
				ID string `json:"id"`
			} `json:"events"`
		}
		if err := json.Unmarshal(answer, &out); err != nil {
			t.Fatal(err)
		}
		for _, e := range out.Events {
			ids = append(ids, e.ID)
		}
	}

	// Pause whichever node is delivering.
	victim := -1
	waitFor(t, time.Minute, "a node delivering", func() bool {
		for i := range nodes {
			if from.recent(i, 100*time.Millisecond) {
				victim = i
				return true
			}
		}
		return false
	}, n1)
	other := nodes[1-victim]
	paused := nodes[victim]
	pausedAt := time.Now()
	paused.signal(syscall.SIGSTOP)
	// Requests it wrote just before the pause may still be reaching the receivers' handlers.
	time.Sleep(time.Second)
	sentBefore := from.sent[victim].Load()
	t.Logf("%s paused after %d requests (sent by %s)", paused.name, sentBefore, from)

	// The other node delivers everything, the paused node's share included.
	waitFor(t, 3*time.Minute, "every event at every receiver while a node is paused", func() bool {
		for _, r := range rcvs {
			if r.missing(ids) > 0 {
				return false
			}
		}
		return true
	}, other)
	var gap time.Duration
	for _, tm := range times {
		gap = max(gap, tm.longestGap(pausedAt))
	}
	if got := from.sent[victim].Load(); got != sentBefore {
		t.Errorf("%s sent %d requests while paused", paused.name, got-sentBefore)
	}

	// Resumed, the paused node sends nothing more: what it held was taken over.
	paused.signal(syscall.SIGCONT)
	resumedAt := time.Now()
	waitFor(t, 30*time.Second, "the resumed node's heartbeat", func() bool {
		return strings.Contains(paused.stderr.String(), "was fenced by another")
	}, paused)
	time.Sleep(2 * time.Second) // what it would still send, it sends within its first loop turns
	if got := from.sent[victim].Load(); got != sentBefore {
		t.Errorf("%s sent %d requests after it resumed, for deliveries taken over", paused.name, got-sentBefore)
	}
	total, distinct := 0, 0
	for _, r := range rcvs {
		d, n, _ := r.counts(nil)
		total += n
		distinct += d
	}
	if distinct != endpoints*len(ids) {
		t.Errorf("%d distinct deliveries arrived, want %d", distinct, endpoints*len(ids))
	}
	t.Logf("SIGSTOP of 1 of 2 nodes: longest time without a delivery %v; duplicates %d of %d; resumed at +%v and fenced, sent nothing after",
		gap.Round(time.Millisecond), total-distinct, distinct, resumedAt.Sub(pausedAt).Round(time.Millisecond))
}
