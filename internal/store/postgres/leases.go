package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/store"
)

// Leases live in rows: deliveries.lease_until is when the claim of an attempt in flight expires,
// -infinity when there is none. Every process claims with FOR UPDATE SKIP LOCKED, so two claims
// never take the same delivery: one skips the rows the other has locked, and a row the other has
// leased since this claim's snapshot was taken is re-checked on its newest version (READ
// COMMITTED re-evaluates the WHERE of a locked row) and then fails lease_until <= now. A result or
// a release clears the lease in the same statement that changes the row, so no claim can take a
// delivery whose result was just committed (the SQLite driver needs its deferred releases for that).
//
// All times compared with lease_until are the callers' (the dispatcher's clock), never the
// database's, so that the lease a process takes and the expiry it checks use one clock.

// laneCTEs renew this node's ($5) lane of endpoint $1 until $4, or take the lane if it is free
// (or its holder's time has passed), there is due work, and this node holds fewer lanes than its
// fair share: the lanes in force, plus the $6 this node holds or asks for, divided among the
// nodes alive (see lanes.go). If another node holds the lane, neither returns a row, and a claim
// takes nothing: one node at a time delivers to an endpoint, so its concurrency and rate limits
// hold across the cluster. A claim may renew or take the lane and then find nothing to lease
// (another node's rows, rows it skips as locked): the statement after it reads the lane back
// (laneState), so that the book holds what the table does whatever the claim took.
const laneCTEs = `mine AS (
		UPDATE lanes SET until = greatest(until, $4) WHERE endpoint_id = $1 AND node_id = $5
		RETURNING 1
	), taken AS (
		INSERT INTO lanes (endpoint_id, node_id, until)
		SELECT $1, $5, $4
		WHERE NOT EXISTS (SELECT 1 FROM mine)
			AND EXISTS (SELECT 1 FROM deliveries
				WHERE endpoint_id = $1 AND state = 0 AND next_attempt_at <= $2 AND lease_until <= $2)
			AND (SELECT count(*) FROM lanes WHERE node_id = $5 AND until > $2) <
				ceil(((SELECT count(*) FROM lanes WHERE node_id <> $5 AND until > $2) + $6)::numeric /
					greatest((SELECT count(*) FROM nodes WHERE until > $2), 1))
		ON CONFLICT (endpoint_id) DO UPDATE SET node_id = excluded.node_id, until = excluded.until
			WHERE lanes.until <= $2
		RETURNING 1
	)`

// leaseDue leases the rows of due (a CTE of ids, locked) until $4 and returns them with their
// events, by rank.
var leaseDue = `leased AS (
		UPDATE deliveries d SET lease_until = $4 FROM due WHERE d.id = due.id
		RETURNING d.id, d.attempts, d.tries, d.event_seq, d.next_attempt_at, d.priority
	)
	SELECT l.id, l.attempts, l.tries, e.id, e.type, e.ts, e.payload, e.traceparent, e.tracestate
	FROM leased l JOIN events e ON e.seq = l.event_seq
	ORDER BY ` + rank("l.") + `, l.id`

// rank is a delivery's rank in a claim (store.ClaimRequest): its due time set back by its
// priority's delay.
func rank(prefix string) string {
	return fmt.Sprintf(`%[1]snext_attempt_at + CASE %[1]spriority WHEN %[2]d THEN interval '%[3]d microseconds' WHEN %[4]d THEN interval '%[5]d microseconds'
		ELSE interval '%[6]d microseconds' END`, prefix, store.PriorityHigh, store.PriorityDelay(store.PriorityHigh).Microseconds(),
		store.PriorityLow, store.PriorityDelay(store.PriorityLow).Microseconds(), store.PriorityDelay(store.PriorityNormal).Microseconds())
}

// byPriority is up to limit pending, unleased deliveries of endpoint $1 of each priority that
// match cond, each priority oldest first: three short scans of the (endpoint_id, priority,
// next_attempt_at, id) index rather than a sort of every due delivery. Rows are (id, rank,
// next_attempt_at).
func byPriority(cond, limit string) string {
	var b strings.Builder
	for p := store.PriorityHigh; p <= store.PriorityLow; p++ {
		if p > store.PriorityHigh {
			b.WriteString(" UNION ALL ")
		}
		fmt.Fprintf(&b, `(SELECT id, next_attempt_at + interval '%d microseconds' AS rank, next_attempt_at FROM deliveries
			WHERE endpoint_id = $1 AND state = 0 AND priority = %d AND %s AND lease_until <= $2
			ORDER BY next_attempt_at, id LIMIT %s)`, store.PriorityDelay(p).Microseconds(), p, cond, limit)
	}
	return b.String()
}

