package inbound_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/inbound/verify"
	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/store"
)

// BenchmarkIngest measures the acknowledgement of GitHub-signed webhooks by a real node on a real
// SQLite store (synchronous FULL, the default), each request verified, stored with its event and
// one delivery in one transaction, and forwarded to a local endpoint meanwhile. It reports the
// ack latency's median and 99th percentile. senders=N keeps N senders busy at once (closed loop:
// throughput); rate=500 sends 500 requests a second whatever the answers' pace (open loop, as
// providers send), the load the receiving side's target (p99 under 20 ms) is stated for.
func BenchmarkIngest(b *testing.B) {
	for _, senders := range []int{1, 16} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) { benchIngest(b, senders, 0) })
	}
	b.Run("rate=500", func(b *testing.B) { benchIngest(b, 64, 500) })
}

// benchIngest sends b.N requests from up to senders goroutines, paced at perSecond when it is
// positive.
func benchIngest(b *testing.B, senders, perSecond int) {
	ctx := context.Background()
	const key = "hk_admin_bench_0123456789abcdef"
	n, err := node.Start(ctx, node.Config{Addr: "127.0.0.1:0", DataDir: b.TempDir(), Dev: true, APIKey: key,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = n.Close(context.Background()) }()
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	defer endpoint.Close()
	now := time.Now().UTC()
	if err := n.Store.CreateTenant(ctx, &store.Tenant{ID: "bench", Name: "bench", CreatedAt: now, UpdatedAt: now}); err != nil {
		b.Fatal(err)
	}
	epBody, _ := json.Marshal(map[string]any{"url": endpoint.URL, "event_types": []string{"*"}})
	req, _ := http.NewRequest(http.MethodPost, n.URL()+"/v1/tenants/bench/endpoints", bytes.NewReader(epBody))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		b.Fatalf("create endpoint: %d", resp.StatusCode)
	}
	secret := "bench-secret-0123456789"
	vc, _ := json.Marshal(verify.Config{Scheme: verify.SchemeGitHub, Secrets: []string{secret}})
	src := &store.Source{ID: "src_bench", TenantID: "bench", Name: "bench", Token: "benchtoken0123456789abcdef", Enabled: true,
		Settings: store.SourceSettings{Verification: vc, EventTypePrefix: "github."}, CreatedAt: now, UpdatedAt: now}
	if err := n.Store.CreateSource(ctx, src); err != nil {
		b.Fatal(err)
	}
	url := n.URL() + "/in/" + src.Token
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	var seq atomic.Int64
	post := func() time.Duration {
		id := seq.Add(1)
		body := fmt.Appendf(nil, `{"action":"opened","number":%d,"pull_request":{"title":"benchmark","body":"%s"}}`, id, bytes.Repeat([]byte("x"), 512))
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(body)
		r, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("X-GitHub-Event", "pull_request")
		r.Header.Set("X-GitHub-Delivery", fmt.Sprintf("bench-%d", id))
		r.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
		start := time.Now()
		resp, err := client.Do(r)
		if err != nil {
			b.Error(err)
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if resp.StatusCode != 200 {
			b.Errorf("ingest = %d", resp.StatusCode)
		}
		return d
	}
	post() // warm the token cache and the connection

	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	work := make(chan struct{}, b.N)
	b.ResetTimer()
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for range work {
				d := post()
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	if perSecond > 0 {
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		for range b.N {
			<-tick.C
			work <- struct{}{}
		}
		tick.Stop()
	} else {
		for range b.N {
			work <- struct{}{}
		}
	}
	close(work)
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
	}
}
