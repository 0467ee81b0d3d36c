package pubsub

import "github.com/heraldhq/herald/internal/destination"

// connSettings are the connection settings an endpoint and a source share (Conn): the project
// first, the endpoint and credentials after what the type reads or writes.
func connSettings() (project destination.Setting, access []destination.Setting) {
	return destination.Setting{Name: "project", Kind: destination.SettingString, Required: true, Placeholder: "my-project",
			Help: "The Google Cloud project that holds the topic or subscription."},
		[]destination.Setting{
			{Name: "endpoint", Kind: destination.SettingString, Placeholder: "pubsub.googleapis.com:443",
				Help: "host:port of an emulator or a private endpoint; empty for Google's."},
			{Name: "credentials_json", Kind: destination.SettingString, Secret: true,
				Help: "A service account key (the JSON file Google gives); required unless endpoint is set."},
		}
}

// Settings implements destination.Describer: the settings of docs/destinations/pubsub.md.
func (t *Type) Settings() []destination.Setting {
	project, access := connSettings()
	return append([]destination.Setting{project,
		{Name: "topic", Kind: destination.SettingString, Destination: true, Required: true, Placeholder: "orders",
			Help: "The topic id (or its full name projects/<project>/topics/<id>)."},
		{Name: "ordering_key", Kind: destination.SettingString, Default: "", Choices: []string{"", "id", "type"},
			Help: "The ordering key: id (the event id), type (the event type) or empty (no ordering)."},
	}, access...)
}

// Settings implements destination.Describer for the source: the settings of docs/sources/pubsub.md.
func (st *SourceType) Settings() []destination.Setting {
	project, access := connSettings()
	return append([]destination.Setting{project,
		{Name: "subscription", Kind: destination.SettingString, Destination: true, Required: true, Placeholder: "orders-herald",
			Help: "The subscription id (or its full name projects/<project>/subscriptions/<id>). It must exist: Herald never creates it."},
	}, access...)
}
