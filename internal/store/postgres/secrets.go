package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/store"
)

// sourcePhase splits RekeySecrets' cursor: below it a position is the last endpoint done; at or
// above it, sourcePhase plus the last source done. One pass with one cursor thus re-encrypts
// the endpoints, then the sources, and its callers need not know there are two kinds.
const sourcePhase = 1 << 62

// brokerPhase follows the sources: at or above it, brokerPhase plus the last broker source done.
const brokerPhase = 3 << 61

// RekeySecrets re-encrypts one page of endpoints' secrets, or of sources' tokens and settings,
// with the current key (see store.Store). Each row is updated only if unchanged since the read,
// so that nodes running passes at once, or an API call rotating a secret meanwhile, lose nothing.
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
	rows, err := s.pool.Query(ctx, `SELECT seq, id, secrets::text, settings_secrets FROM endpoints WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return 0, "", fmt.Errorf("rekey secrets: %w", err)
	}
	type row struct {
		seq                   int64
		id, secrets, settings string
	}
	read, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.seq, &x.id, &x.secrets, &x.settings)
		return x, err
	})
	if err != nil {
		return 0, "", fmt.Errorf("rekey secrets: %w", err)
	}
	next := store.EncodeCursor(sourcePhase) // the endpoints are done: the sources are next
	if len(read) == limit {
		next = store.EncodeCursor(read[len(read)-1].seq)
	}
	type change struct{ id, old, new, oldSettings, newSettings string }
	var changes []change
	for _, x := range read {
		fresh, err := store.ResealSecrets(s.keys, x.id, []byte(x.secrets))
		if err != nil {
			return 0, "", fmt.Errorf("rekey secrets: %w", err)
		}
		freshSettings, err := store.ResealEndpointSettings(s.keys, x.id, x.settings)
		if err != nil {
			return 0, "", fmt.Errorf("rekey secrets: %w", err)
		}
		if fresh != nil || freshSettings != "" {
			c := change{id: x.id, old: x.secrets, new: x.secrets, oldSettings: x.settings, newSettings: x.settings}
			if fresh != nil {
				c.new = string(fresh)
			}
			if freshSettings != "" {
				c.newSettings = freshSettings
			}
			changes = append(changes, c)
		}
	}
	if len(changes) == 0 {
		return 0, next, nil
	}
	done, err := s.updateInTx(ctx, "rekey endpoints", func(b *pgx.Batch) {
		for _, c := range changes {
			b.Queue(`UPDATE endpoints SET secrets = $1, settings_secrets = $4 WHERE id = $2 AND secrets = $3::jsonb AND settings_secrets = $5`,
				c.new, c.id, c.old, c.newSettings, c.oldSettings)
		}
	})
	if err != nil {
		return 0, "", err
	}
	return done, next, nil
}

// rekeySources re-encrypts the tokens and settings of one page of sources, those after the
// source at position after, with the current key.
func (s *Store) rekeySources(ctx context.Context, after int64, limit int) (int, string, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, id, token, settings FROM sources WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return 0, "", fmt.Errorf("rekey sources: %w", err)
	}
	type change struct {
		seq                                        int64
		id, oldToken, oldSettings, token, settings string
	}
	read, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (change, error) {
		var c change
		err := r.Scan(&c.seq, &c.id, &c.oldToken, &c.oldSettings)
		return c, err
	})
	if err != nil {
		return 0, "", fmt.Errorf("rekey sources: %w", err)
	}
	next := store.EncodeCursor(brokerPhase) // the sources are done: the broker sources are next
	if len(read) == limit {
		next = store.EncodeCursor(sourcePhase + read[len(read)-1].seq)
	}
	var changes []change
	for _, c := range read {
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
	if len(changes) == 0 {
		return 0, next, nil
	}
	done, err := s.updateInTx(ctx, "rekey sources", func(b *pgx.Batch) {
		for _, c := range changes {
			b.Queue(`UPDATE sources SET token = $1, settings = $2 WHERE id = $3 AND token = $4 AND settings = $5`,
				c.token, c.settings, c.id, c.oldToken, c.oldSettings)
		}
	})
	if err != nil {
		return 0, "", err
	}
	return done, next, nil
}

// rekeyBrokerSources re-encrypts the settings of one page of broker sources, those after the
// one at position after, with the current key.
func (s *Store) rekeyBrokerSources(ctx context.Context, after int64, limit int) (int, string, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, id, settings FROM broker_sources WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return 0, "", fmt.Errorf("rekey broker sources: %w", err)
	}
	type change struct {
		seq          int64
		id, old, new string
	}
	read, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (change, error) {
		var c change
		err := r.Scan(&c.seq, &c.id, &c.old)
		return c, err
	})
	if err != nil {
		return 0, "", fmt.Errorf("rekey broker sources: %w", err)
	}
	next := ""
	if len(read) == limit {
		next = store.EncodeCursor(brokerPhase + read[len(read)-1].seq)
	}
	var changes []change
	for _, c := range read {
		fresh, err := store.ResealBrokerSettings(s.keys, c.id, c.old)
		if err != nil {
			return 0, "", fmt.Errorf("rekey broker sources: %w", err)
		}
		if fresh != "" {
			c.new = fresh
			changes = append(changes, c)
		}
	}
	if len(changes) == 0 {
		return 0, next, nil
	}
	done, err := s.updateInTx(ctx, "rekey broker sources", func(b *pgx.Batch) {
		for _, c := range changes {
			// Only if unchanged since the read: a concurrent update sealed its settings already.
			b.Queue(`UPDATE broker_sources SET settings = $1 WHERE id = $2 AND settings = $3`, c.new, c.id, c.old)
		}
	})
	if err != nil {
		return 0, "", err
	}
	return done, next, nil
}

// updateInTx runs the statements queue adds as one batch in one transaction, and returns how
// many rows they changed in all. The batch is built afresh if the transaction is run again.
func (s *Store) updateInTx(ctx context.Context, what string, queue func(b *pgx.Batch)) (int, error) {
	var done int
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		done = 0
		b := &pgx.Batch{}
		queue(b)
		br := tx.SendBatch(ctx, b)
		for range b.Len() {
			tag, err := br.Exec()
			if err != nil {
				_ = br.Close()
				return fmt.Errorf("%s: %w", what, err)
			}
			done += int(tag.RowsAffected())
		}
		return br.Close()
	})
	return done, err
}
