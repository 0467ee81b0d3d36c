package rabbitmq

import "github.com/heraldhq/herald/internal/destination"

// connSettings are the connection settings an endpoint and a source share (Connection).
func connSettings() []destination.Setting {
	return []destination.Setting{
		{Name: "url", Kind: destination.SettingString, Required: true, Placeholder: "amqp://rabbitmq.internal:5672/",
			Help: "The broker, amqp://host[:port][/vhost] or amqps://…. No password in it: use the password setting."},
		{Name: "username", Kind: destination.SettingString, Required: true,
			Help: "The user Herald logs in as (here or in the URL)."},
		{Name: "password", Kind: destination.SettingString, Secret: true, Help: "The user's password."},
	}
}

// Settings implements destination.Describer: the settings of docs/destinations/rabbitmq.md.
func (t *Type) Settings() []destination.Setting {
	return append(connSettings(),
		destination.Setting{Name: "exchange", Kind: destination.SettingString, Destination: true, Required: true, Placeholder: "(empty: the default exchange)",
			Help: "The exchange to publish to; it must exist. Empty is the default exchange, which routes to the queue named by the routing key."},
		destination.Setting{Name: "routing_key", Kind: destination.SettingString, Destination: true, Required: true, Placeholder: "orders",
			Help: "The routing key of every message (the queue's name with the default exchange). A message no queue takes is a failed attempt."},
		destination.Setting{Name: "persistent", Kind: destination.SettingBool, Default: true,
			Help: "Persistent messages: on a durable queue the broker writes them to disk before it confirms."},
	)
}

// Settings implements destination.Describer for the source: the settings of docs/sources/rabbitmq.md.
func (t *SourceType) Settings() []destination.Setting {
	return append(connSettings(),
		destination.Setting{Name: "queue", Kind: destination.SettingString, Destination: true, Required: true, Placeholder: "orders",
			Help: "The queue consumed. It must exist: Herald never declares it (its type, durability and bindings are yours)."},
		destination.Setting{Name: "prefetch", Kind: destination.SettingInt, Default: DefaultPrefetch,
			Help: "How many messages the broker hands Herald before it acknowledges any (basic.qos, 1 to 65535)."},
	)
}
