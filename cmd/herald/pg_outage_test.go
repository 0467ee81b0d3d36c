package main

// herald on PostgreSQL while the database goes away under load, without restarting the shared
// server: first a TCP proxy between herald and PostgreSQL (pgtest.Through) cuts every connection
// and closes new ones for two seconds, then every backend of herald's connections is terminated
// with pg_terminate_backend, three times. Publishes meanwhile must get a 2xx or a 503 with
// Retry-After (never a 500, never a hang), herald must reconnect by itself (its pool and its
// LISTEN connection), and every event acknowledged with a 2xx must be delivered.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/pgtest"
)

// publishRecord is the fate of one request of a client of the test.
type publishRecord struct {
	kind       string // publish, inbound
	at         time.Time
	took       time.Duration
	status     int // 0: no answer
	retryAfter string
	err        error
}

func TestPostgres_OutageUnderLoad(t *testing.T) {
	needBinary(t)
	dbURL, schema := pgSchema(t)
	u, err := url.Parse(dbURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		t.Fatalf("HERALD_TEST_DATABASE_URL must be a postgres:// URL with a host for this test: %v", err)
	}
	if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" && h != "::1" {
		t.Skipf("the proxy forwards to 127.0.0.1 only; the database is on %s", h)
	}
	proxy, through := pgtest.Through(t, dbURL)
	// herald reaches the database through the proxy, its connections named for this test so
	// that pg_terminate_backend finds them and nothing else.
	appName := "herald_outage_" + schema[len("herald_e2e_"):]
	hu, err := url.Parse(through)
	if err != nil {
		t.Fatal(err)
	}
	q := hu.Query()
	q.Set("application_name", appName)
	hu.RawQuery = q.Encode()

	admin, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	sql := func(query string, args ...any) int {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var n int
		if err := admin.QueryRow(ctx, query, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return n
	}
	// The LISTEN connection is the one whose last statement was LISTEN; it started after since.
	listening := func(since time.Time) bool {
		return sql(`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN %' AND backend_start > $2`,
			appName, since) > 0
	}

	secret := newSecret(t)
	rcv := newPacedReceiver(t, secret, 1, 5)

	h := serve(t, "herald", t.TempDir(), []string{"HERALD_API_KEY=" + testKey},
		"--database-url", hu.String(), "--database-schema", schema, "--dev", "--api-rate", "0")
	h.must("POST", "/v1/tenants", testKey, map[string]any{"id": "acme", "name": "Acme Inc"}, http.StatusCreated, nil)
	h.must("POST", "/v1/event-types", testKey, map[string]any{"name": "a.happened"}, http.StatusCreated, nil)
	h.must("POST", "/v1/tenants/acme/endpoints", testKey, map[string]any{
		"url": rcv.url(), "secret": secret, "event_types": []string{"*"}, "max_concurrency": 10, "timeout_seconds": 10,
		"retry_schedule": []int{0, 1, 1, 1, 2, 2, 2, 5, 5, 5, 5, 5},
	}, http.StatusCreated, nil)
	// A source too: webhooks received during the outage must get 200 or 503, like publishes.
	ingestURL := createGitHubSource(h)
	start := time.Now()
	waitFor(t, 10*time.Second, "herald's LISTEN connection", func() bool { return listening(start.Add(-time.Hour)) }, h)

	body, err := json.Marshal(map[string]any{"type": "a.happened", "data": map[string]any{"sku": "sku_42"}})
	if err != nil {
		t.Fatal(err)
	}
	// The client gives up after 10 s: an answer later than that is a hang.
	const publishers, tick = 3, 20 * time.Millisecond
	var (
		mu      sync.Mutex
		records []publishRecord
		ids     []string
		wg      sync.WaitGroup
		acked   atomic.Int64
	)
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopPublishing := func() {
		stopOnce.Do(func() { close(stop) })
		wg.Wait()
	}
	t.Cleanup(stopPublishing)
	// One sender of signed webhooks to the source, on the same tick.
	var received atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		ticker := time.NewTicker(tick)
		defer ticker.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ticker.C:
			}
			a := postGitHub(ingestURL, githubSecret, received.Add(1), "")
			rec := publishRecord{kind: "inbound", at: a.at, took: time.Since(a.at), status: a.status, retryAfter: a.retryAfter, err: a.err}
			mu.Lock()
			if a.err == nil && a.status == http.StatusOK {
				ids = append(ids, a.event)
			}
			records = append(records, rec)
			mu.Unlock()
		}
	}()
	for range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ticker := time.NewTicker(tick)
			defer ticker.Stop()
			for {
				select {
				case <-stop:
					return
				case <-ticker.C:
				}
				rec := publishRecord{kind: "publish", at: time.Now()}
				req, err := http.NewRequest("POST", "http://"+h.addr+"/v1/tenants/acme/events", bytes.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+testKey)
				resp, err := client.Do(req)
				rec.took = time.Since(rec.at)
				if err != nil {
					rec.err = err
				} else {
					b, _ := io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					rec.status, rec.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
					if resp.StatusCode/100 == 2 {
						var out struct {
							ID string `json:"id"`
						}
						if err := json.Unmarshal(b, &out); err != nil || out.ID == "" {
							t.Errorf("publish answered %d: %s (%v), want an event id", resp.StatusCode, b, err)
						}
						mu.Lock()
						ids = append(ids, out.ID)
						mu.Unlock()
						acked.Add(1)
					}
				}
				mu.Lock()
				records = append(records, rec)
				mu.Unlock()
			}
		}()
	}
	ackedSince := func() func() bool {
		n := acked.Load()
		return func() bool { return acked.Load() > n }
	}

	// 1. Steady state.
	time.Sleep(time.Second)
	// 2. The network to the database is cut for 2 s: connections reset, new ones refused.
	cutAt := time.Now()
	proxy.Cut()
	time.Sleep(2 * time.Second)
	proxy.Restore()
	restoredAt := time.Now()
	waitFor(t, 15*time.Second, "a publish acknowledged after the proxy came back", ackedSince(), h)
	recovered := time.Since(restoredAt)
	waitFor(t, 15*time.Second, "a new LISTEN connection after the cut", func() bool { return listening(cutAt) }, h)
	relistened := time.Since(restoredAt)
	t.Logf("proxy cut for %v: first publish acknowledged %v after it came back, LISTEN again after %v",
		restoredAt.Sub(cutAt).Round(time.Millisecond), recovered.Round(time.Millisecond), relistened.Round(time.Millisecond))

	// 3. Every backend of herald's connections terminated, three times: as a server restart
	// looks to a client, without restarting the server other tests share.
	for i := 1; i <= 3; i++ {
		time.Sleep(700 * time.Millisecond)
		killAt := time.Now()
		n := sql(`SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE application_name = $1 AND datname = current_database() AND pid <> pg_backend_pid()) t`, appName)
		waitFor(t, 15*time.Second, "a publish acknowledged after pg_terminate_backend", ackedSince(), h)
		waitFor(t, 15*time.Second, "a new LISTEN connection after pg_terminate_backend", func() bool { return listening(killAt) }, h)
		t.Logf("terminated %d backends: publishing and LISTEN back within %v", n, time.Since(killAt).Round(time.Millisecond))
	}
	time.Sleep(time.Second)
	stopPublishing()
	published := time.Since(start)

	// No 500, no hang, and a 503 always says when to come back.
	mu.Lock()
	recs := slices.Clone(records)
	ackIDs := slices.Clone(ids)
	mu.Unlock()
	byStatus := map[string]int{}
	var slowest time.Duration
	var during, noRetryAfter int
	for _, r := range recs {
		slowest = max(slowest, r.took)
		if r.err != nil {
			t.Errorf("%s at %v got no answer after %v: %v", r.kind, r.at.Sub(start).Round(time.Millisecond), r.took.Round(time.Millisecond), r.err)
			continue
		}
		byStatus[fmt.Sprintf("%s %d", r.kind, r.status)]++
		switch {
		case r.status/100 == 2:
		case r.status == http.StatusServiceUnavailable:
			during++
			if r.retryAfter == "" {
				noRetryAfter++
			}
		default:
			t.Errorf("%s at %v answered %d, want 2xx or 503", r.kind, r.at.Sub(start).Round(time.Millisecond), r.status)
		}
	}
	if noRetryAfter > 0 {
		t.Errorf("%d of %d 503 answers had no Retry-After", noRetryAfter, during)
	}
	if byStatus["publish 503"] == 0 || byStatus["inbound 503"] == 0 {
		t.Errorf("no 503 for a publish or for an inbound webhook: the outages were not seen (answers %v)", byStatus)
	}
	t.Logf("publishing done after %v: %d requests, answers %v, slowest answer %v",
		published.Round(time.Millisecond), len(recs), byStatus, slowest.Round(time.Millisecond))
	t.Logf("result batches kept and written again: %d, given up: %d",
		strings.Count(h.stderr.String(), "record delivery results: store unavailable, will try again"),
		strings.Count(h.stderr.String(), `msg="record delivery results"`))
	if h.call("GET", "/readyz", "", nil).status != http.StatusOK {
		t.Errorf("/readyz is not 200 after the outages%s", h.logs())
	}

	// Every acknowledged event delivered.
	deadline := time.Now().Add(90 * time.Second)
	rcv.waitDelivered(t, ackIDs, time.Until(deadline), h, nil)
	complete := time.Since(start)
	st := storeAgrees(h, rcv, len(ackIDs), time.Until(deadline)+10*time.Second)
	distinct, total, _ := rcv.counts(nil)
	t.Logf("events acknowledged: %d; stored: %d (%d from publishes answered 503 whose commit went through); attempts: %d",
		len(ackIDs), st.Events, st.Events-len(ackIDs), st.Attempts)
	t.Logf("requests received: %d for %d distinct events: %d duplicates; all delivered at %v",
		total, distinct, total-distinct, complete.Round(time.Millisecond))
	h.stop()
}
