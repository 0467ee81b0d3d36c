package dispatch_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/sqlite"
)

type resolverFunc func(ctx context.Context, network, host string) ([]netip.Addr, error)

func (f resolverFunc) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return f(ctx, network, host)
}

// The dispatcher sends an endpoint marked internal with the internal client, and any other with
// the ordinary one, by the flag the endpoint has when the attempt is made: once the flag is off,
// the ordinary client's guard refuses the internal address at dial time and nothing reaches the
// receiver. The host is a name, which no registration check resolves, so only the dial-time
// guard stands in the way.
func TestDispatch_InternalFlagPicksTheClient(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var hits atomic.Int64
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	const host = "hooks.internal.test"
	resolver := resolverFunc(func(_ context.Context, _, h string) ([]netip.Addr, error) {
		if h == host {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: h, IsNotFound: true}
	})
	// Both clients allow http, so that only the guard tells them apart.
	ordinary := httpsend.New(httpsend.Config{AllowHTTP: true, Resolver: resolver})
	internal := httpsend.New(httpsend.Config{AllowHTTP: true, Resolver: resolver,
		AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})

	st := openStore(t)
	now := time.Now().UTC()
	ep := &store.Endpoint{
		ID: "ep_internal", TenantID: "acme", URL: "http://" + host + ":" + rc.URL[strings.LastIndexByte(rc.URL, ':')+1:] + "/hook",
		EventTypes: []string{"*"}, Secrets: []store.Secret{{Key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}},
		Timeout: 5 * time.Second, MaxConcurrency: 1, Enabled: true, Internal: true,
		RetrySchedule: []time.Duration{0}, CreatedAt: now, UpdatedAt: now,
	}
	if err := st.CreateEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}

	d := dispatch.New(st, ordinary, dispatch.Config{
		InternalClient: internal, Rescan: 100 * time.Millisecond, ReleaseClaimsAtStart: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
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

	attempt := func(n int) store.Attempt {
		t.Helper()
		id := fmt.Sprintf("evt_%d", n)
		res, err := st.Publish(ctx, "acme", []*store.Event{{ID: id, Type: "a.happened", Timestamp: now, CreatedAt: now,
			Payload: []byte(`{"id":"` + id + `","type":"a.happened","data":{}}`)}})
		if err != nil {
			t.Fatal(err)
		}
		d.Notify(res[0].EndpointIDs...)
		deadline := time.Now().Add(20 * time.Second)
		for {
			atts, _, err := st.ListAttempts(ctx, store.AttemptFilter{TenantID: "acme", EventID: id})
			if err != nil {
				t.Fatal(err)
			}
			if len(atts) > 0 {
				return atts[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("no attempt for %s", id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	if a := attempt(1); !a.Success || hits.Load() != 1 {
		t.Fatalf("internal endpoint: attempt %+v, receiver hits %d; want a success", a, hits.Load())
	}

	ep.Internal = false
	if err := st.UpdateEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}
	d.EndpointChanged(ep.ID)
	a := attempt(2)
	if a.Success || a.ErrorKind != destination.KindBlocked || !strings.Contains(a.Error, "resolves to 127.0.0.1") {
		t.Errorf("after the flag went off: attempt %+v, want %s at dial time", a, destination.KindBlocked)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the receiver got %d requests, want only the one from before", n)
	}
}

// openStore opens a SQLite store in the test's directory, closed when the test ends, with
// tenant acme.
func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "herald.db"), sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	now := time.Now().UTC()
	if err := st.CreateTenant(ctx, &store.Tenant{ID: "acme", Name: "Acme", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	return st
}
