package sqs

import "github.com/heraldhq/herald/internal/destination"

// Settings implements destination.Describer: the settings of docs/destinations/sqs.md.
func (t *Type) Settings() []destination.Setting {
	return []destination.Setting{
		{Name: "queue_url", Kind: destination.SettingString, Destination: true, Required: true, Placeholder: "https://sqs.eu-west-1.amazonaws.com/123456789012/orders",
			Help: "The queue's URL; a name ending in .fifo is a FIFO queue. No credentials in it."},
		{Name: "region", Kind: destination.SettingString, Required: true, Placeholder: "eu-west-1", Help: "The queue's AWS region."},
		{Name: "endpoint", Kind: destination.SettingString,
			Help: "The service's base URL, for a VPC endpoint or an SQS-compatible server; empty for AWS's regional endpoint."},
		{Name: "access_key_id", Kind: destination.SettingString, Required: true, Secret: true, Help: "The IAM access key id."},
		{Name: "secret_access_key", Kind: destination.SettingString, Required: true, Secret: true, Help: "The IAM secret access key."},
		{Name: "group_id", Kind: destination.SettingString, Choices: []string{"id", "type"}, Open: true,
			Help: "FIFO queues only: the message group, id (the event id), type (the event type, the default) or a fixed group id."},
	}
}
