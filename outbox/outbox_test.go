package outbox_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/outbox"
	"github.com/heraldhq/herald/webhook"
)

const adminKey = "hk_admin_test_0123456789abcdef"

// app is an application sharing a database with a running Herald node: its own pool on the
// node's schema, an orders table, and a receiver subscribed to the tenant's events.
type app struct {
	t        *testing.T
	node     *node.Node
	pool     *pgxpool.Pool
	url      string // the database, with the schema as search_path
	received chan delivery
	verifier *webhook.Verifier
}

type delivery struct {
	id   string // webhook-id
	body []byte
	err  error // the signature's verification
}

func startApp(t *testing.T) *app {
	t.Helper()
	base, schema := pgtest.Schema(t, "herald_outbox_")
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg := node.Config{
		Addr: "127.0.0.1:0", DataDir: t.TempDir(), Dev: true, APIKey: adminKey, DatabaseURL: base, DatabaseSchema: schema,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Dispatch: dispatch.Config{Rescan: time.Second},
	}
	cfg.Encryption.Key = base64.StdEncoding.EncodeToString(key)
	if os.Getenv("HERALD_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Errorf("close node: %v", err)
		}
	})
	a := &app{t: t, node: n, received: make(chan delivery, 100)}
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		a.received <- delivery{id: r.Header.Get("webhook-id"), body: body, err: a.verifier.Verify(body, r.Header)}
	}))
	t.Cleanup(rc.Close)

	a.api(201, "POST", "/v1/tenants", map[string]any{"id": "acme", "name": "Acme"}, nil)
	a.api(201, "POST", "/v1/event-types", map[string]any{"name": "order.created", "description": "An order was placed."}, nil)
	var ep struct {
		Secret string `json:"secret"`
	}
	a.api(201, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": rc.URL, "event_types": []string{"order.*"}}, &ep)
	if a.verifier, err = webhook.NewVerifier(ep.Secret); err != nil {
		t.Fatal(err)
	}

	a.url = base + "&search_path=" + schema
	if !strings.Contains(base, "?") {
		a.url = base + "?search_path=" + schema
	}
	if a.pool, err = pgxpool.New(context.Background(), a.url); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.pool.Close)
	if _, err := a.pool.Exec(context.Background(), `CREATE TABLE orders (id TEXT PRIMARY KEY, total INT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return a
}

// api calls Herald's API with the admin key; the answer must have status want.
func (a *app) api(want int, method, path string, body, out any) {
	a.t.Helper()
	buf, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, a.node.URL()+path, bytes.NewReader(buf))
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		a.t.Fatalf("%s %s = %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			a.t.Fatal(err)
		}
	}
}

// next waits for the next delivery.
func (a *app) next(within time.Duration) delivery {
	a.t.Helper()
	select {
	case d := <-a.received:
		return d
	case <-time.After(within):
		a.t.Fatalf("no delivery within %s", within)
		return delivery{}
	}
}

// placeOrder is the application's business transaction: the order and its event commit together,
// or neither does.
func placeOrder(ctx context.Context, pool *pgxpool.Pool, w *outbox.Writer, id string, total int, fail bool) (string, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO orders (id, total) VALUES ($1, $2)`, id, total); err != nil {
		return "", err
	}
	eventID, err := w.Publish(ctx, tx, "acme", outbox.Event{Type: "order.created", Data: map[string]any{"order": id, "total": total},
		Resource: &outbox.Resource{ID: id, Type: "order"}})
	if err != nil {
		return "", err
	}
	if fail {
		return "", errors.New("payment declined")
	}
	return eventID, tx.Commit(ctx)
}

