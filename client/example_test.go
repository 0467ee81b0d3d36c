package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/heraldhq/herald/client"
)

// An application publishes an event over the API. A retry, by the client or by the application
// with the same ID, never makes a second event.
func ExampleClient_Publish() {
	c := client.New("http://127.0.0.1:8080", os.Getenv("HERALD_API_KEY"))
	p, err := c.Publish(context.Background(), "acme", client.Event{
		ID:   "ord_1001.created", // optional: generated when empty
		Type: "order.created",
		Data: map[string]any{"id": "ord_1001", "total": 4200},
	})
	if apiErr, ok := errors.AsType[*client.APIError](err); ok {
		for _, d := range apiErr.Errors {
			log.Printf("refused: %s: %s", d.Location, d.Message) // e.g. body.type: unknown event type
		}
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.ID, p.Deliveries, p.Duplicate)
}