// claim leases up to $3 due, unleased deliveries of endpoint $1 until $4, by rank (the
// candidates are read without locks, then the chosen ones locked and checked again), and
// returns them with their events, if this node ($5) holds the endpoint's lane (laneCTEs).
var claim = `WITH ` + laneCTEs + `, cand AS (
		` + byPriority("next_attempt_at <= $2", "$3") + `
	), due AS (
		SELECT id FROM deliveries
		WHERE id IN (SELECT id FROM cand ORDER BY rank, id LIMIT $3)
			AND state = 0 AND next_attempt_at <= $2 AND lease_until <= $2
			AND (EXISTS (SELECT 1 FROM mine) OR EXISTS (SELECT 1 FROM taken))
		ORDER BY id
		FOR UPDATE SKIP LOCKED
	), ` + leaseDue

// claimOrdered leases endpoint $1's first pending delivery in publish order, if it is due and
// not leased (and $3 > 0): no later delivery overtakes an earlier one, even one waiting for its
// retry.
var claimOrdered = `WITH ` + laneCTEs + `, first AS (
		SELECT id FROM deliveries WHERE endpoint_id = $1 AND state = 0 ORDER BY id LIMIT 1
	), due AS (
		SELECT id FROM deliveries
		WHERE id = (SELECT id FROM first) AND state = 0 AND next_attempt_at <= $2 AND lease_until <= $2 AND $3::int > 0
			AND (EXISTS (SELECT 1 FROM mine) OR EXISTS (SELECT 1 FROM taken))
		FOR UPDATE SKIP LOCKED
	), ` + leaseDue

// holdLane takes or renews the lane as a claim does, in a batching claim's transaction.
const holdLane = `WITH ` + laneCTEs + ` SELECT $3::int > 0 AND (EXISTS (SELECT 1 FROM mine) OR EXISTS (SELECT 1 FROM taken))`

// laneState reads, in the claim's transaction and after it, this node's ($3) lane of endpoint $1
// at $2 (laneBook.read): when it ends, NULL if this node does not hold it; whether another node
// holds it; and, if this node does not, whether the endpoint has due work no one has leased,
// which then waits for the lane (store.ClaimResult.LaneWait).
const laneState = `lane.until, EXISTS (SELECT 1 FROM lanes WHERE endpoint_id = $1 AND node_id <> $3 AND until > $2),
	CASE WHEN lane.until IS NULL THEN EXISTS (SELECT 1 FROM deliveries
		WHERE endpoint_id = $1 AND state = 0 AND next_attempt_at <= $2 AND lease_until <= $2) ELSE false END
	FROM (SELECT (SELECT until FROM lanes WHERE endpoint_id = $1 AND node_id = $3 AND until > $2) AS until) lane`

// releaseLanes deletes this node's ($1) lanes of the endpoints $2, and releaseLanesBut those of
// every other endpoint, locked in endpoint order as claims lock them; both return the endpoints
// of those with due work no one has leased at $3: another node may be waiting for their lanes
// (notifyFreed).
var (
	releaseLanes    = releaseLanesWhere(`endpoint_id = ANY($2)`)
	releaseLanesBut = releaseLanesWhere(`endpoint_id <> ALL(coalesce($2::text[], '{}'))`)
)

func releaseLanesWhere(cond string) string {
	return `WITH gone AS (
		DELETE FROM lanes l USING (SELECT endpoint_id FROM lanes WHERE node_id = $1 AND ` + cond + ` ORDER BY endpoint_id FOR UPDATE) r
		WHERE l.endpoint_id = r.endpoint_id AND l.node_id = $1
		RETURNING l.endpoint_id
	)
	SELECT endpoint_id FROM gone g WHERE EXISTS (SELECT 1 FROM deliveries
		WHERE endpoint_id = g.endpoint_id AND state = 0 AND next_attempt_at <= $3 AND lease_until <= $3)`
}

// collectFreed appends the endpoints releaseLanes returns to freed.
func collectFreed(freed *[]string) func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		var err error
		*freed, err = pgx.AppendRows(*freed, rows, pgx.RowTo[string])
		return err
	}
}

// notifyFreed wakes the nodes (this one included) for endpoints whose lanes this node has let go
// of while they had due work, as a publish does: a node that could not take such a lane would
// otherwise look again only when the lane was due to end.
func (s *Store) notifyFreed(endpoints []string) {
	if s.notifier != nil {
		s.notifier.add(endpoints)
	}
}

// laneTerm is when another node's lane of endpoint $1 ends, if it has due work.
const laneTerm = `(SELECT until FROM lanes WHERE endpoint_id = $1 AND node_id <> $3 AND until > $2
		AND EXISTS (SELECT 1 FROM deliveries WHERE endpoint_id = $1 AND state = 0 AND next_attempt_at <= $2))`

