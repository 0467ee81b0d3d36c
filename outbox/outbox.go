// Package outbox publishes Herald events from an application's own database transactions.
//
// An application that changes its data and then calls an API to announce the change has two
// writes that can disagree: the change commits and the call fails (a lost webhook), or the call
// succeeds and the change rolls back (a webhook about nothing). When Herald runs on PostgreSQL
// in the application's database, Writer removes the problem: it inserts the event into Herald's
// outbox table in the application's transaction, so the event exists if and only if the change
// commits. Herald's nodes relay the outbox into events and deliveries within a fraction of a
// second (see docs/outbox.md).
//
//	tx, _ := pool.Begin(ctx)
//	tx.Exec(ctx, `INSERT INTO orders ...`)
//	id, err := w.Publish(ctx, tx, "acme", outbox.Event{Type: "order.created", Data: order})
//	tx.Commit(ctx)
//
// Publish takes a pgx transaction (or anything with pgx's Exec); PublishSQL a database/sql one.
// The package checks what it can without asking Herald (the tenant and type are set, data is a
// JSON object, the sizes) and fixes each event's id, generating one when the event has none, so
// that the application knows it and a relayed row that is published again is a duplicate, not a
// second event. What only Herald knows (that the type is registered, the data matches its schema,
// the tenant exists) is checked when the row is relayed: a row that fails stays in the outbox
// with its error, and goes out once the cause is fixed.
//
// Applications that do not share Herald's database publish with the client package instead.
package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldhq/herald/event"
)

// Event is one event to publish.
type Event struct {
	// ID is the event's id: publishing an id the tenant already has publishes nothing new.
	// Empty: Publish generates one ("evt_" and 26 characters, sortable by time) and returns it.
	ID string
	// Type is a registered event type, such as "order.created".
	Type string
	// Data is the event's payload, marshalled with encoding/json; it must be a JSON object. A
	// json.RawMessage is written as it is (compacted); nil is an empty object.
	Data any
	// Source says where the event comes from, such as a service name (optional).
	Source string
	// Resource is the object the event is about (optional).
	Resource *Resource
	// Priority is "high", "normal" or "low"; empty is normal.
	Priority string
}

// Resource is the object an event is about (the event package's).
type Resource = event.Resource

// DefaultMaxDataBytes is the default bound on an event's data, Herald's default event size
// (--max-event-bytes). The relay checks the whole event against the node's own limit.
const DefaultMaxDataBytes = event.DefaultMaxBytes

// Writer writes events to Herald's outbox table. It holds no connection: it is safe for
// concurrent use, and one Writer serves the whole application.
type Writer struct {
	table   string
	insert  string
	maxData int
}

// Option configures a Writer.
type Option func(*Writer)

// WithTable names the outbox table: "outbox" by default, which the connection's search_path
// resolves; "herald.outbox" when Herald keeps its tables in schema herald (herald serve
// --database-schema herald) and the application's connections do not have it in their
// search_path. A dot separates the schema from the table; each part is quoted as written.
func WithTable(name string) Option {
	return func(w *Writer) { w.table = name }
}

// WithMaxDataBytes bounds an event's data as marshalled (default DefaultMaxDataBytes): set it to
// the --max-event-bytes of a Herald that allows larger events.
func WithMaxDataBytes(n int) Option {
	return func(w *Writer) { w.maxData = n }
}

// New makes a Writer.
func New(opts ...Option) *Writer {
	w := &Writer{table: "outbox", maxData: DefaultMaxDataBytes}
	for _, o := range opts {
		o(w)
	}
	w.insert = `INSERT INTO ` + quoteTable(w.table) +
		` (tenant_id, event_id, type, data, source, resource, priority) VALUES ($1, $2, $3, $4, $5, $6, $7)`
	return w
}

