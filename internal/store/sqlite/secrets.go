package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/heraldhq/herald/internal/store"
)

// RekeySecrets re-encrypts one page of endpoints' secrets with the current key (see store.Store).
// When it rewrote any, it checkpoints the WAL and truncates it, so that the values it replaced
// (plaintext from an earlier version, or ciphertext of a retired key) do not linger in the WAL;
// secure_delete on the write connection has zeroed them in the database's pages.
func (s *Store) RekeySecrets(ctx context.Context, p store.Page) (int, string, error) {
	if s.keys == nil {
		return 0, "", fmt.Errorf("rekey secrets: %w", store.ErrNoEncryptionKey)
	}
	after, err := store.DecodeCursor(p.Cursor)
	if err != nil {
		return 0, "", err
	}
	limit := p.Clamp()
	rows, err := s.r.QueryContext(ctx, `SELECT rowid, id, secrets FROM endpoints WHERE rowid > ? ORDER BY rowid LIMIT ?`, after, limit)
	if err != nil {
		return 0, "", fmt.Errorf("rekey secrets: %w", err)
	}
	defer rows.Close()
	type change struct{ id, old, new string }
	var changes []change
	var last int64
	n := 0
	for rows.Next() {
		var id, secrets string
		if err := rows.Scan(&last, &id, &secrets); err != nil {
			return 0, "", fmt.Errorf("rekey secrets: %w", err)
		}
		n++
		fresh, err := store.ResealSecrets(s.keys, id, []byte(secrets))
		if err != nil {
			return 0, "", fmt.Errorf("rekey secrets: %w", err)
		}
		if fresh != nil {
			changes = append(changes, change{id: id, old: secrets, new: string(fresh)})
		}
	}
	if err := rows.Err(); err != nil {
		return 0, "", fmt.Errorf("rekey secrets: %w", err)
	}
	next := ""
	if n == limit {
		next = store.EncodeCursor(last)
	}
	if len(changes) == 0 {
		return 0, next, nil
	}
	var done int64
	err = s.write(ctx, func(tx *sql.Tx) error {
		done = 0
		for _, c := range changes {
			// Only if unchanged since the read: a concurrent update sealed its secrets already.
			res, err := tx.ExecContext(ctx, `UPDATE endpoints SET secrets = ? WHERE id = ? AND secrets = ?`, c.new, c.id, c.old)
			if err != nil {
				return fmt.Errorf("rekey endpoint %s: %w", c.id, err)
			}
			k, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("rekey endpoint %s: %w", c.id, err)
			}
			done += k
		}
		return nil
	})
	if err != nil {
		return 0, "", err
	}
	if done > 0 {
		// Best effort: a reader holding an old snapshot keeps the WAL from being reset; the next
		// pass, or SQLite's own checkpoints, will overwrite it.
		_, _ = s.r.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	}
	return int(done), next, nil
}
