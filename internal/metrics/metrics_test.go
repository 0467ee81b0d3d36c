package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// counter reads one counter's value.
func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestErrorClass(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		out  destination.Outcome
		want string
	}{
		{destination.Outcome{Class: destination.Success, StatusCode: 204}, "none"},
		{destination.Outcome{Class: destination.Retryable, StatusCode: 503, ErrorKind: destination.KindHTTPStatus}, "http_5xx"},
		{destination.Outcome{Class: destination.Permanent, StatusCode: 404, ErrorKind: destination.KindHTTPStatus}, "http_4xx"},
		{destination.Outcome{Class: destination.Retryable, ErrorKind: destination.KindTimeout}, "timeout"},
		{destination.Outcome{Class: destination.Success, StatusCode: 200, ErrorKind: destination.KindBodyTimeout}, "body_timeout"},
	} {
		if got := ErrorClass(c.out); got != c.want {
			t.Errorf("ErrorClass(%+v) = %q, want %q", c.out, got, c.want)
		}
	}
}

func TestNilMetricsDoNothing(t *testing.T) {
	t.Parallel()
	var m *Metrics
	m.EventsPublished("acme", 1)
	m.Attempt("acme", "ep_1", OutcomeSuccess, destination.Outcome{})
	m.SetDispatch(1, 2)
	m.SetLaneWaits(1)
	m.BreakerOpened()
	m.BreakerClosed()
	m.WatchOldestPending(nil, time.Second)
	m.InboundRequest("acme", InboundAccepted, time.Millisecond)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	rec := httptest.NewRecorder()
	m.ServeMux(mux, rec, httptest.NewRequest("GET", "/x", nil))
	if rec.Code != http.StatusTeapot {
		t.Fatalf("code = %d", rec.Code)
	}
}

func TestEndpointLabelsFoldIntoOther(t *testing.T) {
	t.Parallel()
	m := New(Options{EndpointLabels: 2})
	for _, ep := range []string{"ep_a", "ep_b", "ep_c", "ep_d", "ep_a"} {
		m.Attempt("acme", ep, OutcomeSuccess, destination.Outcome{Latency: time.Millisecond})
	}
	for ep, want := range map[string]float64{"ep_a": 2, "ep_b": 1, "other": 2} {
		if got := counter(t, m.deliveries.WithLabelValues("acme", OutcomeSuccess, "none", ep)); got != want {
			t.Errorf("deliveries{endpoint=%q} = %v, want %v", ep, got, want)
		}
	}
	ch := make(chan prometheus.Metric, 10)
	m.deliveries.Collect(ch)
	if n := len(ch); n != 3 {
		t.Errorf("%d series, want 3", n)
	}
}

func TestRequestsCountedByPattern(t *testing.T) {
	t.Parallel()
	m := New(Options{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/things/{id}", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
	for _, path := range []string{"/v1/things/1", "/v1/things/2", "/elsewhere"} {
		m.ServeMux(mux, httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}
	if got := counter(t, m.apiRequests.WithLabelValues("GET /v1/things/{id}", "200")); got != 2 {
		t.Errorf("route count = %v, want 2", got)
	}
	if got := counter(t, m.apiRequests.WithLabelValues("unmatched", "404")); got != 1 {
		t.Errorf("unmatched count = %v, want 1", got)
	}
}

func TestOldestPending(t *testing.T) {
	t.Parallel()
	m := New(Options{})
	now := time.Now()
	var fail bool
	m.WatchOldestPending(func(ctx context.Context, _ time.Time) (map[string]time.Time, error) {
		if fail {
			return nil, errors.New("store down")
		}
		return map[string]time.Time{"ep_a": now.Add(-90 * time.Second), "ep_b": now.Add(time.Hour)}, nil
	}, 0)
	const want = "herald_oldest_pending_seconds"
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == want {
			found = true
			if v := mf.GetMetric()[0].GetGauge().GetValue(); v < 90 || v > 100 {
				t.Fatalf("%s = %v, want about 90", want, v)
			}
		}
	}
	if !found {
		t.Fatalf("no %s", want)
	}
	fail = true
	if _, err := m.Registry().Gather(); err == nil || !strings.Contains(err.Error(), "store down") {
		t.Fatalf("gather with a failing store: %v", err)
	}
}

func TestInboundRequestsCountedByTenantAndOutcome(t *testing.T) {
	t.Parallel()
	m := New(Options{})
	m.InboundRequest("acme", InboundAccepted, 2*time.Millisecond)
	m.InboundRequest("acme", InboundAccepted, 3*time.Millisecond)
	m.InboundRequest("", InboundNotFound, time.Millisecond)
	if got := counter(t, m.inbound.WithLabelValues("acme", InboundAccepted)); got != 2 {
		t.Errorf("accepted = %v", got)
	}
	if got := counter(t, m.inbound.WithLabelValues("", InboundNotFound)); got != 1 {
		t.Errorf("not_found = %v", got)
	}
	var h dto.Metric
	if err := m.inboundAck.WithLabelValues("acme").(prometheus.Histogram).Write(&h); err != nil {
		t.Fatal(err)
	}
	if h.GetHistogram().GetSampleCount() != 2 {
		t.Errorf("ack samples = %d", h.GetHistogram().GetSampleCount())
	}
}
