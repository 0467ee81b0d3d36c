package destination

// A type may describe its settings, so that forms (the dashboard, the tenant portal) and clients
// are built from the type itself rather than from a second copy of its documentation. The API
// serves the descriptions at GET /v1/destination-types, and those of the broker source types
// (internal/source), which describe their settings the same way, at GET /v1/source-types.
// Describing is optional: a type without Describer still works, and forms then offer its config
// as raw JSON.

// SettingKind is the JSON shape of a setting's value.
type SettingKind string

// The kinds of settings.
const (
	SettingString   SettingKind = "string"   // a JSON string
	SettingBool     SettingKind = "bool"     // true or false
	SettingInt      SettingKind = "int"      // a JSON integer
	SettingList     SettingKind = "list"     // a JSON array of strings
	SettingDuration SettingKind = "duration" // a Go duration string ("5s", "1m30s")
)

// Setting describes one field of a type's settings (the endpoint's "config").
type Setting struct {
	// Name is the field's JSON name, as Check reports it in a FieldError.
	Name string      `json:"name"`
	Kind SettingKind `json:"kind"`
	// Required: Check refuses the settings without it.
	Required bool `json:"required,omitempty" doc:"The config needs it."`
	// Secret: a credential (one of the type's Secrets()), sealed at rest and never shown.
	Secret bool `json:"secret,omitempty" doc:"A credential: sealed at rest, never shown (answers list it in config_secrets when set); an update that omits it keeps it."`
	// Default is the value Check fills in when the field is absent (nil: none).
	Default any `json:"default,omitempty" doc:"The value used when it is absent."`
	// Choices, when set, are the only values Check accepts (for a string), or the usual ones
	// when Open is true.
	Choices []string `json:"choices,omitempty" doc:"The values accepted (or, with open, the usual ones)."`
	// Open: Choices are suggestions, other values are accepted too.
	Open bool `json:"open,omitempty" doc:"Values other than choices are accepted too."`
	// Destination: the field says where messages go (a subject, exchange, routing key, stream,
	// topic, queue): lists show these as the endpoint's destination, as they show a webhook's url.
	// For a source type: where the source reads (a stream, queue, topics, subscription).
	Destination bool `json:"destination,omitempty" doc:"The field says where messages go (a subject, stream, topic, queue), or for a source type where it reads: lists show it as the endpoint's destination or the source's origin."`
	// Multiline: the value spans lines (a PEM certificate or key); forms show a text area.
	Multiline bool `json:"multiline,omitempty" doc:"The value spans lines (PEM): forms show a text area."`
	// Placeholder is an example value to show in an empty input.
	Placeholder string `json:"placeholder,omitempty" doc:"An example value."`
	// Help is one or two sentences a person filling a form understands.
	Help string `json:"help" doc:"What it means, in a sentence or two."`
}

// Describer is implemented by a Type that describes its settings, in the order a form shows
// them. Every name in Secrets() is a Setting with Secret set.
type Describer interface {
	Settings() []Setting
}

// Describe is the type's settings, or nil when it does not describe them. t is a destination
// Type or a broker source type (source.Type).
func Describe(t any) []Setting {
	if d, ok := t.(Describer); ok {
		return d.Settings()
	}
	return nil
}
