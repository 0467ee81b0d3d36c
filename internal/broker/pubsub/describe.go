package pubsub

import "github.com/heraldhq/herald/internal/destination"

// Settings implements destination.Describer: the settings of docs/destinations/pubsub.md.
func (t *Type) Settings() []destination.Setting {
	return []destination.Setting{
		{Name: "project", Kind: destination.SettingString, Required: true, Placeholder: "my-project",
			Help: "The Google Cloud project that holds the topic."},
		{Name: "topic", Kind: destination.SettingString, Destination: true, Required: true, Placeholder: "orders",
			Help: "The topic id (or its full name projects/<project>/topics/<id>)."},
		{Name: "ordering_key", Kind: destination.SettingString, Default: "", Choices: []string{"", "id", "type"},
			Help: "The ordering key: id (the event id), type (the event type) or empty (no ordering)."},
		{Name: "endpoint", Kind: destination.SettingString, Placeholder: "pubsub.googleapis.com:443",
			Help: "host:port of an emulator or a private endpoint; empty for Google's."},
		{Name: "credentials_json", Kind: destination.SettingString, Secret: true,
			Help: "A service account key (the JSON file Google gives); required unless endpoint is set."},
	}
}
