package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/heraldhq/herald/internal/store"
)

// EventsAfter lists a tenant's events after a position, oldest first (see store.Store).
//
// SQLite has one writer, which hands out seq in the order it commits: a reader never sees an
// event while one with a lower seq is still to commit, so seq is a safe position as it is. (A
// rolled-back insert frees its seq, but nobody saw it.) One caveat: without AUTOINCREMENT, SQLite
// gives a new row the highest rowid plus one, so when retention has deleted every event of the
// whole database, seqs start again from 1 and a cursor kept from before skips as many events as
// it was ahead.
func (s *Store) EventsAfter(ctx context.Context, tenantID string, after int64, patterns []string, limit int) ([]store.FeedEvent, error) {
	var w where
	w.add("tenant_id = ?", tenantID)
	w.add("seq > ?", after)
	if p := store.SplitPatterns(patterns); !p.All {
		var or []string
		for _, name := range p.Exact {
			or = append(or, "type = ?")
			w.args = append(w.args, name)
		}
		for i, prefix := range p.Prefixes {
			or = append(or, "substr(type, 1, ?) = ?")
			w.args = append(w.args, p.Lengths[i], prefix)
		}
		w.conds = append(w.conds, "("+strings.Join(or, " OR ")+")")
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, id, type, ts, source, payload, created_at FROM events WHERE `+w.String()+
		` ORDER BY seq LIMIT ?`, append(w.args, store.ClampFeed(limit))...)
	if err != nil {
		return nil, fmt.Errorf("events after %d: %w", after, err)
	}
	defer rows.Close()
	var out []store.FeedEvent
	// Rows are stepped one at a time: stopping at store.MaxFeedBytes reads no further.
	for size := 0; size < store.MaxFeedBytes && rows.Next(); {
		var ev store.FeedEvent
		var ts, c int64
		if err := rows.Scan(&ev.Position, &ev.ID, &ev.Type, &ts, &ev.Source, &ev.Payload, &c); err != nil {
			return nil, fmt.Errorf("events after %d: %w", after, err)
		}
		ev.TenantID, ev.Timestamp, ev.CreatedAt = tenantID, fromMicros(ts), fromMicros(c)
		out = append(out, ev)
		size += len(ev.Payload)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events after %d: %w", after, err)
	}
	return out, nil
}

// LatestPosition is the seq of the tenant's newest event (see store.Store).
func (s *Store) LatestPosition(ctx context.Context, tenantID string) (int64, error) {
	var pos int64
	if err := s.r.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM events WHERE tenant_id = ?`, tenantID).Scan(&pos); err != nil {
		return 0, fmt.Errorf("latest position of %s: %w", tenantID, err)
	}
	return pos, nil
}
