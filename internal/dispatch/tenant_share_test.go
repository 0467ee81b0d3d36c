package dispatch_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/store"
)

// A tenant whose endpoints all hang holds at most MaxInFlightPerTenant of the node's attempts:
// another tenant's delivery goes out while the hanging ones are still open, instead of waiting
// for their timeouts to free a slot.
func TestDispatch_HangingTenantLeavesSlotsForOthers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	release := make(chan struct{})
	var mu sync.Mutex
	open, most, got := 0, 0, 0
	opened := make(chan struct{}, 64)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		open++
		most = max(most, open)
		mu.Unlock()
		opened <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		mu.Lock()
		open--
		got++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	calmGot := make(chan struct{}, 1)
	calm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calmGot <- struct{}{}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(calm.Close)

	st := openStore(t)
	now := time.Now().UTC()
	endpoint := func(id, tenant, url string) {
		t.Helper()
		ep := &store.Endpoint{
			ID: id, TenantID: tenant, URL: url + "/hook", EventTypes: []string{"*"},
			Secrets: []store.Secret{{Key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}},
			Timeout: dispatch.MaxTimeout, MaxConcurrency: 10, Enabled: true,
			RetrySchedule: []time.Duration{0}, CreatedAt: now, UpdatedAt: now,
		}
		if err := st.CreateEndpoint(ctx, ep); err != nil {
			t.Fatal(err)
		}
	}
	for _, tenant := range []string{"hostile", "calm"} {
		if err := st.CreateTenant(ctx, &store.Tenant{ID: tenant, Name: tenant, CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	const maxInFlight, perTenant, hostileEndpoints = 8, 4, 8
	for i := range hostileEndpoints {
		endpoint(fmt.Sprintf("ep_hang%d", i), "hostile", hang.URL)
	}
	endpoint("ep_calm", "calm", calm.URL)

	d := dispatch.New(st, httpsend.New(httpsend.Config{AllowHTTP: true, AllowLoopback: true}), dispatch.Config{
		MaxInFlight: maxInFlight, MaxInFlightPerTenant: perTenant, ReleaseClaimsAtStart: true,
		ShutdownGrace: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- d.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("dispatcher: %v", err)
		}
	})
	publish := func(tenant, id string) {
		t.Helper()
		res, err := st.Publish(ctx, tenant, []*store.Event{{ID: id, Type: "a.happened", Timestamp: now, CreatedAt: now,
			Payload: []byte(`{"id":"` + id + `","type":"a.happened","data":{}}`)}})
		if err != nil {
			t.Fatal(err)
		}
		d.Notify(res[0].EndpointIDs...)
	}

	publish("hostile", "evt_hostile")
	for range perTenant {
		select {
		case <-opened:
		case <-time.After(30 * time.Second):
			t.Fatal("the hostile tenant's endpoints were not called")
		}
	}
	publish("calm", "evt_calm")
	select {
	case <-calmGot:
	case <-time.After(25 * time.Second):
		// Before the per-tenant bound, the hanging endpoints held every slot until their 30 s
		// timeout.
		t.Fatal("the calm tenant's delivery did not go out while the hostile tenant's endpoints hung")
	}
	mu.Lock()
	stillOpen, peak := open, most
	mu.Unlock()
	if stillOpen == 0 {
		t.Fatal("the hanging requests ended before the calm delivery: the test proves nothing")
	}
	if peak > perTenant {
		t.Errorf("the hostile tenant had %d attempts open at once, want at most %d", peak, perTenant)
	}
	close(release)
	// The rest of the hostile tenant's deliveries go out once slots free.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := got
		mu.Unlock()
		if n == hostileEndpoints {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hostile tenant's endpoints got %d of %d deliveries", n, hostileEndpoints)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