// nextDue finds, with laneState, when endpoint $1 next has a delivery to claim after $2: the
// earliest of its unleased pending deliveries not yet due (of any priority), and the earliest lease to end among
// those due now but leased (another node's, perhaps a node that died: without this, its work
// would wait for a rescan instead of being taken over when the lease ends). Leased due rows are
// few, but finding them means reading every due row of the endpoint (8.9 ms at a backlog of
// 50,000), so they are looked for only when no due row is free: while one is, the lane has work
// now and the next claim looks again (0.8 ms for the same backlog).
var nextDue = func() string {
	q := `SELECT least(`
	for p := store.PriorityHigh; p <= store.PriorityLow; p++ {
		q += fmt.Sprintf(`(SELECT next_attempt_at FROM deliveries
		WHERE endpoint_id = $1 AND state = 0 AND priority = %d AND next_attempt_at > $2 AND lease_until <= $2
		ORDER BY next_attempt_at LIMIT 1), `, p)
	}
	return q + `CASE WHEN EXISTS (SELECT 1 FROM deliveries
			WHERE endpoint_id = $1 AND state = 0 AND next_attempt_at <= $2 AND lease_until <= $2) THEN NULL
		ELSE (SELECT min(lease_until) FROM deliveries
			WHERE endpoint_id = $1 AND state = 0 AND next_attempt_at <= $2 AND lease_until > $2) END, ` + laneTerm + `), ` + laneState
}()

// nextDueOrdered is nextDue for an ordered endpoint: when its first pending delivery is due, or
// its lease ends.
const nextDueOrdered = `SELECT least(
	(SELECT CASE WHEN next_attempt_at > $2 THEN next_attempt_at WHEN lease_until > $2 THEN lease_until END
		FROM deliveries WHERE endpoint_id = $1 AND state = 0 ORDER BY id LIMIT 1), ` + laneTerm + `), ` + laneState

// claimTimeout bounds a claim, which its caller's context does not cut short (ClaimDue).
const claimTimeout = 10 * time.Second

// ClaimDue leases due deliveries of several endpoints in one transaction and one round trip: a
// batch with a claim and a next-due query per endpoint.
func (s *Store) ClaimDue(ctx context.Context, now, leaseUntil time.Time, reqs []store.ClaimRequest) ([]store.ClaimResult, error) {
	// Claims and renewals take turns, so that a renewal never sees a lane this handle has just
	// taken without the leases taken with it.
	s.lanes.claimMu.Lock()
	defer s.lanes.claimMu.Unlock()
	// A claim is not cut short by ctx (a shutdown, say): one cancelled after its commit would
	// leave leases and lanes that this handle never learnt of, held by no one until they end.
	// claimTimeout bounds it instead; the caller gives back what it will not send.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
	defer cancel()
	plan := s.lanes.plan(now, reqs, s.held.byEndpoint)
	var out []store.ClaimResult
	var lanes []laneRead // what each request's statements read back of its lane
	var batched []int    // indexes of batching requests
	var freed []string   // lanes let go of that have due work
	err := s.sendBatch(ctx, func() *pgx.Batch {
		out = make([]store.ClaimResult, len(reqs))
		freed = freed[:0]
		lanes = make([]laneRead, len(reqs))
		batched = batched[:0]
		b := &pgx.Batch{}
		b.Queue(lazyCommit)
		if len(plan.release) > 0 {
			b.Queue(releaseLanes, s.node, plan.release, now).Query(collectFreed(&freed))
		}
		// Lanes are locked in endpoint order, whatever the order asked, so that two nodes
		// claiming overlapping sets of endpoints cannot deadlock on them.
		order := make([]int, len(reqs))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return strings.Compare(reqs[a].EndpointID, reqs[b].EndpointID) })
		for _, i := range order {
			req := reqs[i]
			res := &out[i]
			res.EndpointID = req.EndpointID
			if plan.shed[req.EndpointID] {
				// Over its share: this node lets the lane go (once its claims on it are done)
				// and looks again shortly, by when another node should have taken it.
				res.NextDue, res.LaneWait = now.Add(laneRetry), laneHandedOver
				continue
			}
			if req.Batch != nil && !req.Ordered {
				batched = append(batched, i) // in transactions of their own, below
				continue
			}
			claimQ, nextQ := claim, nextDue
			if req.Ordered {
				claimQ, nextQ = claimOrdered, nextDueOrdered
			}
			if req.Limit > 0 {
				b.Queue(claimQ, req.EndpointID, now, req.Limit, leaseUntil, s.node, plan.demand).Query(func(rows pgx.Rows) error {
					for rows.Next() {
						var c store.Claimed
						var payload []byte
						if err := rows.Scan(&c.DeliveryID, &c.Attempts, &c.Tries, &c.EventID, &c.EventType, &c.EventTime, &payload, &c.Traceparent, &c.Tracestate); err != nil {
							return err
						}
						c.Payload = payload
						res.Claimed = append(res.Claimed, c)
					}
					return rows.Err()
				})
			}
			// Queued whatever the claim finds (it costs one probe of the due index): the answer
			// is used only if the endpoint got fewer than it asked for, as in the SQLite driver.
			// It also reads the lane back, after the claim.
			lane := &lanes[i]
			b.Queue(nextQ, req.EndpointID, now, s.node).QueryRow(func(r pgx.Row) error {
				var next *time.Time // NULL when neither kind exists
				if err := r.Scan(&next, &lane.until, &lane.elsewhere, &lane.waiting); err != nil {
					return err
				}
				lane.read = true
				if next != nil && (len(res.Claimed) < req.Limit || req.Limit == 0) {
					res.NextDue = next.UTC()
				}
				return nil
			})
		}
		return b
	})
	if err != nil {
		// The book keeps what it had: if the batch committed nonetheless (its answer was lost),
		// the next heartbeat reads the lanes it took (RenewClaims).
		return nil, fmt.Errorf("claim: %w", err)
	}
	s.lanes.released(plan)
	s.notifyFreed(freed)
	for _, i := range batched {
		if plan.shed[reqs[i].EndpointID] {
			continue // as above
		}
		res, lane, err := s.claimBatches(ctx, reqs[i], now, leaseUntil, plan.demand)
		if err != nil {
			// Its transaction rolled back, so it took nothing; the claims of the other endpoints
			// stand (failing the call would lose them), and this one is asked again shortly.
			res = store.ClaimResult{EndpointID: reqs[i].EndpointID, NextDue: now.Add(time.Second)}
		}
		out[i], lanes[i] = res, lane
	}
	for i, req := range reqs {
		if lanes[i].read {
			s.lanes.read(req.EndpointID, lanes[i].until)
			lanes[i].explain(&out[i], req, now)
		}
	}
	s.hold(out, leaseUntil)
	return out, nil
}