// Execer is what Publish writes with: pgx.Tx, pgxpool.Tx, *pgx.Conn and *pgxpool.Pool have it.
// Pass a transaction: with a pool or a connection outside one, the event is written at once, on
// its own, which is what the outbox exists to avoid.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// SQLExecer is what PublishSQL writes with: *sql.Tx (and, with the same caveat as Execer,
// *sql.DB and *sql.Conn) of a PostgreSQL driver that takes $1 placeholders (pgx's stdlib, lib/pq).
type SQLExecer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Publish writes ev for tenant into the outbox in tx, and returns the event's id. The event is
// published when tx commits, and never if it rolls back.
func (w *Writer) Publish(ctx context.Context, tx Execer, tenant string, ev Event) (string, error) {
	args, err := w.row(tenant, ev)
	if err != nil {
		return "", err
	}
	if _, err := tx.Exec(ctx, w.insert, args...); err != nil {
		return "", fmt.Errorf("outbox: write event %s: %w", args[1], err)
	}
	return args[1].(string), nil
}

// PublishSQL is Publish for database/sql.
func (w *Writer) PublishSQL(ctx context.Context, tx SQLExecer, tenant string, ev Event) (string, error) {
	args, err := w.row(tenant, ev)
	if err != nil {
		return "", err
	}
	if _, err := tx.ExecContext(ctx, w.insert, args...); err != nil {
		return "", fmt.Errorf("outbox: write event %s: %w", args[1], err)
	}
	return args[1].(string), nil
}

// ErrInvalid is wrapped by the errors of events that Herald would refuse.
var ErrInvalid = errors.New("invalid event")

var (
	tenantPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
)

// row checks ev as far as can be done here and makes the outbox row's values.
func (w *Writer) row(tenant string, ev Event) ([]any, error) {
	invalid := func(format string, a ...any) error {
		return fmt.Errorf("outbox: %w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	switch {
	case !tenantPattern.MatchString(tenant):
		return nil, invalid("tenant %q: want letters, digits, '_', '.', '-', at most 64", tenant)
	case ev.Type == "" || len(ev.Type) > event.MaxTypeLength:
		return nil, invalid("type: want 1 to 128 characters")
	case ev.ID != "" && !event.ValidID(ev.ID):
		return nil, invalid("id %q: want letters, digits, '_', '.', ':', '-', at most 128", ev.ID)
	case len(ev.Source) > event.MaxSourceLength || strings.ContainsRune(ev.Source, 0):
		return nil, invalid("source: want at most 200 characters, no NUL")
	}
	if !event.ValidPriority(ev.Priority) {
		return nil, invalid("priority %q: want high, normal or low", ev.Priority)
	}
	data := []byte("{}")
	if ev.Data != nil {
		var err error
		if data, err = json.Marshal(ev.Data); err != nil {
			return nil, invalid("data: %v", err)
		}
	}
	if !event.IsObject(data) {
		return nil, invalid("data: want a JSON object, got %.20s", data)
	}
	if len(data) > w.maxData {
		return nil, invalid("data is %d bytes; the limit is %d", len(data), w.maxData)
	}
	var resource any // NULL without one
	if r := ev.Resource; r != nil {
		if r.ID == "" || len(r.ID) > event.MaxResourceIDLength || len(r.Type) > event.MaxResourceTypeLength || len(r.URL) > event.MaxResourceURLLength ||
			strings.ContainsRune(r.ID+r.Type+r.URL, 0) {
			return nil, invalid("resource: want an id of at most 200 characters, a type of at most 200, a url of at most 2048, no NUL")
		}
		b, err := json.Marshal(r)
		if err != nil {
			return nil, invalid("resource: %v", err)
		}
		resource = string(b)
	}
	id := ev.ID
	if id == "" {
		id = NewID()
	}
	return []any{tenant, id, ev.Type, string(data), ev.Source, resource, ev.Priority}, nil
}

// NewID makes an event id as Herald's API does (event.NewID): "evt_", then 48 bits of Unix
// milliseconds and 80 random bits in lowercase base32, so ids sort by creation time.
func NewID() string { return event.NewID(time.Now()) }

// quoteTable quotes "name" or "schema.name" as SQL identifiers.
func quoteTable(name string) string {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
	}
	return strings.Join(parts, ".")
}
