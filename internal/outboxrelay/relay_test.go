package outboxrelay_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/outboxrelay"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
)

// fakeOutbox hands out its rows a batch per pass, as the store does, and records what the
// build made of them.
type fakeOutbox struct {
	mu     sync.Mutex
	rows   []postgres.OutboxRow
	passes int
	built  []*store.Event
	drain  chan struct{} // closed when the rows ran out
}

func (f *fakeOutbox) RelayOutbox(ctx context.Context, limit int, build postgres.OutboxBuild) (postgres.RelayResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.passes++
	take := f.rows[:min(limit, len(f.rows))]
	f.rows = f.rows[len(take):]
	var res postgres.RelayResult
	res.Rows = len(take)
	for _, row := range take {
		ev, err := build(ctx, row)
		if err != nil {
			res.Failed, res.Errors = append(res.Failed, row), append(res.Errors, err)
			continue
		}
		f.built = append(f.built, ev)
		res.Published = append(res.Published, store.PublishResult{Event: ev, Deliveries: 1, EndpointIDs: []string{"ep_" + row.TenantID}})
	}
	if len(f.rows) == 0 && f.drain != nil {
		close(f.drain)
		f.drain = nil
	}
	return res, nil
}

// A backlog is drained pass after pass without waiting for the interval; each published event
// wakes its endpoints; a refused row is logged with its tenant, event and Herald's reason.
func TestRun_DrainsBacklogAndWakesEndpoints(t *testing.T) {
	t.Parallel()
	drained := make(chan struct{})
	f := &fakeOutbox{drain: drained}
	for i := range 25 {
		typ := "order.created"
		if i == 7 {
			typ = "order.unknown"
		}
		f.rows = append(f.rows, postgres.OutboxRow{ID: int64(i), TenantID: "acme", EventID: "evt_" + string(rune('a'+i)), Type: typ,
			Data: []byte(`{"i":1}`), Resource: []byte(`{"id":"o1","type":"order"}`), Priority: "high"})
	}
	var mu sync.Mutex
	var woken []string
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- outboxrelay.Run(ctx, outboxrelay.Config{
			Store: f,
			Build: func(_ context.Context, in api.EventInput) (*store.Event, error) {
				if in.Type == "order.unknown" {
					return nil, huma.Error422UnprocessableEntity("invalid event",
						&huma.ErrorDetail{Location: ".type", Message: "unknown event type; register it with POST /v1/event-types"})
				}
				if in.Resource == nil || in.Resource.ID != "o1" || in.Priority != "high" || string(in.Data) != `{"i":1}` {
					t.Errorf("input %+v: the row's fields are lost", in)
				}
				return &store.Event{ID: in.ID, Type: in.Type}, nil
			},
			Notify: func(ids ...string) {
				mu.Lock()
				woken = append(woken, ids...)
				mu.Unlock()
			},
			Interval: time.Hour, // only full batches may chain passes
			Batch:    10,
			Logger:   slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil)),
		})
	}()
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		t.Fatal("the backlog was not drained without waiting for the interval")
	}
	time.Sleep(50 * time.Millisecond) // the last pass's wake-ups and logs
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.passes != 3 || len(f.built) != 24 {
		t.Fatalf("%d passes built %d events; want 3 passes of 10, 10 and 5 rows, 24 built", f.passes, len(f.built))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(woken) != 24 || woken[0] != "ep_acme" {
		t.Fatalf("woke %v, want ep_acme once per event", woken)
	}
	log := logs.String()
	if !strings.Contains(log, "level=WARN") || !strings.Contains(log, "tenant=acme") || !strings.Contains(log, "event=evt_h") ||
		!strings.Contains(log, "type: unknown event type") {
		t.Fatalf("log %q: want a warning naming the tenant, the event and the reason", log)
	}
}

func TestDescribe_NamesEachFailingPlace(t *testing.T) {
	t.Parallel()
	err := huma.Error422UnprocessableEntity("invalid event",
		&huma.ErrorDetail{Location: ".type", Message: "unknown event type"},
		&huma.ErrorDetail{Location: ".data.total", Message: "does not match the schema"})
	if got, want := outboxrelay.Describe(err), "invalid event: type: unknown event type; data.total: does not match the schema"; got != want {
		t.Fatalf("Describe = %q, want %q", got, want)
	}
	if got := outboxrelay.Describe(errors.New("tenant x does not exist")); got != "tenant x does not exist" {
		t.Fatalf("Describe = %q", got)
	}
}

func TestInput_RefusesMalformedRows(t *testing.T) {
	t.Parallel()
	if _, err := outboxrelay.Input(postgres.OutboxRow{Type: "a", Data: []byte(`{`)}); err == nil {
		t.Fatal("invalid data accepted")
	}
	if _, err := outboxrelay.Input(postgres.OutboxRow{Type: "a", Data: []byte(`{}`), Resource: []byte(`[1]`)}); err == nil {
		t.Fatal("invalid resource accepted")
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
