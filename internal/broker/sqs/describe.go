package sqs

import "github.com/heraldhq/herald/internal/destination"

// connSettings are the connection settings an endpoint and a source share (Conn): the queue,
// where messages go or are read from, is one of them.
func connSettings() []destination.Setting {
	return []destination.Setting{
		{Name: "queue_url", Kind: destination.SettingString, Destination: true, Required: true, Placeholder: "https://sqs.eu-west-1.amazonaws.com/123456789012/orders",
			Help: "The queue's URL; a name ending in .fifo is a FIFO queue. No credentials in it."},
		{Name: "region", Kind: destination.SettingString, Required: true, Placeholder: "eu-west-1", Help: "The queue's AWS region."},
		{Name: "endpoint", Kind: destination.SettingString,
			Help: "The service's base URL, for a VPC endpoint or an SQS-compatible server; empty for AWS's regional endpoint."},
		{Name: "access_key_id", Kind: destination.SettingString, Required: true, Secret: true, Help: "The IAM access key id."},
		{Name: "secret_access_key", Kind: destination.SettingString, Required: true, Secret: true, Help: "The IAM secret access key."},
	}
}

// Settings implements destination.Describer: the settings of docs/destinations/sqs.md.
func (t *Type) Settings() []destination.Setting {
	return append(connSettings(), destination.Setting{Name: "group_id", Kind: destination.SettingString, Choices: []string{"id", "type"}, Open: true,
		Help: "FIFO queues only: the message group, id (the event id), type (the event type, the default) or a fixed group id."})
}

// Settings implements destination.Describer for the source: the settings of docs/sources/sqs.md.
func (st *SourceType) Settings() []destination.Setting {
	return append(connSettings(), destination.Setting{Name: "visibility_timeout", Kind: destination.SettingInt, Default: defaultVisibility,
		Help: "How long, in seconds, a received message stays hidden from the other consumers before SQS delivers it again, unless Herald deleted it (1 to 43200)."})
}
