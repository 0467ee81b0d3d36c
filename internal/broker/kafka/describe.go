package kafka

import "github.com/heraldhq/herald/internal/destination"

// connSettings are the connection settings an endpoint and a source share (Conn), brokers
// first and the authentication after what the type reads or writes.
func connSettings() (brokers destination.Setting, auth []destination.Setting) {
	return destination.Setting{Name: "brokers", Kind: destination.SettingList, Required: true, Placeholder: "kafka-1.internal:9092",
			Help: "Bootstrap brokers, host:port (1 to 16)."},
		[]destination.Setting{
			{Name: "sasl", Kind: destination.SettingString, Default: "none", Choices: []string{"none", "plain", "scram-sha-256", "scram-sha-512"},
				Help: "The SASL mechanism."},
			{Name: "username", Kind: destination.SettingString, Help: "The SASL user; required with a mechanism."},
			{Name: "password", Kind: destination.SettingString, Secret: true, Help: "The SASL password; required with a mechanism."},
			{Name: "tls", Kind: destination.SettingBool, Default: false, Help: "Connect over TLS, verifying the brokers' certificates."},
		}
}

// Settings implements destination.Describer: the settings of docs/destinations/kafka.md.
func (t *Type) Settings() []destination.Setting {
	brokers, auth := connSettings()
	out := []destination.Setting{brokers,
		{Name: "topic", Kind: destination.SettingString, Destination: true, Required: true, Placeholder: "orders",
			Help: "The topic every record goes to; it must exist."},
		{Name: "key", Kind: destination.SettingString, Default: "id", Choices: []string{"id", "type"}, Open: true,
			Help: "The record key, which picks the partition: id (the event id), type (the event type) or data.<field path>."},
	}
	return append(append(out, auth...), destination.Setting{Name: "compression", Kind: destination.SettingString, Default: "none",
		Choices: []string{"none", "gzip", "snappy", "lz4", "zstd"}, Help: "Batch compression."})
}

// Settings implements destination.Describer for the source: the settings of docs/sources/kafka.md.
func (t *SourceType) Settings() []destination.Setting {
	brokers, auth := connSettings()
	out := []destination.Setting{brokers,
		{Name: "topics", Kind: destination.SettingList, Destination: true, Required: true, Placeholder: "orders",
			Help: "The topics the consumer group reads (1 to 64). They must exist: Herald never creates a topic."},
		{Name: "start", Kind: destination.SettingString, Default: StartNew, Choices: []string{StartNew, StartAll},
			Help: "Where the group begins on a partition it has no committed offset for: new (records produced since the source was created) or all (every record the topic holds)."},
	}
	return append(out, auth...)
}
