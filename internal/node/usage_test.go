package node_test

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/node"
)

func TestUsage_CountsExactlyWhatWasDone(t *testing.T) {
	t.Parallel()
	usageCountsExactly(t, nil)
}

func TestPostgres_UsageCountsExactlyWhatWasDone(t *testing.T) {
	t.Parallel()
	usageCountsExactly(t, onPostgres(t))
}

type usageFigures struct {
	Events           int64 `json:"events"`
	EventBytes       int64 `json:"event_bytes"`
	RequestsReceived int64 `json:"requests_received"`
	BytesReceived    int64 `json:"bytes_received"`
	Deliveries       int64 `json:"deliveries"`
	AttemptsOK       int64 `json:"attempts_ok"`
	AttemptsFailed   int64 `json:"attempts_failed"`
	BytesSent        int64 `json:"bytes_sent"`
}

func (u *usageFigures) add(o usageFigures) {
	u.Events += o.Events
	u.EventBytes += o.EventBytes
	u.RequestsReceived += o.RequestsReceived
	u.BytesReceived += o.BytesReceived
	u.Deliveries += o.Deliveries
	u.AttemptsOK += o.AttemptsOK
	u.AttemptsFailed += o.AttemptsFailed
	u.BytesSent += o.BytesSent
}

// Events published and received go to three endpoints (one answers 200, one always fails, one
// fails each event's first attempt); once every delivery has ended, the tenant's usage says
// exactly what the receivers saw: events, deliveries, attempts ok and failed, bytes both ways.
func usageCountsExactly(t *testing.T, mod func(*node.Config)) {
	h := start(t, func(c *node.Config) {
		// The always failing endpoint must not open its breaker: every attempt is to be made.
		c.Dispatch.BreakerFailures = 1000
		if mod != nil {
			mod(c)
		}
	})
	h.setup("acme", "order.created")
	h.setup("globex", "order.created")
	ok := newReceiver(t, nil)
	failing := newReceiver(t, func(int, *http.Request) int { return 500 })
	var mu sync.Mutex
	seen := map[string]bool{}
	flaky := newReceiver(t, func(_ int, r *http.Request) int {
		mu.Lock()
		defer mu.Unlock()
		id := r.Header.Get("webhook-id")
		if seen[id] {
			return 200
		}
		seen[id] = true
		return 503
	})
	eps := map[string]*receiver{}
	for _, rc := range []*receiver{ok, failing, flaky} {
		ep := h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}, "retry_schedule": []int{0, 1}})
		eps[ep.ID] = rc
	}
	const published = 10
	for i := range published {
		h.publish("acme", map[string]any{"type": "order.created", "data": map[string]any{"n": i, "pad": strings.Repeat("x", i*10)}})
	}
	h.publish("globex", map[string]any{"type": "order.created", "data": map[string]any{}})
	src := h.newSource("acme", noVerification, nil)
	var inBytes int64
	for i := range 3 {
		body := []byte(fmt.Sprintf(`{"received":%d,"pad":%q}`, i, strings.Repeat("y", i*7)))
		inBytes += int64(len(body))
		h.mustIngest(200, "/in/"+src.Token, http.Header{"Content-Type": {"application/json"}}, body)
	}
	const events = published + 3
	// Every delivery ends: ok's and flaky's succeed, failing's die after two attempts.
	eventuallyWhy(t, 30*time.Second, "every delivery ended", func() bool {
		for _, state := range []string{"pending"} {
			if len(h.deliveries("/v1/tenants/acme/deliveries?state="+state)) > 0 {
				return false
			}
		}
		return ok.count() == events && flaky.count() == 2*events && failing.count() == 2*events
	}, func() string {
		return fmt.Sprintf("ok %d, flaky %d, failing %d requests; pending %d", ok.count(), flaky.count(), failing.count(),
			len(h.deliveries("/v1/tenants/acme/deliveries?state=pending")))
	})

	var u struct {
		Granularity string       `json:"granularity"`
		Totals      usageFigures `json:"totals"`
		Buckets     []struct {
			Start      time.Time `json:"start"`
			EndpointID string    `json:"endpoint_id"`
			usageFigures
		} `json:"buckets"`
	}
	h.must(200, "GET", "/v1/tenants/acme/usage?granularity=hour&by=endpoint", nil, &u)
	byEndpoint := map[string]usageFigures{}
	for _, b := range u.Buckets {
		f := byEndpoint[b.EndpointID]
		f.add(b.usageFigures)
		byEndpoint[b.EndpointID] = f
	}
	var eventBytes int64
	for id, rc := range eps {
		var want usageFigures
		for _, r := range rc.got() {
			want.BytesSent += int64(len(r.body))
		}
		want.Deliveries = events
		switch rc {
		case ok:
			want.AttemptsOK = events
			for _, r := range rc.got() {
				eventBytes += int64(len(r.body)) // the envelope as published
			}
		case failing:
			want.AttemptsFailed = 2 * events
		case flaky:
			want.AttemptsOK, want.AttemptsFailed = events, events
		}
		if byEndpoint[id] != want {
			t.Errorf("endpoint %s usage %+v, want %+v", id, byEndpoint[id], want)
		}
	}
	h.must(200, "GET", "/v1/tenants/acme/usage?granularity=day", nil, &u)
	want := usageFigures{Events: events, EventBytes: eventBytes, RequestsReceived: 3, BytesReceived: inBytes, Deliveries: 3 * events,
		AttemptsOK: 2 * events, AttemptsFailed: 3 * events}
	for _, rc := range eps {
		for _, r := range rc.got() {
			want.BytesSent += int64(len(r.body))
		}
	}
	if u.Totals != want || u.Granularity != "day" {
		t.Errorf("acme's usage totals %+v, want %+v", u.Totals, want)
	}
	// The admin export says the same, one tenant a row.
	req, err := http.NewRequest("GET", h.node.URL()+"/v1/usage?granularity=day&format=csv", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("export = %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	rows, err := csv.NewReader(bufio.NewReader(resp.Body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string][]int64{}
	for _, row := range rows[1:] {
		if len(row) != len(rows[0]) {
			t.Fatalf("row %v against header %v", row, rows[0])
		}
		s := sums[row[0]]
		if s == nil {
			s = make([]int64, len(row)-2)
		}
		for i, v := range row[2:] {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("row %v: %v", row, err)
			}
			s[i] += n
		}
		sums[row[0]] = s
	}
	if got := fmt.Sprint(sums["acme"]); got != fmt.Sprint([]int64{want.Events, want.EventBytes, want.RequestsReceived, want.BytesReceived,
		want.Deliveries, want.AttemptsOK, want.AttemptsFailed, want.BytesSent}) {
		t.Errorf("export's acme row %s, want %+v (header %v)", got, want, rows[0])
	}
	if sums["globex"] == nil || sums["globex"][0] != 1 {
		t.Errorf("export's globex row %v, want 1 event", sums["globex"])
	}
}
