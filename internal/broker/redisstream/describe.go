package redisstream

import "github.com/heraldhq/herald/internal/destination"

// Settings implements destination.Describer: the settings of docs/destinations/redis.md.
func (t *Type) Settings() []destination.Setting {
	return []destination.Setting{
		{Name: "address", Kind: destination.SettingString, Required: true, Placeholder: "redis.internal:6379",
			Help: "host:port of the Redis server (not a URL)."},
		{Name: "db", Kind: destination.SettingInt, Default: 0, Help: "The logical database (SELECT)."},
		{Name: "username", Kind: destination.SettingString, Help: "The ACL user (Redis 6+); empty for the default user."},
		{Name: "password", Kind: destination.SettingString, Secret: true, Help: "The user's password, or the requirepass password."},
		{Name: "tls", Kind: destination.SettingBool, Default: false, Help: "Connect with TLS, verifying the server's certificate."},
		{Name: "stream", Kind: destination.SettingString, Destination: true, Required: true, Placeholder: "orders",
			Help: "The stream's key; the first XADD creates it."},
		{Name: "maxlen", Kind: destination.SettingInt,
			Help: "If set, every XADD trims the stream to about this many entries (MAXLEN ~ n). Empty: no trimming."},
	}
}
