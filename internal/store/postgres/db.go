// Package postgres is Herald's PostgreSQL store, for deployments where several processes share the
// work. It passes the same conformance suite as the SQLite driver; where the two differ inside, it
// is because several processes share this database:
//
//   - leases are in rows (deliveries.lease_until), claimed with FOR UPDATE SKIP LOCKED, so that two
//     processes never claim the same delivery and a crashed process's claims expire;
//   - migrations run under an advisory lock, so that processes starting together migrate once;
//   - there is no group commit of its own: PostgreSQL's connections commit concurrently, and the
//     writes whose loss only repeats work (claims, releases, results) commit without waiting for
//     the WAL flush, as the SQLite driver's lazy writes do.
package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/heraldhq/herald/internal/expr"
	"github.com/heraldhq/herald/internal/seal"
	"github.com/heraldhq/herald/internal/store"
)

// Options tune the store.
type Options struct {
	// Schema, if set, is where Herald's tables live: it is created if missing and is the only
	// schema on every connection's search_path. Empty means the URL's (or the server's) search_path.
	Schema string
	// MaxConns bounds the pool; 0 means pgxpool's default (the larger of 4 and the number of CPUs).
	MaxConns int32
	// Notify makes Publish send a pg_notify with the endpoints that got deliveries, for Listen in
	// other processes (after its commit, coalesced: see notify.go). Processes that do not Listen
	// (herald migrate, tests of one store) leave it off.
	Notify bool
	// NoMigrate leaves the schema as it is: Open then fails if the database lacks a migration this
	// build needs (run herald migrate first), for operators who migrate as a separate step.
	NoMigrate bool
	// Keys encrypt endpoint secrets at rest. Nil stores them in plaintext, as versions before
	// encryption did: for tests only; herald serve always sets them.
	Keys *seal.Keyring
	// Limits bound endpoints per tenant and deliveries per publish (zero: the defaults).
	Limits store.Limits
}

// Store is the PostgreSQL implementation of store.Store.
type Store struct {
	node      string // this process's id in lanes
	pool      *pgxpool.Pool
	notifier  *notifier  // nil without Options.Notify
	publisher *publisher // shares transactions among concurrent publishes
	channel   string     // the pg_notify channel of this schema
	keys      *seal.Keyring
	exprs     *expr.Cache // endpoints' compiled filters
	fanout    *store.Fanout
	held      *held     // the leases this handle holds, to renew them
	lanes     *laneBook // the lanes it holds, and its view of the cluster

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or a key=value DSN), and applies the
// migrations this build knows that the database has not seen yet.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if opts.Schema != "" {
		// Sent in the startup message, so it costs no round trip and holds on every connection.
		cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{opts.Schema}.Sanitize()
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	cfg.ConnConfig.DialFunc = dial
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		// Times come back in UTC, as from the SQLite driver, whatever the process's time zone.
		c.TypeMap().RegisterType(&pgtype.Type{Name: "timestamptz", OID: pgtype.TimestamptzOID, Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC}})
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	migrateOrCheck := migrate
	if opts.NoMigrate {
		migrateOrCheck = checkMigrated
	}
	if err := migrateOrCheck(ctx, pool, opts.Schema); err != nil {
		pool.Close()
		return nil, err
	}
	s := &Store{node: newNodeID(), pool: pool, channel: channelName(opts.Schema), keys: opts.Keys, held: newHeld(), lanes: newLaneBook(), exprs: expr.NewCache(1024), fanout: store.NewFanout(opts.Limits)}
	s.publisher = newPublisher(s.publishTx)
	if opts.Notify {
		s.notifier = startNotifier(pool, s.channel)
	}
	return s, nil
}

// Close closes every connection of the pool, waiting for those in use to be returned.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// Give this node's lanes up and leave the cluster, so that other nodes need not wait
		// for them to expire; those whose endpoints have due work are woken now (notifyFreed).
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var freed []string
		err := s.sendBatch(ctx, func() *pgx.Batch {
			freed = freed[:0]
			b := &pgx.Batch{}
			b.Queue(releaseLanesBut, s.node, []string{}, time.Now()).Query(collectFreed(&freed))
			b.Queue(`DELETE FROM nodes WHERE node_id = $1`, s.node)
			return b
		})
		if err == nil {
			s.notifyFreed(freed)
		}
		if s.notifier != nil {
			s.notifier.close()
		}
		s.pool.Close()
		if err != nil {
			s.closeErr = fmt.Errorf("release lanes: %w", err)
		}
	})
	return s.closeErr
}

// newNodeID names this process in lanes: random, so that a restarted node is a new node.
func newNodeID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return unavailable(fmt.Errorf("ping postgres: %w", err))
	}
	return nil
}

// sendFunc sends one batch of a transaction run by inBatchTx; last commits it.
type sendFunc func(b *pgx.Batch, last bool) error

// inBatchTx runs a transaction as a few batches, each one round trip: BEGIN travels with the
// first batch and COMMIT with the last, where pool.Begin and Commit would cost a round trip each.
// A publish is then two round trips instead of four. fn must send its last batch with last set
// (or the transaction is committed after fn returns), must not send after it, and, as with inTx,
// must set its outputs afresh on each try.
func (s *Store) inBatchTx(ctx context.Context, fn func(send sendFunc) error) error {
	for try := 1; ; try++ {
		err := s.tryBatchTx(ctx, fn)
		if try < maxTries && retryable(err) {
			continue
		}
		return unavailable(err)
	}
}

