package kafka

import "github.com/heraldhq/herald/internal/destination"

// Settings implements destination.Describer: the settings of docs/destinations/kafka.md.
func (t *Type) Settings() []destination.Setting {
	return []destination.Setting{
		{Name: "brokers", Kind: destination.SettingList, Required: true, Placeholder: "kafka-1.internal:9092",
			Help: "Bootstrap brokers, host:port (1 to 16)."},
		{Name: "topic", Kind: destination.SettingString, Destination: true, Required: true, Placeholder: "orders",
			Help: "The topic every record goes to; it must exist."},
		{Name: "key", Kind: destination.SettingString, Default: "id", Choices: []string{"id", "type"}, Open: true,
			Help: "The record key, which picks the partition: id (the event id), type (the event type) or data.<field path>."},
		{Name: "sasl", Kind: destination.SettingString, Default: "none", Choices: []string{"none", "plain", "scram-sha-256", "scram-sha-512"},
			Help: "The SASL mechanism."},
		{Name: "username", Kind: destination.SettingString, Help: "The SASL user; required with a mechanism."},
		{Name: "password", Kind: destination.SettingString, Secret: true, Help: "The SASL password; required with a mechanism."},
		{Name: "tls", Kind: destination.SettingBool, Default: false, Help: "Connect over TLS, verifying the brokers' certificates."},
		{Name: "compression", Kind: destination.SettingString, Default: "none", Choices: []string{"none", "gzip", "snappy", "lz4", "zstd"},
			Help: "Batch compression."},
	}
}
