package node_test

import (
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/destination/desttest"
	"github.com/heraldhq/herald/internal/node"
)

// A node delivers to an endpoint of a destination type from its registry: created through the
// API with its config, its events reach the type's sender signed as a webhook is, and the type
// got the node's guarded dialers and connection bound.
func TestNode_DestinationTypeEndToEnd(t *testing.T) {
	t.Parallel()
	typ := desttest.New()
	var env destination.Env
	h := start(t, func(c *node.Config) {
		c.BrokerMaxConnections = 7
		c.Destinations = append(c.Destinations, func(e destination.Env) destination.Type {
			env = e
			return typ
		})
	})
	if env.Dial == nil || env.InternalDial == nil || env.Logger == nil || env.MaxConnections != 7 {
		t.Fatalf("the type got %+v, want both dialers, a logger and MaxConnections 7", env)
	}
	h.setup("acme", "order.created")
	ep := h.endpoint("acme", map[string]any{"type": "memory", "event_types": []string{"order.created"},
		"config": map[string]any{"queue": "orders", "password": "s3cret-pw"}})
	if ep.Secret == "" {
		t.Fatal("no signing secret in the create answer")
	}
	p := h.publish("acme", map[string]any{"type": "order.created", "data": map[string]any{"n": 1}})
	eventually(t, 30*time.Second, "the message", func() bool { return len(typ.Delivered()) > 0 })
	d := typ.Delivered()[0]
	wh, err := standardwebhooks.NewWebhook(ep.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(d.Message.Body, d.Message.Header); err != nil {
		t.Fatalf("the message does not verify: %v", err)
	}
	if d.Message.ID != p.ID || d.Message.EventType != "order.created" || !strings.Contains(string(d.Message.Body), `"n":1`) {
		t.Errorf("message %s of type %s: %s", d.Message.ID, d.Message.EventType, d.Message.Body)
	}
	if !strings.Contains(string(d.Target.Settings), `"password":"s3cret-pw"`) {
		t.Errorf("the sender was opened without the unsealed password: %s", d.Target.Settings)
	}
	eventually(t, 30*time.Second, "the delivery to succeed", func() bool {
		ds := h.deliveries("/v1/tenants/acme/events/" + p.ID + "/deliveries")
		return len(ds) == 1 && ds[0].State == "succeeded"
	})
}