func TestOutbox_CommittedEventIsDeliveredOnceRolledBackNever(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	ctx := context.Background()
	w := outbox.New()

	first, err := placeOrder(ctx, a.pool, w, "o1", 42, false)
	if err != nil {
		t.Fatal(err)
	}
	d := a.next(10 * time.Second)
	if d.err != nil || d.id != first {
		t.Fatalf("delivery %s (signature: %v), want %s signed", d.id, d.err, first)
	}
	var env struct {
		ID       string         `json:"id"`
		Type     string         `json:"type"`
		Data     map[string]any `json:"data"`
		Resource map[string]any `json:"resource"`
	}
	if err := json.Unmarshal(d.body, &env); err != nil {
		t.Fatal(err)
	}
	if env.ID != first || env.Type != "order.created" || env.Data["order"] != "o1" || env.Data["total"] != float64(42) || env.Resource["id"] != "o1" {
		t.Fatalf("delivered %s", d.body)
	}

	// The order fails after its event was written: neither exists.
	if _, err := placeOrder(ctx, a.pool, w, "o2", 7, true); err == nil {
		t.Fatal("the failing order committed")
	}
	// An order committed after the failed one is the barrier: had the failed order's event
	// escaped, the relay (which takes rows in the order they were written) would have published
	// it no later than this one.
	third, err := placeOrder(ctx, a.pool, w, "o3", 9, false)
	if err != nil {
		t.Fatal(err)
	}
	if d := a.next(10 * time.Second); d.id != third || d.err != nil {
		t.Fatalf("next delivery %s (signature: %v), want %s: the rolled back order's event must not exist", d.id, d.err, third)
	}
	select {
	case d := <-a.received:
		t.Fatalf("unexpected delivery %s: %s", d.id, d.body)
	case <-time.After(1500 * time.Millisecond):
	}
	var orders int
	if err := a.pool.QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&orders); err != nil || orders != 2 {
		t.Fatalf("%d orders (%v), want 2", orders, err)
	}
}

// Events written with database/sql in concurrent transactions are each delivered once, and a
// row refused by Herald (an unregistered type) waits in the outbox with its error until the type
// is registered.
func TestOutbox_DatabaseSQLAndRefusedRows(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	ctx := context.Background()
	db, err := sql.Open("pgx", a.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := outbox.New()

	const n = 20
	ids := make(chan string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Error(err)
				return
			}
			defer tx.Rollback()
			if _, err := tx.ExecContext(ctx, `INSERT INTO orders (id, total) VALUES ($1, $2)`, outbox.NewID(), i); err != nil {
				t.Error(err)
				return
			}
			id, err := w.PublishSQL(ctx, tx, "acme", outbox.Event{Type: "order.created", Data: json.RawMessage(`{"i": 1}`)})
			if err != nil {
				t.Error(err)
				return
			}
			if err := tx.Commit(); err != nil {
				t.Error(err)
				return
			}
			ids <- id
		})
	}
	wg.Wait()
	close(ids)
	want := map[string]bool{}
	for id := range ids {
		want[id] = true
	}
	for range n {
		d := a.next(10 * time.Second)
		if d.err != nil || !want[d.id] {
			t.Fatalf("delivery %s (signature: %v): not one of ours or delivered twice", d.id, d.err)
		}
		delete(want, d.id)
	}

	// An unregistered type: the row stays with Herald's reason.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	refused, err := w.PublishSQL(ctx, tx, "acme", outbox.Event{Type: "order.shipped", Data: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var lastError string
	deadline := time.Now().Add(10 * time.Second)
	for lastError == "" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		if err := db.QueryRowContext(ctx, `SELECT last_error FROM outbox WHERE event_id = $1 AND attempts > 0`, refused).Scan(&lastError); err != nil &&
			!errors.Is(err, sql.ErrNoRows) {
			t.Fatal(err)
		}
	}
	if !strings.Contains(lastError, "type: unknown event type") {
		t.Fatalf("last_error %q, want the unknown type named", lastError)
	}
	// The refusal shows in the node's metrics, as the relayed events do.
	resp, err := http.Get(a.node.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metricsText), `herald_outbox_refused_total{tenant="acme"}`) ||
		!strings.Contains(string(metricsText), `herald_events_published_total{tenant="acme"} 20`) {
		t.Fatalf("metrics lack the refused row or the 20 relayed events:\n%s", grepLines(string(metricsText), "herald_outbox", "herald_events_published"))
	}
	// Registered, it goes out on a later try (the first retry is 1 s after the failure).
	a.api(201, "POST", "/v1/event-types", map[string]any{"name": "order.shipped", "description": "Shipped."}, nil)
	if d := a.next(15 * time.Second); d.id != refused || d.err != nil {
		t.Fatalf("delivery %s (signature: %v), want %s", d.id, d.err, refused)
	}
}

// grepLines keeps the lines of text that contain one of the words.
func grepLines(text string, words ...string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		for _, w := range words {
			if strings.Contains(line, w) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
