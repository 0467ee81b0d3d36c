package natsdest

import "github.com/heraldhq/herald/internal/destination"

// connSettings are the connection settings an endpoint and a source share (Conn).
func connSettings() []destination.Setting {
	return []destination.Setting{
		{Name: "url", Kind: destination.SettingString, Required: true, Placeholder: "nats://nats.internal:4222",
			Help: "The NATS server, nats://host:port (several servers of one cluster comma-separated). No user or password in it: use the settings below."},
		{Name: "username", Kind: destination.SettingString, Help: "User for user and password authentication (with password)."},
		{Name: "password", Kind: destination.SettingString, Secret: true, Help: "The user's password."},
		{Name: "token", Kind: destination.SettingString, Secret: true, Help: "Token authentication, instead of a user and password."},
		{Name: "tls", Kind: destination.SettingBool, Default: false, Help: "Require TLS to the servers (verified against the system's roots)."},
	}
}

// Settings implements destination.Describer: the settings of docs/destinations/nats.md.
func (t *Type) Settings() []destination.Setting {
	c := connSettings()
	return append(c[:1:1], append([]destination.Setting{
		{Name: "subject", Kind: destination.SettingString, Destination: true, Required: true, Placeholder: "orders.events",
			Help: "The subject each message is published to: dot-separated tokens, no wildcards, not starting with $. A JetStream stream must capture it."},
		{Name: "stream", Kind: destination.SettingString, Destination: true,
			Help: "If set, the stream the subject must land in: a message captured by another stream fails instead of landing in the wrong one."},
	}, c[1:]...)...)
}

// Settings implements destination.Describer for the source: the settings of docs/sources/nats.md.
func (t *SourceType) Settings() []destination.Setting {
	c := connSettings()
	return append(c[:1:1], append([]destination.Setting{
		{Name: "stream", Kind: destination.SettingString, Destination: true, Required: true, Placeholder: "ORDERS",
			Help: "The JetStream stream to read. It must exist: Herald creates its durable consumer on it, never the stream."},
		{Name: "filter_subject", Kind: destination.SettingString, Placeholder: "orders.>",
			Help: "Read only the stream's messages on these subjects (wildcards * and > as whole tokens); empty: the whole stream."},
		{Name: "ack_wait", Kind: destination.SettingDuration, Default: "30s",
			Help: "How long a message delivered to Herald and not acknowledged waits before JetStream delivers it again (1s to 12h)."},
		{Name: "max_ack_pending", Kind: destination.SettingInt, Default: defaultMaxAckPending,
			Help: "The most messages delivered and not yet acknowledged, over all the nodes (1 to 100000)."},
	}, c[1:]...)...)
}
