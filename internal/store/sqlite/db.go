// Package sqlite is Herald's embedded store: one SQLite file in WAL mode, owned by one process.
//
// SQLite has a single writer, so every write goes through one goroutine that owns the only write
// connection and commits whatever writes are waiting together (group commit): under load, hundreds
// of publishes and delivery results share one fsync. Reads use a separate pool and never wait for
// the writer, which WAL allows.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/heraldhq/herald/internal/expr"
	"github.com/heraldhq/herald/internal/seal"
	"github.com/heraldhq/herald/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options tune the store.
type Options struct {
	// Synchronous is SQLite's synchronous pragma: FULL (default) fsyncs every commit so that an
	// acknowledged event survives power loss; NORMAL survives a process crash only.
	Synchronous string
	// MaxBatch bounds how many writes share one transaction.
	MaxBatch int
	// Keys encrypt endpoint secrets at rest. Nil stores them in plaintext, as versions before
	// encryption did: for tests only; herald serve always sets them.
	Keys *seal.Keyring
	// Limits bound endpoints per tenant and deliveries per publish (zero: the defaults).
	Limits store.Limits
	// Logger receives what the store's background work (checkpoints) could not do; nil discards.
	Logger *slog.Logger
}

// Store is the SQLite implementation of store.Store.
type Store struct {
	// unavailableAt is when a write last failed because the database could not take it (a full
	// disk, a read-only file system), in Unix nanoseconds; 0 once a later write succeeded. Ping
	// reports the store unavailable for a while after such a failure.
	unavailableAt atomic.Int64
	w             *sql.DB // exactly one connection, used only by the writer goroutine
	r             *sql.DB // read pool
	lock          *os.File
	ops           chan *op
	quit          chan struct{}
	done          chan struct{}
	// ck is the checkpointer's connection (checkpoint.go); wrote tells it the log grew, ckDone
	// that it stopped.
	ck          *sql.DB
	wrote       chan struct{}
	ckDone      chan struct{}
	log         *slog.Logger
	stmts       statements
	resultStmts []resultStmts // multi-row result writes, by chunk size - 1
	closeOnce   sync.Once
	// claimStmts are claim reads prepared per number of ids; guarded by leases.claimMu.
	claimStmts map[int]*sql.Stmt
	leases     *leases
	max        int
	// subs caches each tenant's enabled endpoints and their subscriptions for Publish, which
	// matches events outside the writer; every endpoint write clears it.
	subs *subCache
	// fanout matches events to subscribers within the limits.
	fanout *store.Fanout
	// exprs keeps endpoints' compiled filters.
	exprs   *expr.Cache
	sync    string // the configured synchronous level
	curSync string // the level in force on the write connection (writer goroutine only)
	keys    *seal.Keyring
}

var _ store.Store = (*Store)(nil)

type op struct {
	ctx context.Context
	// lazy writes may skip the fsync: losing them to a power cut only repeats work (a delivery
	// result lost means the delivery is attempted again), so they never pay for one on their own.
	lazy bool
	// probe: the readiness check's write, which says nothing of whether other writes succeed.
	probe bool
	fn    func(tx *sql.Tx) error
	err   chan error
}