func (s *Store) tryBatchTx(ctx context.Context, fn func(send sendFunc) error) (err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	// A connection given back inside a transaction (a failed ROLLBACK) is closed by the pool.
	defer conn.Release()
	begun, done := false, false
	send := func(b *pgx.Batch, last bool) error {
		full := &pgx.Batch{}
		if !begun {
			full.Queue("BEGIN")
			begun = true
		}
		full.QueuedQueries = append(full.QueuedQueries, b.QueuedQueries...)
		sendCtx := ctx
		if last {
			full.Queue("COMMIT")
			done = true
			// Once the commit is sent, its caller must learn its fate: a cancelled context
			// would leave it unknown whether, say, an acknowledged event was stored.
			sendCtx = context.WithoutCancel(ctx)
		}
		return conn.SendBatch(sendCtx, full).Close()
	}
	defer func() {
		if err != nil && begun {
			// Aborted or unfinished (after a failed COMMIT this only draws a warning).
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_, _ = conn.Exec(rctx, "ROLLBACK")
		}
	}()
	if err := fn(send); err != nil {
		return err
	}
	if !done {
		return send(&pgx.Batch{}, true)
	}
	return nil
}

// maxTries bounds how often a transaction is run again after a deadlock or serialization failure.
const maxTries = 3

// inTx runs fn in a transaction and commits it, with the audit entry that ctx carries, if any.
// A transaction that PostgreSQL aborted to break a deadlock is run again, so fn must set its
// outputs afresh each time.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	for try := 1; ; try++ {
		err := s.tryTx(ctx, fn)
		if try < maxTries && retryable(err) {
			continue
		}
		return unavailable(err)
	}
}

func (s *Store) tryTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	if a := store.AuditFrom(ctx); a != nil {
		// The change and its audit entry commit together (see store.WithAudit).
		if err := insertAudit(ctx, tx, a); err != nil {
			_ = tx.Rollback(ctx)
			return err
		}
	}
	// Once the transaction is sent for commit, its caller must learn its fate: a cancelled context
	// would leave it unknown whether, say, an acknowledged event was stored.
	if err := tx.Commit(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// lazyCommit, queued first in a batch, lets the batch's implicit transaction commit without
// waiting for the WAL flush. For claims, releases and results only: losing one to a crash of the
// database server only means a delivery is attempted again (at-least-once holds).
const lazyCommit = `SELECT set_config('synchronous_commit', 'off', true)`

// sendBatch sends the batch that build makes in one round trip; its statements run in one
// implicit transaction. A batch aborted to break a deadlock is built and sent again.
func (s *Store) sendBatch(ctx context.Context, build func() *pgx.Batch) error {
	for try := 1; ; try++ {
		err := s.pool.SendBatch(ctx, build()).Close()
		if try < maxTries && retryable(err) {
			continue
		}
		return unavailable(err)
	}
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// retryable reports a deadlock (40P01) or serialization failure (40001): PostgreSQL aborted the
// transaction, and running it again is the remedy. So is a connection that failed before anything
// was sent on it (an idle connection whose backend had been terminated, say): nothing ran.
func retryable(err error) bool {
	c := pgCode(err)
	return c == "40P01" || c == "40001" || (err != nil && pgconn.SafeToRetry(err))
}

// unavailable marks the errors that mean the database cannot be reached or cannot take writes
// now as store.ErrUnavailable, so that the API answers 503 with Retry-After instead of 500: a
// refused or broken connection, a backend terminated by an administrator or a server shutting
// down, a server still starting, too many connections, a full disk, a read-only standby. The
// caller may try again later; the pool opens fresh connections by itself.
func unavailable(err error) error {
	if err == nil || errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.Canceled) {
		return err
	}
	if connectionLost(err) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

// Unavailable reports an error of the store's that means PostgreSQL could not be reached or
// ended the session (store.UnavailableReporter).
func (s *Store) Unavailable(err error) bool { return connectionLost(err) }

func connectionLost(err error) bool {
	switch c := pgCode(err); {
	case c == "":
	case strings.HasPrefix(c, "08"), // connection exception
		c == "57P01", c == "57P02", c == "57P03", // admin_shutdown, crash_shutdown, cannot_connect_now
		c == "53100", c == "53300", // disk_full, too_many_connections
		c == "25006": // read_only_sql_transaction: a standby, or a primary being demoted
		return true
	default:
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED) || pgconn.SafeToRetry(err)
}

func isUnique(err error) bool { return pgCode(err) == "23505" }

// notFound maps "no rows" to store.ErrNotFound, with what was looked for.
func notFound(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return unavailable(fmt.Errorf("%s: %w", what, err))
}

// affected maps an UPDATE or DELETE that touched no row to store.ErrNotFound.
func affected(tag pgconn.CommandTag, what string) error {
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// page trims a result read with limit+1 rows and computes the next cursor.
func page[T any](items []T, limit int, pos func(i int) int64) ([]T, string, error) {
	if len(items) <= limit {
		return items, "", nil
	}
	items = items[:limit]
	return items, store.EncodeCursor(pos(limit - 1)), nil
}
