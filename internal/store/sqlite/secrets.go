package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/heraldhq/herald/internal/store"
)

// sourcePhase splits RekeySecrets' cursor: below it a position is the last endpoint done; at or
// above it, sourcePhase plus the last source done. One pass with one cursor thus re-encrypts
// the endpoints, then the sources, and its callers need not know there are two kinds.
const sourcePhase = 1 << 62

// brokerPhase follows the sources: at or above it, brokerPhase plus the last broker source done.
const brokerPhase = 3 << 61

// RekeySecrets re-encrypts one page of endpoints' secrets, or of sources' tokens and settings,
// with the current key (see store.Store). When it rewrote any, it checkpoints the WAL and
// truncates it, so that the values it replaced (plaintext from an earlier version, or ciphertext
// of a retired key) do not linger in the WAL; secure_delete on the write connection has zeroed
// them in the database's pages.
func (s *Store) RekeySecrets(ctx context.Context, p store.Page) (int, string, error) {
	if s.keys == nil {
		return 0, "", fmt.Errorf("rekey secrets: %w", store.ErrNoEncryptionKey)
	}
	after, err := store.DecodeCursor(p.Cursor)
	if err != nil {
		return 0, "", err
	}
	limit := p.Clamp()
	if after >= brokerPhase {
		return s.rekeyBrokerSources(ctx, after-brokerPhase, limit)
	}
	if after >= sourcePhase {
		return s.rekeySources(ctx, after-sourcePhase, limit)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT rowid, id, secrets, settings_secrets FROM endpoints WHERE rowid > ? ORDER BY rowid LIMIT ?`, after, limit)
	if err != nil {
		return 0, "", fmt.Errorf("rekey secrets: %w", err)
	}
	defer rows.Close()
	type change struct{ id, old, new, oldSettings, newSettings string }
	var changes []change
	var last int64
	n := 0
	for rows.Next() {
		var id, secrets, settings string
		if err := rows.Scan(&last, &id, &secrets, &settings); err != nil {
			return 0, "", fmt.Errorf("rekey secrets: %w", err)
		}
		n++
		fresh, err := store.ResealSecrets(s.keys, id, []byte(secrets))
		if err != nil {
			return 0, "", fmt.Errorf("rekey secrets: %w", err)
		}
		freshSettings, err := store.ResealEndpointSettings(s.keys, id, settings)
		if err != nil {
			return 0, "", fmt.Errorf("rekey secrets: %w", err)
		}
		if fresh != nil || freshSettings != "" {
			c := change{id: id, old: secrets, new: secrets, oldSettings: settings, newSettings: settings}
			if fresh != nil {
				c.new = string(fresh)
			}
			if freshSettings != "" {
				c.newSettings = freshSettings
			}
			changes = append(changes, c)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, "", fmt.Errorf("rekey secrets: %w", err)
	}
	next := store.EncodeCursor(sourcePhase) // the endpoints are done: the sources are next
	if n == limit {
		next = store.EncodeCursor(last)
	}
	if len(changes) == 0 {
		return 0, next, nil
	}
	updates := make([]rekeyed, len(changes))
	for i, c := range changes {
		// Only if unchanged since the read: a concurrent update sealed its secrets already.
		updates[i] = rekeyed{what: "endpoint " + c.id, query: `UPDATE endpoints SET secrets = ?, settings_secrets = ? WHERE id = ? AND secrets = ? AND settings_secrets = ?`,
			args: []any{c.new, c.newSettings, c.id, c.old, c.oldSettings}}
	}
	done, err := s.writeRekeyed(ctx, updates)
	return done, next, err
}

// rekeySources re-encrypts the tokens and settings of one page of sources, those after the
// source at position after, with the current key.
func (s *Store) rekeySources(ctx context.Context, after int64, limit int) (int, string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT seq, id, token, settings FROM sources WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return 0, "", fmt.Errorf("rekey sources: %w", err)
	}
	defer rows.Close()
	type change struct{ id, oldToken, oldSettings, token, settings string }
	var changes []change
	var last int64
	n := 0
	for rows.Next() {
		var c change
		if err := rows.Scan(&last, &c.id, &c.oldToken, &c.oldSettings); err != nil {
			return 0, "", fmt.Errorf("rekey sources: %w", err)
		}
		n++
		if s.keys.IsCurrent(c.oldToken) && s.keys.IsCurrent(c.oldSettings) {
			continue
		}
		src := store.Source{ID: c.id}
		if err := store.DecodeSource(s.keys, &src, []byte(c.oldToken), []byte(c.oldSettings)); err != nil {
			return 0, "", fmt.Errorf("rekey sources: %w", err)
		}
		token, settings, err := store.EncodeSource(s.keys, &src)
		if err != nil {
			return 0, "", fmt.Errorf("rekey sources: %w", err)
		}
		c.token, c.settings = string(token), string(settings)
		changes = append(changes, c)
	}
	if err := rows.Err(); err != nil {
		return 0, "", fmt.Errorf("rekey sources: %w", err)
	}
	next := store.EncodeCursor(brokerPhase) // the sources are done: the broker sources are next
	if n == limit {
		next = store.EncodeCursor(sourcePhase + last)
	}
	if len(changes) == 0 {
		return 0, next, nil
	}
	updates := make([]rekeyed, len(changes))
	for i, c := range changes {
		// Only if unchanged since the read: a concurrent update sealed its values already.
		updates[i] = rekeyed{what: "source " + c.id, query: `UPDATE sources SET token = ?, settings = ? WHERE id = ? AND token = ? AND settings = ?`,
			args: []any{c.token, c.settings, c.id, c.oldToken, c.oldSettings}}
	}
	done, err := s.writeRekeyed(ctx, updates)
	return done, next, err
}

// rekeyed is one row a rekey pass rewrites: an UPDATE that applies only if the row is unchanged
// since it was read.
type rekeyed struct {
	what, query string
	args        []any
}

// writeRekeyed applies a page of rekey updates in one write and returns how many applied; after
// any, it checkpoints the log so that the old ciphertexts leave it. Best effort: a reader holding
// an old snapshot keeps the log from being reset; the next pass, or the checkpointer, overwrites it.
func (s *Store) writeRekeyed(ctx context.Context, updates []rekeyed) (int, error) {
	var done int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		done = 0
		for _, u := range updates {
			res, err := tx.ExecContext(ctx, u.query, u.args...)
			if err != nil {
				return fmt.Errorf("rekey %s: %w", u.what, err)
			}
			k, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("rekey %s: %w", u.what, err)
			}
			done += k
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if done > 0 {
		_, _ = s.r.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	}
	return int(done), nil
}

// rekeyBrokerSources re-encrypts the settings of one page of broker sources, those after the
// one at position after, with the current key.
func (s *Store) rekeyBrokerSources(ctx context.Context, after int64, limit int) (int, string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT seq, id, settings FROM broker_sources WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return 0, "", fmt.Errorf("rekey broker sources: %w", err)
	}
	defer rows.Close()
	type change struct{ id, old, new string }
	var changes []change
	var last int64
	n := 0
	for rows.Next() {
		var c change
		if err := rows.Scan(&last, &c.id, &c.old); err != nil {
			return 0, "", fmt.Errorf("rekey broker sources: %w", err)
		}
		n++
		fresh, err := store.ResealBrokerSettings(s.keys, c.id, c.old)
		if err != nil {
			return 0, "", fmt.Errorf("rekey broker sources: %w", err)
		}
		if fresh != "" {
			c.new = fresh
			changes = append(changes, c)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, "", fmt.Errorf("rekey broker sources: %w", err)
	}
	next := ""
	if n == limit {
		next = store.EncodeCursor(brokerPhase + last)
	}
	if len(changes) == 0 {
		return 0, next, nil
	}
	updates := make([]rekeyed, len(changes))
	for i, c := range changes {
		// Only if unchanged since the read: a concurrent update sealed its settings already.
		updates[i] = rekeyed{what: "broker source " + c.id, query: `UPDATE broker_sources SET settings = ? WHERE id = ? AND settings = ?`,
			args: []any{c.new, c.id, c.old}}
	}
	done, err := s.writeRekeyed(ctx, updates)
	return done, next, err
}