// Open opens (creating if needed) the database file at path, takes an exclusive lock on it so that a
// second process cannot share it, and applies migrations.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	opts.Synchronous = strings.ToUpper(opts.Synchronous)
	switch opts.Synchronous {
	case "":
		opts.Synchronous = "FULL"
	case "OFF", "NORMAL", "FULL", "EXTRA":
	default:
		return nil, fmt.Errorf("synchronous must be OFF, NORMAL, FULL or EXTRA, not %q", opts.Synchronous)
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 512
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, err
	}
	// secure_delete(FAST) zeroes deleted content where that costs no extra I/O, so that a secret
	// replaced by its ciphertext (rotation, re-encryption) does not linger in the file's pages.
	dsn := fmt.Sprintf("file:%s?_pragma=journal_mode(WAL)&_pragma=synchronous(%s)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=secure_delete(FAST)&_pragma=wal_autocheckpoint(0)&_pragma=journal_size_limit(%d)&_txlock=immediate", path, opts.Synchronous, journalSizeLimit)
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := migrate(ctx, w); err != nil {
		_ = w.Close()
		_ = lock.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", fmt.Sprintf("file:%s?_pragma=busy_timeout(10000)&_pragma=query_only(1)", path))
	if err != nil {
		_ = w.Close()
		_ = lock.Close()
		return nil, fmt.Errorf("open sqlite reader %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	ck, err := sql.Open("sqlite", fmt.Sprintf("file:%s?_pragma=busy_timeout(10000)", path))
	if err != nil {
		_ = w.Close()
		_ = r.Close()
		_ = lock.Close()
		return nil, fmt.Errorf("open sqlite checkpointer %s: %w", path, err)
	}
	ck.SetMaxOpenConns(1)
	ck.SetMaxIdleConns(1)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{w: w, r: r, lock: lock, ops: make(chan *op, 4096), leases: newLeases(), claimStmts: map[int]*sql.Stmt{}, subs: newSubCache(), fanout: store.NewFanout(opts.Limits), exprs: expr.NewCache(1024), sync: opts.Synchronous, curSync: opts.Synchronous, keys: opts.Keys, quit: make(chan struct{}), done: make(chan struct{}), max: opts.MaxBatch,
		ck: ck, wrote: make(chan struct{}, 1), ckDone: make(chan struct{}), log: opts.Logger}
	if err := s.stmts.prepare(ctx, w, r); err != nil {
		_ = s.closeDBs()
		return nil, err
	}
	if s.resultStmts, err = prepareResultStmts(ctx, w); err != nil {
		_ = s.closeDBs()
		return nil, err
	}
	go s.writer()
	go s.checkpointer(ck)
	return s, nil
}

func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("database %s is in use by another herald process: %w", filepath.Dir(path), err)
	}
	return f, nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sub)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// Close stops the writer after the writes already queued and closes the database. Calls after
// the first return nil.
func (s *Store) Close() error {
	err := errClosed
	s.closeOnce.Do(func() {
		close(s.quit)
		<-s.done
		<-s.ckDone
		err = s.closeDBs()
	})
	if err == errClosed {
		return nil
	}
	return err
}

func (s *Store) closeDBs() error {
	s.stmts.close()
	for _, st := range s.claimStmts {
		_ = st.Close()
	}
	for _, st := range s.resultStmts {
		_ = st.insert.Close()
		_ = st.update.Close()
	}
	err := errors.Join(s.r.Close(), s.ck.Close(), s.w.Close())
	_ = s.lock.Close()
	return err
}

