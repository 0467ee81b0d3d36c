package node

import (
	"log/slog"
	"net/url"
	"os"

	"github.com/heraldhq/herald/internal/broker/kafka"
	natsdest "github.com/heraldhq/herald/internal/broker/nats"
	"github.com/heraldhq/herald/internal/broker/pubsub"
	"github.com/heraldhq/herald/internal/broker/rabbitmq"
	"github.com/heraldhq/herald/internal/broker/redisstream"
	"github.com/heraldhq/herald/internal/broker/sqs"
	"github.com/heraldhq/herald/internal/destination"
	webhookdest "github.com/heraldhq/herald/internal/destination/webhook"
	"github.com/heraldhq/herald/internal/httpsend"
)

// brokerTypes are the destination types a node has beside webhook, one constructor each: a new
// type is a package under internal/broker and one line here.
func brokerTypes() []func(destination.Env) destination.Type {
	return []func(destination.Env) destination.Type{
		func(env destination.Env) destination.Type { return natsdest.New(env) },
		func(env destination.Env) destination.Type { return rabbitmq.New(env) },
		func(env destination.Env) destination.Type { return redisstream.New(env) },
		func(env destination.Env) destination.Type { return kafka.New(env) },
		func(env destination.Env) destination.Type { return pubsub.New(env) },
		func(env destination.Env) destination.Type { return sqs.New(env) },
	}
}

// destinations builds the node's registry of destination types: webhook, sent with the node's
// two clients (ordinary, and internal for endpoints an admin marked internal), the broker
// types, and extra, the test's own. Broker types dial through the same two clients' guards.
func destinations(cfg Config, log *slog.Logger, client, internal *httpsend.Client) (*destination.Registry, error) {
	env := destination.Env{
		Dial: client.DialContext, InternalDial: internal.DialContext,
		Logger:         log.With("component", "destinations"),
		MaxConnections: cfg.BrokerMaxConnections,
	}
	types := []destination.Type{webhookdest.New(client, internal, webhookdest.WithHandshakeOrigin(webhookOrigin(cfg)))}
	for _, newType := range append(brokerTypes(), cfg.Destinations...) {
		types = append(types, newType(env))
	}
	return destination.NewRegistry(types...)
}

// webhookOrigin is the origin the CloudEvents handshake sends: --webhook-origin, else the host of
// --public-url, else the machine's host name.
func webhookOrigin(cfg Config) string {
	if cfg.WebhookOrigin != "" {
		return cfg.WebhookOrigin
	}
	if u, err := url.Parse(cfg.PublicURL); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return webhookdest.DefaultHandshakeOrigin
}
