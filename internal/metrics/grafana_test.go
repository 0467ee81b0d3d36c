package metrics

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/destination"
)

// TestGrafanaDashboardUsesRealMetrics reads the dashboard shipped in docs/grafana and checks that
// every metric its queries use is one this package exports, and every label they group or
// select by is one that metric has: a renamed metric or label must not silently empty a panel.
func TestGrafanaDashboardUsesRealMetrics(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../docs/grafana/herald.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}

	// Every series exists once each method has been called.
	m := New(Options{})
	m.EventsPublished("acme", 1)
	m.Attempt("acme", "ep_1", OutcomeSuccess, destination.Outcome{})
	m.SetDispatch(1, 2)
	m.BreakerOpened()
	m.InboundRequest("acme", InboundAccepted, time.Millisecond)
	m.WatchOldestPending(func(context.Context, time.Time) (map[string]time.Time, error) { return nil, nil }, 0)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) {})
	m.ServeMux(mux, httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]map[string]bool{} // metric → its labels (le for histograms)
	for _, mf := range mfs {
		set := map[string]bool{}
		for _, metric := range mf.GetMetric() {
			for _, l := range metric.GetLabel() {
				set[l.GetName()] = true
			}
		}
		if mf.GetType().String() == "HISTOGRAM" {
			set["le"] = true
		}
		labels[mf.GetName()] = set
	}

	name := regexp.MustCompile(`herald_[a-z_]+`)
	by := regexp.MustCompile(`by \(([a-z_, ]+)\)`)
	selector := regexp.MustCompile(`\{([^}]*)\}`)
	exprs := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs++
			var used []string
			for _, n := range name.FindAllString(tg.Expr, -1) {
				n = strings.TrimSuffix(n, "_bucket")
				if _, ok := labels[n]; !ok {
					t.Errorf("panel %q uses %s, which Herald does not export", p.Title, n)
					continue
				}
				used = append(used, n)
			}
			var wanted []string
			for _, g := range by.FindAllStringSubmatch(tg.Expr, -1) {
				for _, l := range strings.Split(g[1], ",") {
					wanted = append(wanted, strings.TrimSpace(l))
				}
			}
			for _, s := range selector.FindAllStringSubmatch(tg.Expr, -1) {
				for _, kv := range strings.Split(s[1], ",") {
					if l, _, ok := strings.Cut(kv, "="); ok {
						wanted = append(wanted, strings.Trim(strings.TrimSpace(l), "!~"))
					}
				}
			}
			for _, l := range wanted {
				for _, n := range used {
					if !labels[n][l] {
						t.Errorf("panel %q groups or selects %s by %q, which it does not have", p.Title, n, l)
					}
				}
			}
		}
	}
	if exprs < 10 {
		t.Fatalf("only %d queries in the dashboard", exprs)
	}
}
