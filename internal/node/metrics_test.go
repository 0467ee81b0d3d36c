package node_test

import (
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/heraldhq/herald/internal/node"
)

// scrape GETs /metrics without credentials, as Prometheus does, and parses the text format.
func (h *harness) scrape() map[string]*dto.MetricFamily {
	h.t.Helper()
	resp, err := http.Get(h.node.URL() + "/metrics")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		h.t.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		h.t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// value is the value of the series of family name whose labels include want; -1 when there is
// none. For a histogram it is the sample count.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	mf := mfs[name]
	if mf == nil {
		return -1
	}
next:
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

func labelValues(mfs map[string]*dto.MetricFamily, name, label string) []string {
	var out []string
	for _, m := range mfs[name].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label {
				out = append(out, lp.GetValue())
			}
		}
	}
	sort.Strings(out)
	return out
}

func TestMetrics_CountsPublishesDeliveriesAndRequests(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	ok := newReceiver(t, nil)
	failing := newReceiver(t, func(int, *http.Request) int { return 500 })
	h.setup("acme", "order.placed")
	h.endpoint("acme", map[string]any{"url": ok.URL, "event_types": []string{"*"}})
	// Two attempts: the first fails and is retried after 1 s, the second fails and is the last.
	h.endpoint("acme", map[string]any{"url": failing.URL, "event_types": []string{"*"}, "retry_schedule": []int{0, 1}})
	p := h.publish("acme", map[string]any{"type": "order.placed", "data": map[string]any{"n": 1}})
	h.publish("acme", map[string]any{"id": p.ID, "type": "order.placed", "data": map[string]any{"n": 1}}) // a duplicate

	success := map[string]string{"tenant": "acme", "outcome": "success", "error_class": "none"}
	retry := map[string]string{"tenant": "acme", "outcome": "retry", "error_class": "http_5xx"}
	dead := map[string]string{"tenant": "acme", "outcome": "dead", "error_class": "http_5xx"}
	var mfs map[string]*dto.MetricFamily
	eventually(t, 10*time.Second, "one success, one retry and one dead attempt counted", func() bool {
		mfs = h.scrape()
		return value(mfs, "herald_deliveries_total", dead) == 1
	})
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"herald_events_published_total", map[string]string{"tenant": "acme"}, 1},
		{"herald_deliveries_total", success, 1},
		{"herald_deliveries_total", retry, 1},
		{"herald_deliveries_total", dead, 1},
		{"herald_attempt_duration_seconds", map[string]string{"tenant": "acme"}, 3},
		{"herald_api_requests_total", map[string]string{"route": "POST /v1/tenants/{tenant}/events", "code": "202"}, 2},
		{"herald_api_requests_total", map[string]string{"route": "POST /v1/tenants", "code": "201"}, 1},
		{"herald_api_request_duration_seconds", map[string]string{"route": "POST /v1/tenants/{tenant}/events"}, 2},
		{"herald_inflight_attempts", nil, 0},
		{"herald_lane_queue_depth", nil, 0},
		{"herald_breaker_open_endpoints", nil, 0},
	} {
		if got := value(mfs, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Cached for 10 s, so it may show the scan of the first scrape, when a delivery was just due.
	if got := value(mfs, "herald_oldest_pending_seconds", nil); got < 0 || got > 1 {
		t.Errorf("herald_oldest_pending_seconds = %v, want 0 to 1", got)
	}
	if ok.count() != 1 || failing.count() != 2 {
		t.Errorf("receivers got %d and %d requests, want 1 and 2", ok.count(), failing.count())
	}
	// No raw path, and so no id, reaches a label; /metrics itself is not an API request.
	for _, route := range labelValues(mfs, "herald_api_requests_total", "route") {
		if strings.Contains(route, "acme") || strings.Contains(route, "metrics") {
			t.Errorf("route label %q", route)
		}
	}
	if eps := labelValues(mfs, "herald_deliveries_total", "endpoint"); len(eps) != 0 {
		t.Errorf("endpoint labels without --metrics-endpoint-labels: %v", eps)
	}
}

func TestMetrics_UnmatchedPathsShareOneRoute(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	for _, path := range []string{"/nope/1", "/nope/2", "/v1/unknown"} {
		h.call("GET", path, nil, nil)
	}
	mfs := h.scrape()
	if got := value(mfs, "herald_api_requests_total", map[string]string{"route": "unmatched", "code": "404"}); got != 3 {
		t.Fatalf("unmatched 404s = %v, want 3", got)
	}
}

func TestMetrics_EndpointLabelsAreCapped(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *node.Config) { c.Metrics.EndpointLabels = 1 })
	rc := newReceiver(t, nil)
	h.setup("acme", "order.placed")
	var ids []string
	for range 3 {
		ids = append(ids, h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}}).ID)
	}
	h.publish("acme", map[string]any{"type": "order.placed", "data": map[string]any{}})
	var mfs map[string]*dto.MetricFamily
	eventually(t, 10*time.Second, "three successes counted", func() bool {
		mfs = h.scrape()
		total := 0.0
		for _, m := range mfs["herald_deliveries_total"].GetMetric() {
			total += m.GetCounter().GetValue()
		}
		return total == 3
	})
	eps := labelValues(mfs, "herald_deliveries_total", "endpoint")
	if len(eps) != 2 || eps[1] != "other" || !strings.HasPrefix(eps[0], "ep") {
		t.Fatalf("endpoint labels = %v, want one endpoint id and other (ids %v)", eps, ids)
	}
	if got := value(mfs, "herald_deliveries_total", map[string]string{"endpoint": "other"}); got != 2 {
		t.Fatalf("deliveries to other = %v, want 2", got)
	}
}

func TestMetrics_Off(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *node.Config) { c.NoMetrics = true })
	resp, err := http.Get(h.node.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("GET /metrics with NoMetrics = %d, want 404", resp.StatusCode)
	}
}

func TestMetrics_OpenBreakerIsCounted(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *node.Config) {
		c.Dispatch.BreakerFailures = 2
		c.Dispatch.BreakerCooldown = time.Hour
	})
	failing := newReceiver(t, func(int, *http.Request) int { return 503 })
	h.setup("acme", "order.placed")
	h.endpoint("acme", map[string]any{"url": failing.URL, "event_types": []string{"*"}, "retry_schedule": []int{0, 0, 0, 0, 0}})
	h.publish("acme", map[string]any{"type": "order.placed", "data": map[string]any{}})
	h.publish("acme", map[string]any{"type": "order.placed", "data": map[string]any{}})
	eventually(t, 10*time.Second, "the open breaker counted", func() bool {
		return value(h.scrape(), "herald_breaker_open_endpoints", nil) == 1
	})
}
