package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver; lib/pq works too

	"github.com/heraldhq/herald/outbox"
)

// The same with database/sql: PublishSQL takes a *sql.Tx.
func ExampleWriter_PublishSQL() {
	ctx := context.Background()
	db, err := sql.Open("pgx", os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	w := outbox.New(outbox.WithTable("herald.outbox"))

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback() // a no-op after Commit
	if _, err := tx.ExecContext(ctx, `UPDATE orders SET status = 'shipped' WHERE id = $1`, "ord_1001"); err != nil {
		log.Fatal(err)
	}
	eventID, err := w.PublishSQL(ctx, tx, "acme", outbox.Event{
		ID:   "ord_1001.shipped", // an id of your own makes a repeated publish a duplicate, not a second event
		Type: "order.shipped",
		Data: map[string]any{"id": "ord_1001", "carrier": "DHL"},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("order shipped; event", eventID)
}

// Events are checked before anything is written: what Herald would refuse for certain is an
// error at once, not a row that waits in the outbox.
func ExampleErrInvalid() {
	_, err := outbox.New().PublishSQL(context.Background(), nil, "acme", outbox.Event{Type: "order.created", Data: []string{"not", "an", "object"}})
	fmt.Println(err)
	// Output: outbox: invalid event: data: want a JSON object, got ["not","an","object"
}