// laneRead is what a claim read back of an endpoint's lane (laneState).
type laneRead struct {
	read      bool       // the statement ran
	until     *time.Time // this node's lane's end; nil: it does not hold it
	elsewhere bool       // another node holds it
	waiting   bool       // this node does not hold it and the endpoint has due work no one leased
}

// explain says why a claim that took nothing waits for the endpoint's lane, and when to ask
// again: when another node's lane ends (nextDue's laneTerm has set it), or, if no node holds it
// (this node is at its share), shortly, as a lane may free at any claim.
func (l laneRead) explain(res *store.ClaimResult, req store.ClaimRequest, now time.Time) {
	if !l.waiting || len(res.Claimed) > 0 || req.Limit == 0 {
		return
	}
	if l.elsewhere {
		res.LaneWait = laneHeldElsewhere
		return
	}
	res.LaneWait = laneOverShare
	res.NextDue = store.Earliest(res.NextDue, now.Add(laneRetry))
}

// hold records the leases of claims made.
func (s *Store) hold(out []store.ClaimResult, leaseUntil time.Time) {
	for _, res := range out {
		for _, c := range res.Claimed {
			s.held.add(c.DeliveryID, res.EndpointID, leaseUntil)
		}
	}
}

// Attempt rows keep what endpoints answered, which may be any bytes; PostgreSQL's text takes
// neither invalid UTF-8 nor NUL, and one such answer must not fail the results written with it.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// RecordResults writes attempts and the deliveries' new states, ends their leases, and tracks
// endpoints' failing streaks: one batch, one implicit transaction, committed without waiting for
// the WAL flush (losing it to a crash only repeats the attempts).
func (s *Store) RecordResults(ctx context.Context, results []store.Result) error {
	if len(results) == 0 {
		return nil
	}
	// Fenced on the lease: a result is written only for a lease this handle still holds, and
	// only if the row still has the lease end it last wrote. A node cut off from the database
	// whose leases ran out (another node took the deliveries over, and may have finished them)
	// overwrites nothing: its late results are reported as stale instead. Renewals stop while the
	// write runs; a write that fails puts the leases back as they were, for the retry.
	all := make([]int64, len(results))
	for i, r := range results {
		all[i] = r.DeliveryID
	}
	heldIDs, olds, alts := s.held.take(all)
	oldOf, altOf := make(map[int64]time.Time, len(heldIDs)), make(map[int64]time.Time, len(heldIDs))
	for i, id := range heldIDs {
		oldOf[id], altOf[id] = olds[i], alts[i]
	}
	var stale []int64
	kept := results[:0:0]
	for _, r := range results {
		if _, ok := oldOf[r.DeliveryID]; ok {
			kept = append(kept, r)
		} else {
			stale = append(stale, r.DeliveryID)
		}
	}
	results = kept
	if len(results) == 0 {
		return staleResults(stale)
	}
	succeeded := map[string]bool{}
	failedAt := map[string]time.Time{}
	for _, r := range results {
		if r.Attempt.Success {
			succeeded[r.EndpointID] = true
		} else if _, ok := failedAt[r.EndpointID]; !ok {
			failedAt[r.EndpointID] = r.Attempt.At
		}
	}
	// Endpoints first and in order, as DisableEndpoint locks an endpoint before its deliveries:
	// processes recording results at once then take their locks in one order and cannot deadlock.
	var endpoints []string
	for id := range succeeded {
		endpoints = append(endpoints, id)
	}
	for id := range failedAt {
		if !succeeded[id] {
			endpoints = append(endpoints, id)
		}
	}
	slices.Sort(endpoints)
	// Two set-based statements, whatever the number of results: the columns travel as arrays.
	// Rows are written in delivery order, so that two writers lock deliveries in one order.
	sorted := slices.Clone(results)
	slices.SortStableFunc(sorted, func(a, b store.Result) int { return cmp.Compare(a.DeliveryID, b.DeliveryID) })
	n := len(sorted)
	var (
		ids       = make([]int64, n)
		leases    = make([]time.Time, n)
		altLeases = make([]time.Time, n)
		states    = make([]int16, n)
		nexts     = make([]time.Time, n)
		ats       = make([]time.Time, n)
		statuses  = make([]int32, n)
		latencies = make([]int64, n)
		responses = make([]string, n)
		kinds     = make([]string, n)
		errs      = make([]string, n)
		oks       = make([]bool, n)
		batches   = make([]int64, n) // 0: in no batch
		sent      = make([]int64, n) // bytes sent, for the usage counters
	)
	for i, r := range sorted {
		a := r.Attempt
		ids[i], leases[i], altLeases[i], states[i], ats[i] = r.DeliveryID, oldOf[r.DeliveryID], altOf[r.DeliveryID], stateCodes[r.State], a.At
		if r.State == store.StatePending {
			// A pending member of a batch keeps its batch, so that its retries send the same
			// batch; anything else leaves its batch.
			nexts[i], batches[i] = r.NextAttemptAt, r.BatchID
		}
		statuses[i], latencies[i], oks[i] = int32(a.StatusCode), a.Latency.Microseconds(), a.Success
		sent[i] = int64(a.BytesSent)
		responses[i], kinds[i], errs[i] = cleanText(a.Response), a.ErrorKind, cleanText(a.Error)
	}
	endpointOf := make(map[int64]string, n)
	for _, r := range sorted {
		endpointOf[r.DeliveryID] = r.EndpointID
	}
	var written []int64
	now := time.Now()
	err := s.sendBatch(ctx, func() *pgx.Batch {
		b := &pgx.Batch{}
		b.Queue(lazyCommit)
		for _, id := range endpoints {
			if succeeded[id] {
				b.Queue(`UPDATE endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL`, id)
			} else {
				b.Queue(`UPDATE endpoints SET failing_since = $1 WHERE id = $2 AND failing_since IS NULL`, failedAt[id], id)
			}
		}
		// The deliveries whose lease still has this handle's value are updated (and locked), and
		// only their attempts are written; whose attempt it is comes from the delivery row.
		b.Queue(`WITH u AS (
				SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::smallint[], $4::timestamptz[], $5::int[], $6::text[], $7::bigint[],
					$8::timestamptz[], $9::bigint[], $10::text[], $11::text[], $12::bool[], $14::timestamptz[], $15::bigint[])
					WITH ORDINALITY AS u(id, old, state, next, status, error, batch, at, latency, response, kind, ok, alt, bytes, n)),
			done AS (
				UPDATE deliveries d SET state = u.state, attempts = d.attempts + 1, tries = d.tries + 1, next_attempt_at = u.next,
					last_status = u.status, last_error = u.error, updated_at = $13, lease_until = '-infinity', batch_id = nullif(u.batch, 0)
				FROM u WHERE d.id = u.id AND d.lease_until IN (u.old, u.alt)
				RETURNING d.id, d.tenant_id, d.endpoint_id, d.event_id),
			ins AS (
				INSERT INTO attempts (delivery_id, tenant_id, endpoint_id, event_id, at, status, latency_us, response, error_kind, error, success)
				SELECT done.id, done.tenant_id, done.endpoint_id, done.event_id, u.at, u.status, u.latency, u.response, u.kind, u.error, u.ok
				FROM done JOIN u ON u.id = done.id
				ORDER BY u.n
				RETURNING delivery_id, tenant_id, endpoint_id, at, success),
			-- The usage counters of the attempts written (only those: the fence may drop some),
			-- rows in key order.
			counted AS (
				INSERT INTO usage_hourly (tenant_id, hour, endpoint_id, shard, attempts_ok, attempts_failed, bytes_sent)
				SELECT ins.tenant_id, to_timestamp(floor(extract(epoch FROM ins.at) / 3600) * 3600) AS h, ins.endpoint_id, pg_backend_pid() % `+usageShards+`,
					count(*) FILTER (WHERE ins.success), count(*) FILTER (WHERE NOT ins.success), sum(u.bytes)
				FROM ins JOIN u ON u.id = ins.delivery_id
				GROUP BY ins.tenant_id, h, ins.endpoint_id
				ORDER BY ins.tenant_id, h, ins.endpoint_id`+usageConflict+`)
			SELECT delivery_id FROM ins`,
			ids, leases, states, nexts, statuses, errs, batches, ats, latencies, responses, kinds, oks, now, altLeases, sent).Query(func(rows pgx.Rows) error {
			var err error
			written, err = pgx.AppendRows(written[:0], rows, pgx.RowTo[int64])
			return err
		})
		return b
	})
	if err != nil {
		// The leases stay: the deliveries are attempted again when they expire.
		s.held.restore(heldIDs, olds, endpointOf)
		return fmt.Errorf("record results: %w", err)
	}
	if len(written) < len(ids) {
		ok := make(map[int64]bool, len(written))
		for _, id := range written {
			ok[id] = true
		}
		for _, id := range ids {
			if !ok[id] {
				stale = append(stale, id)
			}
		}
	}
	return staleResults(stale)
}

