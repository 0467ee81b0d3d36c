package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/seal"
)

// BrokerSource is a tenant's source that reads a message broker (a NATS JetStream stream, a
// RabbitMQ queue, a Redis stream, a Kafka topic: Type names which, see internal/source) and
// turns each message into an event of the tenant, by Mapping. Every node runs a consumer of
// each enabled broker source; they share its messages (internal/source/runner.go).
//
// Settings are the type's settings as its Check returned them, credentials included: drivers
// store them sealed with the store's keyring (EncodeBrokerSettings), bound to the source's id,
// as they store an HTTP source's settings.
type BrokerSource struct {
	ID       string // "bsrc_…"
	TenantID string
	Name     string
	Type     string
	Settings json.RawMessage
	// Mapping is the source.Mapping as JSON (event type, event id), stored in clear.
	Mapping json.RawMessage
	// Schema is a JSON Schema the event data must satisfy; a message that does not is
	// quarantined (a received request of the source). nil: none.
	Schema    json.RawMessage
	Enabled   bool
	Health    BrokerHealth
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Broker source health states.
const (
	BrokerStarting  = "starting"
	BrokerHealthy   = "healthy"
	BrokerUnhealthy = "unhealthy"
)

// BrokerHealth is what the runners last reported of a broker source: State (one of the
// Broker* states), the last error (never a credential) and since when the state holds.
type BrokerHealth struct {
	State     string
	LastError string
	Since     time.Time
}

func brokerAAD(sourceID string) []byte { return []byte("herald broker source settings\x00" + sourceID) }

// EncodeBrokerSettings is the stored form of a broker source's settings: sealed with keys, bound
// to the source id (plaintext with keys nil, for tests that need no encryption).
func EncodeBrokerSettings(keys *seal.Keyring, sourceID string, settings json.RawMessage) (string, error) {
	if len(settings) == 0 {
		settings = json.RawMessage(`{}`)
	}
	if keys == nil {
		return string(settings), nil
	}
	s, err := keys.Seal(settings, brokerAAD(sourceID))
	if err != nil {
		return "", fmt.Errorf("broker source %s: encrypt settings: %w", sourceID, err)
	}
	return s, nil
}

// ResealBrokerSettings re-encrypts stored broker source settings (plaintext, or sealed with an
// old key) with the current key; "" when they are sealed with it already.
func ResealBrokerSettings(keys *seal.Keyring, sourceID, raw string) (string, error) {
	if keys == nil {
		return "", fmt.Errorf("re-encrypt broker source settings: %w", ErrNoEncryptionKey)
	}
	if keys.IsCurrent(raw) {
		return "", nil
	}
	plain, err := DecodeBrokerSettings(keys, sourceID, raw)
	if err != nil {
		return "", err
	}
	return EncodeBrokerSettings(keys, sourceID, plain)
}

// DecodeBrokerSettings reads what EncodeBrokerSettings stored.
func DecodeBrokerSettings(keys *seal.Keyring, sourceID, raw string) (json.RawMessage, error) {
	if !seal.IsSealed(raw) {
		return json.RawMessage(raw), nil
	}
	if keys == nil {
		return nil, fmt.Errorf("broker source %s settings: %w", sourceID, ErrNoEncryptionKey)
	}
	plain, err := keys.Open(raw, brokerAAD(sourceID))
	if err != nil {
		return nil, fmt.Errorf("broker source %s settings: %w", sourceID, err)
	}
	return plain, nil
}
