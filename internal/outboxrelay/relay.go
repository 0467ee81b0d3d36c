// Package outboxrelay moves the events applications wrote to the outbox table (the public outbox
// package) into Herald: it polls the table, has each event checked as the API checks a publish,
// and wakes the dispatcher for the deliveries it created. Every node on PostgreSQL runs it; the
// store's row locks let them share the table (see postgres.Store.RelayOutbox).
//
// It polls rather than listening for a NOTIFY from the application's transaction on purpose: a
// notifying transaction holds a database-wide lock from its pre-commit until its commit record is
// flushed, which would make the application's commits take turns (see the store's notify.go).
package outboxrelay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
)

// Relayer is the store's side of the relay: *postgres.Store.
type Relayer interface {
	RelayOutbox(ctx context.Context, limit int, build postgres.OutboxBuild) (postgres.RelayResult, error)
}

// Config is what Run needs; zero values take the defaults.
type Config struct {
	Store Relayer
	// Build checks an event and makes what the store takes: the API server's BuildEvent, so that
	// an outbox event passes the checks a publish through the API does.
	Build func(ctx context.Context, in event.Input) (*store.Event, error)
	// Notify wakes the dispatcher for endpoints that got deliveries (may be nil).
	Notify func(endpointIDs ...string)
	// Interval is the pause between passes that found the outbox drained (default 250 ms): the
	// latency an outbox event adds to a publish, at most.
	Interval time.Duration
	// Batch is how many rows a pass takes (default 100).
	Batch  int
	Logger *slog.Logger
	// Metrics counts the events relayed (as published) and the rows refused (may be nil).
	Metrics *metrics.Metrics
}

// Run relays until ctx ends: a pass, then another at once while passes take full batches, else
// a pause of Interval. A pass that fails (the database is down, say) is logged and tried again
// after the pause. It returns nil when ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Store == nil || cfg.Build == nil {
		return errors.New("outboxrelay: Store and Build are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 250 * time.Millisecond
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 100
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	t := time.NewTimer(0)
	defer t.Stop()
	pause := cfg.Interval
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		full, err := Pass(ctx, cfg)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			// The database is down or failing: one line per try, the tries slowing to one every
			// 10 s, rather than four lines a second.
			cfg.Logger.Error("relay the outbox", "err", err, "retry_in", pause)
			t.Reset(pause)
			pause = min(pause*2, max(10*time.Second, cfg.Interval))
			continue
		}
		pause = cfg.Interval
		if full {
			t.Reset(0)
		} else {
			t.Reset(cfg.Interval)
		}
	}
}

// Pass relays one batch and reports whether it was full (more rows may be due). Run calls it;
// tests call it to relay without waiting. cfg's zero values are not defaulted here except Batch.
func Pass(ctx context.Context, cfg Config) (full bool, err error) {
	batch := cfg.Batch
	if batch <= 0 {
		batch = 100
	}
	res, err := cfg.Store.RelayOutbox(ctx, batch, func(ctx context.Context, row postgres.OutboxRow) (*store.Event, error) {
		in, err := Input(row)
		if err != nil {
			return nil, err
		}
		ev, err := cfg.Build(ctx, in)
		if errors.Is(err, store.ErrUnavailable) {
			// The event could not be checked (its type could not be read): not a refusal, so the
			// pass ends and the row waits, untouched, for the next one.
			return nil, err
		}
		if err != nil {
			return nil, described{err}
		}
		return ev, nil
	})
	if err != nil {
		return false, err
	}
	var wake []string
	for _, r := range res.Published {
		if !r.Duplicate {
			wake = append(wake, r.EndpointIDs...)
			cfg.Metrics.EventsPublished(r.Event.TenantID, 1)
		}
	}
	for _, row := range res.Failed {
		cfg.Metrics.OutboxRefused(row.TenantID)
	}
	if len(wake) > 0 && cfg.Notify != nil {
		cfg.Notify(wake...)
	}
	if log := cfg.Logger; log != nil {
		for i, row := range res.Failed {
			log.Warn("outbox event refused; it stays in the outbox and is tried again", "tenant", row.TenantID, "event", row.EventID,
				"event_type", row.Type, "attempt", row.Attempts+1, "err", res.Errors[i])
		}
	}
	return res.Rows >= batch, nil
}

// Input is the publish an outbox row stands for.
func Input(row postgres.OutboxRow) (event.Input, error) {
	in := event.Input{ID: row.EventID, Type: row.Type, Data: event.Object(row.Data), Source: row.Source, Priority: row.Priority}
	if len(row.Resource) > 0 {
		in.Resource = &event.Resource{}
		if err := json.Unmarshal(row.Resource, in.Resource); err != nil {
			return event.Input{}, fmt.Errorf("resource is not a JSON object: %w", err)
		}
	}
	if !json.Valid(row.Data) {
		return event.Input{}, errors.New("data is not valid JSON")
	}
	return in, nil
}

// Describe writes a build error for last_error: the problem's detail and each failing place.
func Describe(err error) string {
	var em *huma.ErrorModel
	if !errors.As(err, &em) || len(em.Errors) == 0 {
		return err.Error()
	}
	var b strings.Builder
	b.WriteString(em.Detail)
	for i, d := range em.Errors {
		sep := ": "
		if i > 0 {
			sep = "; "
		}
		b.WriteString(sep)
		if loc := strings.TrimPrefix(d.Location, "."); loc != "" {
			b.WriteString(loc + ": ")
		}
		b.WriteString(d.Message)
	}
	return b.String()
}

// described is a build error that reads as Describe writes it.
type described struct{ err error }

func (d described) Error() string { return Describe(d.err) }
func (d described) Unwrap() error { return d.err }
