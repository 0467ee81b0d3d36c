package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// The writer never checkpoints the write-ahead log. SQLite's automatic checkpoint runs inside
// the commit that takes the log past 1,000 pages: that commit, and every publish waiting in its
// group, waits while the checkpoint copies the log into the database file and fsyncs it. Under a
// tenant writing large events that is one commit a second stalled for tens of milliseconds, the
// other tenants' publish tail. Instead the write connection has wal_autocheckpoint(0), and a
// connection of its own runs PASSIVE checkpoints beside the writer: they copy what no reader
// still needs and never block the writer or the readers. SQLite restarts the log from its
// beginning at the next write once a checkpoint has copied all of it, so it does not grow
// without bound; journal_size_limit truncates a log file that a burst made large.
const (
	// checkpointEvery is how often the checkpointer looks at the log after writes.
	checkpointEvery = 200 * time.Millisecond
	// journalSizeLimit is the size a log file is truncated to after it restarts.
	journalSizeLimit = 64 << 20
)

// checkpointer runs PASSIVE checkpoints on ck while the store is open: after writes, at most every
// checkpointEvery. It returns when quit is closed.
func (s *Store) checkpointer(ck *sql.DB) {
	defer close(s.ckDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	again := false // the last checkpoint failed or left pages behind
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		select {
		case <-s.wrote:
		default:
			if !again {
				continue // nothing written since the last complete checkpoint
			}
		}
		left, err := s.checkpoint(ck)
		if err != nil {
			// A failed checkpoint loses nothing (the log keeps every frame); the next tick
			// tries again, written to or not: on a full disk the log must be copied back
			// before the writer can restart it and write again.
			s.log.Warn("sqlite checkpoint failed", "err", err)
		}
		again = err != nil || left > 0
	}
}

// checkpoint runs one PASSIVE checkpoint and returns the pages left in the log after it.
func (s *Store) checkpoint(ck *sql.DB) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var busy, logPages, copied int
	if err := ck.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logPages, &copied); err != nil {
		return 0, fmt.Errorf("wal_checkpoint: %w", err)
	}
	return logPages - copied, nil
}

// noteCommit tells the checkpointer the log grew (the writer goroutine, after a commit).
func (s *Store) noteCommit() {
	select {
	case s.wrote <- struct{}{}:
	default:
	}
}
