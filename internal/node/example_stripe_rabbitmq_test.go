package node_test

// The internal service of docs/receiving.md, "Forward to a queue: Stripe → Herald → RabbitMQ":
// everything below the example's opening line is the program in that page, byte for byte
// (TestDocs_StripeRabbitMQConsumer checks it), and TestInbound_StripeToRabbitMQ runs handleMessage
// on what Herald puts on the queue. The example has no output, so it is compiled, not run.

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"

	amqp "github.com/rabbitmq/amqp091-go"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func Example_consumeStripeEventsFromRabbitMQ() {
	// The endpoint's signing secret: GET /v1/tenants/acme/endpoints/ep_…/secret.
	wh, err := standardwebhooks.NewWebhook(os.Getenv("HERALD_ENDPOINT_SECRET"))
	if err != nil {
		log.Fatal(err)
	}
	conn, err := amqp.Dial(os.Getenv("AMQP_URL")) // amqp://billing:…@rabbit.internal:5672/
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		log.Fatal(err)
	}
	// The queue Herald publishes to, and the one a policy dead-letters rejected messages to.
	for _, q := range []string{"stripe-events", "stripe-events-dead"} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			log.Fatal(err)
		}
	}
	if err := ch.Qos(32, 0, false); err != nil {
		log.Fatal(err)
	}
	deliveries, err := ch.Consume("stripe-events", "billing", false, false, false, false, nil)
	if err != nil {
		log.Fatal(err)
	}
	seen := map[string]bool{} // in production: a table keyed by webhook-id, written with the work
	for d := range deliveries {
		handleMessage(wh, seen, d, func(ev billingEvent) error {
			fmt.Printf("%s %s (Stripe %s): %s\n", ev.ID, ev.Type, ev.Inbound.ProviderID, ev.Data)
			return nil
		})
	}
}

// billingEvent is Herald's envelope; Data is the Stripe event, as Stripe sent it.
type billingEvent struct {
	ID      string          `json:"id"`   // Herald's event id, also the webhook-id header
	Type    string          `json:"type"` // "stripe." + Stripe's type: stripe.invoice.paid
	Data    json.RawMessage `json:"data"`
	Inbound struct {
		RequestID  string `json:"request_id"`  // the request Herald received
		ProviderID string `json:"provider_id"` // Stripe's evt_… id
	} `json:"inbound"`
}

// handleMessage verifies one message, skips it if its webhook-id was handled already, and
// acknowledges it once process has done its work.
func handleMessage(wh *standardwebhooks.Webhook, seen map[string]bool, d amqp.Delivery, process func(billingEvent) error) {
	h := http.Header{}
	for k, v := range d.Headers {
		if s, ok := v.(string); ok {
			h.Set(k, s)
		}
	}
	// A message may wait in the queue longer than the 5 minutes Verify allows: check the
	// signature, not the age. Replays of an old message are dropped by webhook-id below.
	if err := wh.VerifyIgnoringTimestamp(d.Body, h); err != nil {
		log.Printf("message %q: bad signature: %v", d.MessageId, err)
		_ = d.Reject(false) // not requeued: to the queue's dead-letter exchange, if it has one
		return
	}
	id := h.Get("webhook-id")
	if seen[id] {
		_ = d.Ack(false) // a duplicate: done already
		return
	}
	var ev billingEvent
	if err := json.Unmarshal(d.Body, &ev); err != nil {
		log.Printf("message %s: %v", id, err)
		_ = d.Reject(false)
		return
	}
	if err := process(ev); err != nil {
		log.Printf("message %s: %v", id, err)
		_ = d.Nack(false, true) // requeued: delivered again
		return
	}
	seen[id] = true
	_ = d.Ack(false)
}
