package natsdest

import "github.com/heraldhq/herald/internal/destination"

// Settings implements destination.Describer: the settings of docs/destinations/nats.md.
func (t *Type) Settings() []destination.Setting {
	return []destination.Setting{
		{Name: "url", Kind: destination.SettingString, Required: true, Placeholder: "nats://nats.internal:4222",
			Help: "The NATS server, nats://host:port (several servers of one cluster comma-separated). No user or password in it: use the settings below."},
		{Name: "subject", Kind: destination.SettingString, Destination: true, Required: true, Placeholder: "orders.events",
			Help: "The subject each message is published to: dot-separated tokens, no wildcards, not starting with $. A JetStream stream must capture it."},
		{Name: "stream", Kind: destination.SettingString, Destination: true,
			Help: "If set, the stream the subject must land in: a message captured by another stream fails instead of landing in the wrong one."},
		{Name: "username", Kind: destination.SettingString, Help: "User for user and password authentication (with password)."},
		{Name: "password", Kind: destination.SettingString, Secret: true, Help: "The user's password."},
		{Name: "token", Kind: destination.SettingString, Secret: true, Help: "Token authentication, instead of a user and password."},
		{Name: "tls", Kind: destination.SettingBool, Default: false, Help: "Require TLS to the servers (verified against the system's roots)."},
	}
}