// staleResults is RecordResults' error for results it did not write, nil for none.
func staleResults(ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	return &store.StaleResultsError{DeliveryIDs: ids}
}

// LeaseEnd is when this handle's lease of id ends as it last wrote it, zero if it holds none.
func (s *Store) LeaseEnd(id int64) time.Time { return s.held.end(id) }

// ReleaseClaims ends leases without recording attempts.
func (s *Store) ReleaseClaims(ctx context.Context, ids []int64) error {
	// Only leases this handle holds, and only if they still have the value it wrote: a lease that
	// ran out and was taken over by another node is not this handle's to end.
	ids, olds, alts := s.held.take(ids)
	if len(ids) == 0 {
		return nil
	}
	err := s.sendBatch(ctx, func() *pgx.Batch {
		b := &pgx.Batch{}
		b.Queue(lazyCommit)
		b.Queue(`UPDATE deliveries d SET lease_until = '-infinity'
			FROM unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[]) AS u(id, old, alt)
			WHERE d.id = u.id AND d.lease_until IN (u.old, u.alt)`, ids, olds, alts)
		return b
	})
	if err != nil {
		return fmt.Errorf("release claims: %w", err)
	}
	return nil
}

// ReleaseAllClaims ends every lease in force and returns how many. Leases here are shared by every
// process using the database, so only a deployment of one process may call it (at start, for the
// leases its previous run left).
func (s *Store) ReleaseAllClaims(ctx context.Context) (int, error) {
	s.held.clear()
	tag, err := s.pool.Exec(ctx, `UPDATE deliveries SET lease_until = '-infinity' WHERE lease_until > $1`, time.Now())
	if err != nil {
		return 0, fmt.Errorf("release all claims: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// RenewClaims extends the leases this handle holds, and its lanes of their endpoints, to until.
// A lease is renewed only if it still holds the value this handle last gave it: one that ran out
// and was taken over by another node since (its value changed) is left alone, and forgotten.
//
// It is also this node's heartbeat: it renews the node's row in nodes, deletes this node's lanes
// of endpoints it holds no claims on (they are not worked), reads back the lanes it holds into
// the book, whatever the book thought (see lanes.go), and reads how many nodes are alive and how
// many lanes the others hold, from which claims work out this node's share.
func (s *Store) RenewClaims(ctx context.Context, now, until time.Time) (int, error) {
	s.lanes.claimMu.Lock()
	defer s.lanes.claimMu.Unlock()
	ids, olds, endpoints := s.held.snapshot(now, until)
	var renewed []int64
	var nodes, others int
	var mine map[string]time.Time
	var freed []string
	err := s.sendBatch(ctx, func() *pgx.Batch {
		renewed = renewed[:0]
		freed = freed[:0]
		mine = map[string]time.Time{}
		b := &pgx.Batch{}
		b.Queue(lazyCommit)
		b.Queue(`INSERT INTO nodes (node_id, until) VALUES ($1, $2)
			ON CONFLICT (node_id) DO UPDATE SET until = greatest(nodes.until, excluded.until)`, s.node, until)
		// A node fenced (see heartbeat.go) keeps its row an hour after its last heartbeat, so that
		// it learns it was fenced if it comes back.
		b.Queue(`DELETE FROM nodes WHERE until < $1 AND (alive_until IS NULL OR alive_until < $1)`, now.Add(-time.Hour))
		b.Queue(releaseLanesBut, s.node, endpoints, now).Query(collectFreed(&freed))
		if len(ids) > 0 {
			// Lanes first, in endpoint order, as claims take them.
			b.Queue(`UPDATE lanes SET until = greatest(until, $2) WHERE node_id = $1 AND endpoint_id = ANY($3)`, s.node, until, endpoints)
			b.Queue(`UPDATE deliveries d SET lease_until = $3
				FROM unnest($1::bigint[], $2::timestamptz[]) AS u(id, old)
				WHERE d.id = u.id AND d.state = 0 AND d.lease_until = u.old
				RETURNING d.id`, ids, olds, until).Query(func(rows pgx.Rows) error {
				var err error
				renewed, err = pgx.AppendRows(renewed, rows, pgx.RowTo[int64])
				return err
			})
		}
		b.Queue(`SELECT endpoint_id, until FROM lanes WHERE node_id = $1 AND until > $2`, s.node, now).Query(func(rows pgx.Rows) error {
			var id string
			var end time.Time
			_, err := pgx.ForEachRow(rows, []any{&id, &end}, func() error {
				mine[id] = end
				return nil
			})
			return err
		})
		b.Queue(`SELECT (SELECT count(*) FROM nodes WHERE until > $1), (SELECT count(*) FROM lanes WHERE until > $1 AND node_id <> $2)`,
			now, s.node).QueryRow(func(r pgx.Row) error { return r.Scan(&nodes, &others) })
		return b
	})
	if err != nil {
		return 0, fmt.Errorf("renew claims: %w", err)
	}
	s.held.renewed(ids, renewed, until)
	s.lanes.renewed(mine, nodes, others)
	s.notifyFreed(freed)
	return len(renewed), nil
}

// held is what a handle knows of its own leases: their endpoints and the lease end it last wrote.
type held struct {
	mu   sync.Mutex
	byID map[int64]heldLease
}

type heldLease struct {
	endpoint string
	until    time.Time
	// renewing is the end a renewal under way is writing (zero when none): until it returns,
	// the row may hold either value, and a result write fenced on the lease accepts both.
	renewing time.Time
}

func newHeld() *held { return &held{byID: map[int64]heldLease{}} }

func (h *held) add(id int64, endpoint string, until time.Time) {
	h.mu.Lock()
	h.byID[id] = heldLease{endpoint: endpoint, until: until}
	h.mu.Unlock()
}

// byEndpoint counts the leases held per endpoint.
func (h *held) byEndpoint() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for _, l := range h.byID {
		out[l.endpoint]++
	}
	return out
}

// take forgets the given leases and returns those it held, sorted, with the end it last wrote
// and the end a renewal under way may have written (the same when none is under way): the row
// holds one of the two.
func (h *held) take(ids []int64) (out []int64, olds, alts []time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		if _, ok := h.byID[id]; ok {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	olds, alts = make([]time.Time, len(out)), make([]time.Time, len(out))
	for i, id := range out {
		l := h.byID[id]
		olds[i], alts[i] = l.until, l.until
		if !l.renewing.IsZero() {
			alts[i] = l.renewing
		}
		delete(h.byID, id)
	}
	return out, olds, alts
}

func (h *held) end(id int64) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byID[id].until
}

// restore puts back leases take took, for a write that failed and will be tried again.
func (h *held) restore(ids []int64, olds []time.Time, endpoints map[int64]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, id := range ids {
		if _, ok := h.byID[id]; !ok {
			h.byID[id] = heldLease{endpoint: endpoints[id], until: olds[i]}
		}
	}
}

func (h *held) clear() {
	h.mu.Lock()
	clear(h.byID)
	h.mu.Unlock()
}

// snapshot lists the leases in force at now (forgetting those that ended), sorted by id, with
// their endpoints sorted and deduplicated.
func (h *held) snapshot(now, renewing time.Time) (ids []int64, olds []time.Time, endpoints []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, l := range h.byID {
		if !l.until.After(now) {
			delete(h.byID, id)
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	olds = make([]time.Time, len(ids))
	for i, id := range ids {
		l := h.byID[id]
		olds[i] = l.until
		endpoints = append(endpoints, l.endpoint)
		l.renewing = renewing
		h.byID[id] = l
	}
	slices.Sort(endpoints)
	return ids, olds, slices.Compact(endpoints)
}

// renewed records a renewal's outcome: the leases renewed now end at until; the others asked
// about were lost (their results were written meanwhile, or another node took them over).
func (h *held) renewed(asked, renewed []int64, until time.Time) {
	ok := make(map[int64]bool, len(renewed))
	for _, id := range renewed {
		ok[id] = true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range asked {
		l, present := h.byID[id]
		switch {
		case !present:
		case ok[id]:
			l.until, l.renewing = until, time.Time{}
			h.byID[id] = l
		default:
			delete(h.byID, id)
		}
	}
}

// leaseBatch leases, until $3, the pending and unleased deliveries matching cond (on the array $1
// and the time $2), locked in id order, and returns them with their events, by id.
func leaseBatch(cond string) string {
	return `WITH due AS (
		SELECT id FROM deliveries WHERE ` + cond + ` AND state = 0 AND lease_until <= $2 ORDER BY id FOR UPDATE SKIP LOCKED
	), leased AS (
		UPDATE deliveries d SET lease_until = $3 FROM due WHERE d.id = due.id
		RETURNING d.id, d.attempts, d.tries, d.event_seq, coalesce(d.batch_id, 0) AS batch_id
	)
	SELECT l.id, l.attempts, l.tries, e.id, e.type, e.ts, e.payload, e.traceparent, e.tracestate, l.batch_id
	FROM leased l JOIN events e ON e.seq = l.event_seq ORDER BY l.id`
}

var (
	leaseFailedBatches = leaseBatch(`batch_id = ANY($1)`)
	leaseNewBatches    = leaseBatch(`id = ANY($1) AND batch_id IS NULL AND next_attempt_at <= $2`)
	unbatched          = `SELECT id, next_attempt_at FROM (` + byPriority("next_attempt_at <= $2 AND batch_id IS NULL", "$3") + `) c ORDER BY rank, id`
)

// claimBatches claims for a batching endpoint (store.ClaimRequest.Batch): failed batches due
// again first, each with all its pending members, then new batches of up to MaxEvents due
// deliveries in no batch, by rank, each only if it is full or its oldest delivery has been due
// for MaxWait. Which deliveries form a batch is decided here, between a read and the locks, so
// it runs in a transaction of its own (a few round trips; each claim takes up to MaxEvents
// deliveries a batch, so they are rare beside the deliveries they take).
func (s *Store) claimBatches(ctx context.Context, req store.ClaimRequest, now, leaseUntil time.Time, demand int) (store.ClaimResult, laneRead, error) {
	var res store.ClaimResult
	var lane laneRead
	maxEvents := max(req.Batch.MaxEvents, 1)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		res, lane = store.ClaimResult{EndpointID: req.EndpointID}, laneRead{}
		batches := 0
		var waitUntil time.Time
		var mine bool
		if req.Limit > 0 {
			if err := tx.QueryRow(ctx, holdLane, req.EndpointID, now, req.Limit, leaseUntil, s.node, demand).Scan(&mine); err != nil {
				return err
			}
		}
		if mine {
			rows, err := tx.Query(ctx, `SELECT batch_id FROM deliveries WHERE endpoint_id = $1 AND state = 0 AND batch_id IS NOT NULL
				AND next_attempt_at <= $2 AND lease_until <= $2 ORDER BY next_attempt_at, id LIMIT $3`, req.EndpointID, now, req.Limit*maxEvents)
			if err != nil {
				return err
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				return err
			}
			var failed []int64
			for _, id := range ids {
				if len(failed) < req.Limit && !slices.Contains(failed, id) {
					failed = append(failed, id)
				}
			}
			if len(failed) > 0 {
				claimed, err := queryClaimed(ctx, tx, leaseFailedBatches, failed, now, leaseUntil)
				if err != nil {
					return err
				}
				for _, b := range failed {
					n := len(res.Claimed)
					for _, c := range claimed {
						if c.BatchID == b {
							res.Claimed = append(res.Claimed, c)
						}
					}
					if len(res.Claimed) > n {
						batches++
					}
				}
			}
			if batches < req.Limit {
				rows, err := tx.Query(ctx, unbatched, req.EndpointID, now, (req.Limit-batches)*maxEvents)
				if err != nil {
					return err
				}
				cands, err := pgx.CollectRows(rows, pgx.RowToStructByPos[store.BatchCandidate])
				if err != nil {
					return err
				}
				var groups [][]int64
				groups, waitUntil = store.FormBatches(cands, req.Limit-batches, maxEvents, req.Batch.MaxWait, now)
				if len(groups) > 0 {
					var ids []int64
					for _, g := range groups {
						ids = append(ids, g...)
					}
					claimed, err := queryClaimed(ctx, tx, leaseNewBatches, ids, now, leaseUntil)
					if err != nil {
						return err
					}
					byID := make(map[int64]store.Claimed, len(claimed))
					for _, c := range claimed {
						byID[c.DeliveryID] = c
					}
					for _, g := range groups {
						var batch int64 // the smallest id claimed: g is sorted
						for _, id := range g {
							c, ok := byID[id]
							if !ok {
								continue
							}
							if batch == 0 {
								batch = id
								batches++
							}
							c.BatchID = batch
							res.Claimed = append(res.Claimed, c)
						}
					}
				}
			}
		}
		if batches < req.Limit || req.Limit == 0 {
			var next *time.Time
			if err := tx.QueryRow(ctx, nextDue, req.EndpointID, now, s.node).Scan(&next, &lane.until, &lane.elsewhere, &lane.waiting); err != nil {
				return err
			}
			if next != nil {
				res.NextDue = next.UTC()
			}
			res.NextDue = store.Earliest(res.NextDue, waitUntil)
		}
		if err := tx.QueryRow(ctx, `SELECT `+laneState, req.EndpointID, now, s.node).Scan(&lane.until, &lane.elsewhere, &lane.waiting); err != nil {
			return err
		}
		lane.read = true
		return nil
	})
	if err != nil {
		return res, laneRead{}, err
	}
	return res, lane, nil
}

func queryClaimed(ctx context.Context, tx pgx.Tx, q string, ids []int64, now, leaseUntil time.Time) ([]store.Claimed, error) {
	rows, err := tx.Query(ctx, q, ids, now, leaseUntil)
	if err != nil {
		return nil, err
	}
	var out []store.Claimed
	var c store.Claimed
	_, err = pgx.ForEachRow(rows, []any{&c.DeliveryID, &c.Attempts, &c.Tries, &c.EventID, &c.EventType, &c.EventTime, &c.Payload, &c.Traceparent, &c.Tracestate, &c.BatchID}, func() error {
		c.EventTime = c.EventTime.UTC()
		out = append(out, c)
		c = store.Claimed{}
		return nil
	})
	return out, err
}
