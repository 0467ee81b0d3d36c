package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Publish (with Options.Notify) tells other processes which endpoints got deliveries with a
// pg_notify, sent after its commit by the notifier; Listen hears them. It is a wake-up only: a
// process that misses one still finds the work when it next looks (DueEndpoints, NextDue).
//
// The notification is not part of the publish transaction on purpose: PostgreSQL holds a global
// lock from a notifying transaction's pre-commit until its commit record is flushed, so notifying
// publishes would commit one at a time (about 700 single-event publishes/s on the project
// machine). The notifier sends what has accumulated in a transaction of its own, which writes no
// WAL; while one round trip is under way the next publishes' endpoints gather, so a burst of
// publishes costs a few notifications, not one each.

// notifier sends pg_notify for endpoints given to add, coalescing what arrives meanwhile.
type notifier struct {
	pool    *pgxpool.Pool
	channel string
	mu      sync.Mutex
	pending map[string]bool
	wake    chan struct{}
	stop    context.CancelFunc
	done    chan struct{}
}

func startNotifier(pool *pgxpool.Pool, channel string) *notifier {
	ctx, cancel := context.WithCancel(context.Background())
	n := &notifier{pool: pool, channel: channel, pending: map[string]bool{}, wake: make(chan struct{}, 1), stop: cancel, done: make(chan struct{})}
	go n.run(ctx)
	return n
}

// add queues endpoint ids for the next notification; it never blocks on the database.
func (n *notifier) add(ids []string) {
	if len(ids) == 0 {
		return
	}
	n.mu.Lock()
	for _, id := range ids {
		n.pending[id] = true
	}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *notifier) run(ctx context.Context) {
	defer close(n.done)
	for {
		select {
		case <-ctx.Done():
			n.flush(context.Background()) // what the last publishes added
			return
		case <-n.wake:
			n.flush(ctx)
		}
	}
}

// flush sends what is pending. A failure is dropped: the other processes find the work when they
// next look, within their rescan interval.
func (n *notifier) flush(ctx context.Context) {
	n.mu.Lock()
	ids := make([]string, 0, len(n.pending))
	for id := range n.pending {
		ids = append(ids, id)
	}
	clear(n.pending)
	n.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	slices.Sort(ids)
	// Not cut short by close: what was added before it is sent, within the timeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var b pgx.Batch
	for _, payload := range notifyPayloads(ids) {
		b.Queue(`SELECT pg_notify($1, $2)`, n.channel, payload)
	}
	_ = n.pool.SendBatch(ctx, &b).Close()
}

// close sends what is pending and stops.
func (n *notifier) close() {
	n.stop()
	<-n.done
}

// channelName is the notification channel of a schema. Channels are per database, so stores in
// different schemas of one database (tests, say) get channels of their own.
func channelName(schema string) string {
	const base = "herald_deliveries"
	if schema == "" {
		return base
	}
	name := base + "." + schema
	if len(name) > 63 { // NAMEDATALEN-1: pg_notify refuses a longer channel name
		sum := sha256.Sum256([]byte(schema))
		name = base + "." + hex.EncodeToString(sum[:8])
	}
	return name
}

// maxPayload stays under PostgreSQL's 8000-byte limit on a notification's payload.
const maxPayload = 7900

// notifyPayloads splits endpoint ids into JSON arrays that each fit in one notification. An id too
// long for any is sent as null: the listener takes it as "look for work yourself".
func notifyPayloads(ids []string) []string {
	var out []string
	var chunk []string
	size := 2 // []
	flush := func() {
		if len(chunk) > 0 {
			b, _ := json.Marshal(chunk) // strings always marshal
			out = append(out, string(b))
			chunk, size = nil, 2
		}
	}
	for _, id := range ids {
		b, _ := json.Marshal(id)
		if len(b)+3 > maxPayload {
			out = append(out, "null")
			continue
		}
		if size+len(b)+1 > maxPayload {
			flush()
		}
		chunk = append(chunk, id)
		size += len(b) + 1
	}
	flush()
	return out
}

// Listen calls fn with the ids of endpoints that got new deliveries, as Publish in any process
// using this schema reports them (with Options.Notify), until ctx ends. fn(nil) means that
// notifications may have been missed (the connection was lost and is back, or a payload was not a
// list of ids): the caller should look for due work itself. fn runs on Listen's goroutine, so it
// should be quick.
//
// LISTEN needs a connection of its own, outside the pool; when it breaks, Listen connects again,
// backing off up to 5 s. It returns nil when ctx ends, or an error if it cannot connect at first.
func (s *Store) Listen(ctx context.Context, fn func(endpointIDs []string)) error {
	conn, err := s.listenConn(ctx)
	if err != nil {
		return err
	}
	for {
		s.receive(ctx, conn, fn)
		closeConn(conn)
		if ctx.Err() != nil {
			return nil
		}
		for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			if conn, err = s.listenConn(ctx); err == nil {
				break
			}
		}
		fn(nil)
	}
}

func (s *Store) listenConn(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return nil, fmt.Errorf("listen: connect: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		closeConn(conn)
		return nil, fmt.Errorf("listen: %w", err)
	}
	return conn, nil
}

// receive passes notifications to fn until the connection fails or ctx ends.
func (s *Store) receive(ctx context.Context, conn *pgx.Conn, fn func([]string)) {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return
		}
		var ids []string
		if json.Unmarshal([]byte(n.Payload), &ids) != nil {
			ids = nil
		}
		fn(ids)
	}
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}
