package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/store"
)

var _ store.Heartbeater = (*Store)(nil)

// reapDead marks fenced every node (but this one, $2) whose heartbeat ended before $1, takes its
// lanes away and voids the leases of their endpoints' deliveries ($3 is now): only a lane's
// holder leases its endpoint's deliveries (a lane outlasts the leases taken under it), so every
// lease in force on those endpoints is the dead node's. It returns the endpoints freed that have
// due work, to be woken (notifyFreed). Nodes are locked in id order, lanes in endpoint order, as
// claims lock them, so that two nodes reaping at once do not deadlock.
const reapDead = `WITH dead AS (
		UPDATE nodes n SET fenced = true, until = '-infinity'
		FROM (SELECT node_id FROM nodes WHERE alive_until < $1 AND NOT fenced AND node_id <> $2
			ORDER BY node_id FOR UPDATE SKIP LOCKED) d
		WHERE n.node_id = d.node_id
		RETURNING n.node_id
	), lost AS (
		DELETE FROM lanes l USING (SELECT endpoint_id FROM lanes WHERE node_id IN (SELECT node_id FROM dead)
			ORDER BY endpoint_id FOR UPDATE) r
		WHERE l.endpoint_id = r.endpoint_id AND l.node_id IN (SELECT node_id FROM dead)
		RETURNING l.endpoint_id
	), voided AS (
		UPDATE deliveries SET lease_until = '-infinity'
		WHERE endpoint_id IN (SELECT endpoint_id FROM lost) AND state = 0 AND lease_until > $3
		RETURNING endpoint_id
	)
	SELECT endpoint_id FROM lost
	UNION SELECT endpoint_id FROM voided`

// Heartbeat implements store.Heartbeater: it records this node alive until `until`, reads back
// whether another node fenced it since its previous heartbeat (and if so forgets every lease and
// lane it thought it held: they were voided), and reaps the nodes whose heartbeat ended before
// dead. It holds the claim lock, so that no claim taken before a fencing is counted as held after it.
func (s *Store) Heartbeat(ctx context.Context, now, until, dead time.Time) (bool, error) {
	s.lanes.claimMu.Lock()
	defer s.lanes.claimMu.Unlock()
	var fenced bool
	var freed []string
	err := s.sendBatch(ctx, func() *pgx.Batch {
		fenced = false
		freed = freed[:0]
		b := &pgx.Batch{}
		b.Queue(lazyCommit)
		b.Queue(`SELECT fenced FROM nodes WHERE node_id = $1 FOR UPDATE`, s.node).QueryRow(func(r pgx.Row) error {
			err := r.Scan(&fenced)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			return err
		})
		// A fenced node counts again among the nodes alive (until) from its next renewal.
		b.Queue(`INSERT INTO nodes (node_id, until, alive_until) VALUES ($1, $2, $2)
			ON CONFLICT (node_id) DO UPDATE SET alive_until = greatest(nodes.alive_until, excluded.alive_until), fenced = false`,
			s.node, until)
		b.Queue(reapDead, dead, s.node, now).Query(collectFreed(&freed))
		return b
	})
	if err != nil {
		return false, fmt.Errorf("heartbeat: %w", err)
	}
	if fenced {
		s.held.clear()
		clear(s.lanes.mine)
	}
	s.notifyFreed(freed)
	return fenced, nil
}
