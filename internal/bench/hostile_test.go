package bench

import (
	"context"
	"strings"
	"testing"
	"time"
)

// The hostile-tenant scenario at a tiny size: both runs deliver every calm event and report
// their latencies, and the hostile run reports an answer to each of the hostile tenant's kinds
// of request (whatever Herald answers: a refusal is the defence working).
func TestRunHostile_ReportsTheCalmTenantBesideTheHostileOne(t *testing.T) {
	t.Parallel()
	h, err := RunHostile(context.Background(), HostileConfig{
		Duration: time.Second, Rate: 20, Endpoints: 6, Batch: 5, EventBytes: 1 << 10, RegexEndpoints: 1, Streams: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*CalmRun{h.Baseline, h.Beside} {
		if r.Published != 20 || r.Refused != 0 || r.Delivered != 20 || r.Missing != 0 {
			t.Fatalf("%s: published %d, refused %d, delivered %d, missing %d; want 20, 0, 20, 0", r.Name, r.Published, r.Refused, r.Delivered, r.Missing)
		}
		if r.PublishP50 <= 0 || r.PublishP99 < r.PublishP50 || r.ReceiptP50 <= 0 || r.ReceiptP99 < r.ReceiptP50 || r.ReceiptMax < r.ReceiptP99 {
			t.Fatalf("%s: latencies %+v", r.Name, r)
		}
	}
	if h.Baseline.Hostile != nil {
		t.Fatalf("the baseline ran a hostile tenant: %+v", h.Baseline.Hostile)
	}
	kinds := map[string]HostileAction{}
	for _, a := range h.Beside.Hostile {
		kinds[a.Kind] = a
		if a.Requests != a.OK+a.Refused+a.Limited+a.Fail+a.Cut {
			t.Errorf("%s: %d requests but %d+%d+%d+%d+%d answers", a.Kind, a.Requests, a.OK, a.Refused, a.Limited, a.Fail, a.Cut)
		}
	}
	for kind, want := range map[string]int{kindFilter: 1, kindTransform: 1, kindOverride: 2, kindEndpoint: 6, kindStream: 2} {
		if got := kinds[kind].Requests; got != want {
			t.Errorf("%s: %d requests, want %d", kind, got, want)
		}
	}
	for _, kind := range []string{kindBatch, kindLarge} {
		if kinds[kind].Requests == 0 {
			t.Errorf("%s: no request while the calm tenant published", kind)
		}
	}
	// A tenant key cannot raise its own limits.
	if o := kinds[kindOverride]; o.OK != 0 || o.Refused+o.Limited != 2 {
		t.Errorf("the tenant key's attempts at an admin's override: %+v, want both refused", o)
	}
	if h.PublishRatio() <= 0 || h.ReceiptRatio() <= 0 {
		t.Fatalf("ratios %v, %v", h.PublishRatio(), h.ReceiptRatio())
	}
	var out strings.Builder
	h.Print(&out)
	for _, want := range []string{"| calm alone |", "| calm beside the hostile tenant |", "publish p99 beside the hostile tenant / alone",
		"publish→receipt p99 beside the hostile tenant / alone", "target ≤ 1.5×", "| " + kindStream + " |", "| " + kindBatch + " |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the printout lacks %q:\n%s", want, out.String())
		}
	}
}

// A ratio within the target is not met while calm events were refused or lost.
func TestHostile_PrintNotMetWhenCalmEventsWereLost(t *testing.T) {
	t.Parallel()
	alone := &CalmRun{Name: "calm alone", Published: 100, Delivered: 100, PublishP99: 10 * time.Millisecond, ReceiptP99: 20 * time.Millisecond}
	for _, c := range []struct {
		beside CalmRun
		want   string
	}{
		{CalmRun{Published: 100, Delivered: 100, PublishP99: 12 * time.Millisecond, ReceiptP99: 25 * time.Millisecond}, "(target ≤ 1.5×: met)"},
		{CalmRun{Published: 100, Delivered: 1, Missing: 99, PublishP99: 12 * time.Millisecond, ReceiptP99: 5 * time.Millisecond},
			"NOT met: 0 publishes not accepted, 99 accepted events not delivered"},
		{CalmRun{Published: 90, Refused: 10, RefusedBy: map[int]int{0: 10}, Delivered: 90, PublishP99: 12 * time.Millisecond, ReceiptP99: 25 * time.Millisecond},
			"10 × no answer"},
	} {
		c.beside.Name = "calm beside the hostile tenant"
		var out strings.Builder
		(&Hostile{Baseline: alone, Beside: &c.beside}).Print(&out)
		if !strings.Contains(out.String(), c.want) {
			t.Errorf("the printout lacks %q:\n%s", c.want, out.String())
		}
	}
}
