package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/store"
)

// RekeySecrets re-encrypts one page of endpoints' secrets with the current key (see store.Store).
// Each endpoint is updated only if its secrets are unchanged since the read, so that nodes
// running passes at once, or an API call rotating a secret meanwhile, lose nothing.
func (s *Store) RekeySecrets(ctx context.Context, p store.Page) (int, string, error) {
	if s.keys == nil {
		return 0, "", fmt.Errorf("rekey secrets: %w", store.ErrNoEncryptionKey)
	}
	after, err := store.DecodeCursor(p.Cursor)
	if err != nil {
		return 0, "", err
	}
	limit := p.Clamp()
	rows, err := s.pool.Query(ctx, `SELECT seq, id, secrets::text FROM endpoints WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return 0, "", fmt.Errorf("rekey secrets: %w", err)
	}
	type row struct {
		seq         int64
		id, secrets string
	}
	read, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.seq, &x.id, &x.secrets)
		return x, err
	})
	if err != nil {
		return 0, "", fmt.Errorf("rekey secrets: %w", err)
	}
	next := ""
	if len(read) == limit {
		next = store.EncodeCursor(read[len(read)-1].seq)
	}
	type change struct{ id, old, new string }
	var changes []change
	for _, x := range read {
		fresh, err := store.ResealSecrets(s.keys, x.id, []byte(x.secrets))
		if err != nil {
			return 0, "", fmt.Errorf("rekey secrets: %w", err)
		}
		if fresh != nil {
			changes = append(changes, change{id: x.id, old: x.secrets, new: string(fresh)})
		}
	}
	if len(changes) == 0 {
		return 0, next, nil
	}
	var done int
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		done = 0
		b := &pgx.Batch{}
		for _, c := range changes {
			b.Queue(`UPDATE endpoints SET secrets = $1 WHERE id = $2 AND secrets = $3::jsonb`, c.new, c.id, c.old)
		}
		br := tx.SendBatch(ctx, b)
		for _, c := range changes {
			tag, err := br.Exec()
			if err != nil {
				_ = br.Close()
				return fmt.Errorf("rekey endpoint %s: %w", c.id, err)
			}
			done += int(tag.RowsAffected())
		}
		return br.Close()
	})
	if err != nil {
		return 0, "", err
	}
	return done, next, nil
}