// Ping checks that the store can be read and written: it reads, then writes the health row (an
// empty transaction would succeed on a full disk, where every real write fails). And since a
// small write can still fit where larger ones do not, a store whose real writes failed as
// unavailable in the last unavailableFor is unavailable too, until one succeeds.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite: %w", err)
	}
	now := time.Now()
	err := s.enqueue(&op{ctx: ctx, lazy: true, probe: true, err: make(chan error, 1), fn: func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO health (id, checked_at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at`, micros(now))
		return err
	}})
	if err != nil {
		return fmt.Errorf("write to sqlite: %w", err)
	}
	if at := s.unavailableAt.Load(); at != 0 && now.Sub(time.Unix(0, at)) < unavailableFor {
		return fmt.Errorf("%w: a write failed %s ago", store.ErrUnavailable, now.Sub(time.Unix(0, at)).Round(time.Millisecond))
	}
	return nil
}

// unavailableFor is how long after a write failed as unavailable Ping still says so (unless a
// write has succeeded since).
const unavailableFor = 10 * time.Second

// noteWrite keeps track of whether the writes that are not probes succeed (see Ping).
func (s *Store) noteWrite(o *op, err error) {
	switch {
	case o.probe:
	case err == nil:
		if s.unavailableAt.Load() != 0 {
			s.unavailableAt.Store(0)
		}
	case errors.Is(unavailable(err), store.ErrUnavailable):
		s.unavailableAt.Store(time.Now().UnixNano())
	}
}

var errClosed = errors.New("sqlite store is closed")

// write runs fn in the writer's next transaction and returns once that is committed. fn may be
// run twice (see commit), so it must set its outputs afresh each time.
// An audit entry in ctx (store.WithAudit) is written in the same transaction, after fn.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.enqueue(&op{ctx: ctx, fn: audited(ctx, fn), err: make(chan error, 1)})
}

// writeLazy is write for changes whose loss to a power cut is harmless (see op.lazy).
func (s *Store) writeLazy(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.enqueue(&op{ctx: ctx, fn: fn, lazy: true, err: make(chan error, 1)})
}

func (s *Store) enqueue(o *op) error {
	closed := fmt.Errorf("%w: %w", store.ErrUnavailable, errClosed)
	select {
	case <-s.quit:
		return closed
	default:
	}
	select {
	case s.ops <- o:
	case <-s.quit:
		return closed
	case <-o.ctx.Done():
		return o.ctx.Err()
	}
	// Once queued, the op runs even if ctx ends: callers learn its fate, so that a write is never
	// half-known (an API client that disconnects still gets its event stored, as acknowledged or not).
	// Unless the writer stops first: an op queued as the store closes is never run.
	select {
	case err := <-o.err:
		return unavailable(err)
	case <-s.done:
		select {
		case err := <-o.err:
			return unavailable(err)
		default:
			return closed
		}
	}
}

// unavailable marks errors that mean the database cannot take writes now (SQLITE_FULL,
// SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN, or the store closed while a request used it)
// as store.ErrUnavailable.
func unavailable(err error) error {
	if err == nil || errors.Is(err, store.ErrUnavailable) {
		return err
	}
	msg := err.Error()
	for _, m := range []string{"database or disk is full", "readonly database", "disk I/O error", "unable to open database", "database is closed"} {
		if strings.Contains(msg, m) {
			return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
	}
	return err
}

func (s *Store) writer() {
	defer close(s.done)
	batch := make([]*op, 0, s.max)
	for {
		var first *op
		select {
		case first = <-s.ops:
		case <-s.quit:
			// Drain what is already queued, then stop.
			for {
				select {
				case o := <-s.ops:
					s.commit([]*op{o})
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < s.max {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			default:
				break fill
			}
		}
		s.commit(batch)
	}
}

// commit runs a batch of writes in one transaction. Writes rarely fail, so the batch runs
// optimistically without savepoints (which cost a sub-journal write per page); if any write fails,
// the transaction is rolled back and each write is run again in a transaction of its own, so
// that one client's bad write never undoes another's. Writes are closures that can be re-run:
// each sets its outputs afresh.
func (s *Store) commit(batch []*op) {
	if len(batch) > 1 {
		errs, err := s.run(batch)
		if err == nil {
			for i, o := range batch {
				s.noteWrite(o, errs[i])
				o.err <- errs[i]
			}
			return
		}
	}
	for _, o := range batch {
		errs, err := s.run([]*op{o})
		if err == nil {
			err = errs[0]
		}
		s.noteWrite(o, err)
		o.err <- err
	}
}

// setSync picks the synchronous level of the next commit: the configured one if any op needs it,
// NORMAL if all are lazy. In WAL mode the next synced commit also makes earlier ones durable, in
// order, so a lazy commit never undermines a durable one.
func (s *Store) setSync(ops []*op) error {
	want := "NORMAL"
	for _, o := range ops {
		if !o.lazy {
			want = s.sync
			break
		}
	}
	if want == s.curSync {
		return nil
	}
	if _, err := s.w.ExecContext(context.Background(), "PRAGMA synchronous = "+want); err != nil {
		return fmt.Errorf("set synchronous: %w", err)
	}
	s.curSync = want
	return nil
}

var errBatchFailed = errors.New("a write in the batch failed")

// run executes ops in one transaction and commits it, unless one of them fails: then it rolls
// back and returns errBatchFailed (several ops) or that op's error (one op).
func (s *Store) run(ops []*op) ([]error, error) {
	if err := s.setSync(ops); err != nil {
		return nil, err
	}
	tx, err := s.w.BeginTx(context.Background(), nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	errs := make([]error, len(ops))
	for i, o := range ops {
		if errs[i] = o.fn(tx); errs[i] != nil {
			_ = tx.Rollback()
			s.subs.settle()
			if len(ops) > 1 {
				return nil, errBatchFailed
			}
			return errs, nil
		}
	}
	err = tx.Commit()
	s.subs.settle()
	// The checkpointer looks at the log after every commit, failed ones too (a full disk).
	s.noteCommit()
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return errs, nil
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func fromNullMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

func nullMicros(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
