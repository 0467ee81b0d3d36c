package redisstream

import "github.com/heraldhq/herald/internal/destination"

// connSettings are the connection settings an endpoint and a source share (Conn).
func connSettings() []destination.Setting {
	return []destination.Setting{
		{Name: "address", Kind: destination.SettingString, Required: true, Placeholder: "redis.internal:6379",
			Help: "host:port of the Redis server (not a URL)."},
		{Name: "db", Kind: destination.SettingInt, Default: 0, Help: "The logical database (SELECT)."},
		{Name: "username", Kind: destination.SettingString, Help: "The ACL user (Redis 6+); empty for the default user."},
		{Name: "password", Kind: destination.SettingString, Secret: true, Help: "The user's password, or the requirepass password."},
		{Name: "tls", Kind: destination.SettingBool, Default: false, Help: "Connect with TLS, verifying the server's certificate."},
	}
}

// Settings implements destination.Describer: the settings of docs/destinations/redis.md.
func (t *Type) Settings() []destination.Setting {
	return append(connSettings(),
		destination.Setting{Name: "stream", Kind: destination.SettingString, Destination: true, Required: true, Placeholder: "orders",
			Help: "The stream's key; the first XADD creates it."},
		destination.Setting{Name: "maxlen", Kind: destination.SettingInt,
			Help: "If set, every XADD trims the stream to about this many entries (MAXLEN ~ n). Empty: no trimming."},
	)
}

// Settings implements destination.Describer for the source: the settings of docs/sources/redis.md.
func (t *SourceType) Settings() []destination.Setting {
	return append(connSettings(),
		destination.Setting{Name: "stream", Kind: destination.SettingString, Destination: true, Required: true, Placeholder: "orders",
			Help: "The key of the stream to read. It must exist: Herald creates its consumer group on it, never the stream."},
		destination.Setting{Name: "start", Kind: destination.SettingString, Default: StartNew, Choices: []string{StartNew, StartAll},
			Help: "Where a consumer group Herald creates begins: new (entries added since the source was created) or all (the whole stream). An existing group keeps its position."},
		destination.Setting{Name: "claim_idle", Kind: destination.SettingDuration, Default: defaultClaimIdle.String(),
			Help: "How long an entry may stay delivered and unacknowledged before another member takes it over (100ms to 168h)."},
		destination.Setting{Name: "body_field", Kind: destination.SettingString, Default: FieldBody,
			Help: "The entry field holding the message body (where the Redis destination writes it); an entry without it becomes the object of its fields."},
	)
}
