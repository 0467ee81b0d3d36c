package outbox_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/heraldhq/herald/outbox"
)

// Order is the application's own data.
type Order struct {
	ID    string `json:"id"`
	Total int    `json:"total"`
}

// An application using pgx places an order and publishes order.created in the same transaction:
// if the commit fails, or the application rolls back, there is no event either. Herald, started
// with --database-url on the same database, delivers the event within a relay interval of the
// commit. (The package's tests run this flow against a real Herald.)
func ExampleWriter_Publish() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	// One Writer for the whole application. Herald started with --database-schema herald keeps
	// its tables there: name the table with its schema.
	w := outbox.New(outbox.WithTable("herald.outbox"))

	order := Order{ID: "ord_1001", Total: 4200}
	tx, err := pool.Begin(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback(ctx) // a no-op after Commit
	if _, err := tx.Exec(ctx, `INSERT INTO orders (id, total) VALUES ($1, $2)`, order.ID, order.Total); err != nil {
		log.Fatal(err)
	}
	eventID, err := w.Publish(ctx, tx, "acme", outbox.Event{
		Type:     "order.created",
		Data:     order,
		Resource: &outbox.Resource{ID: order.ID, Type: "order"},
	})
	if err != nil {
		log.Fatal(err) // an invalid event: nothing is committed
	}
	if err := tx.Commit(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("order placed; event", eventID)
}
