package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/seal"
)

// DestinationType is the endpoint's type, TypeWebhook when unset.
func (e *Endpoint) DestinationType() string {
	if e.Type == "" {
		return destination.TypeWebhook
	}
	return e.Type
}

// The helpers below are how both drivers store an endpoint's destination settings: the fields
// SecretFields names are taken out of the settings object and sealed together (one JSON object,
// bound to the endpoint id), the others stay a plain JSON object, so that no credential is ever
// stored in clear while the rest stays readable to an operator with a database shell.

func settingsAAD(endpointID string) []byte {
	return []byte("herald endpoint settings\x00" + endpointID)
}

// EncodeEndpointSettings splits e.Settings into its stored forms: plain, the object of the
// fields that are not secrets ("" for none), and sealed, the sealed object of those that are
// ("" for none). With keys nil the secret fields are stored in plaintext, as EncodeSecrets does
// (only tests that need no encryption do that).
func EncodeEndpointSettings(keys *seal.Keyring, e *Endpoint) (plain, sealed string, err error) {
	if len(e.Settings) == 0 || string(e.Settings) == "null" {
		return "", "", nil
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(e.Settings, &all); err != nil {
		return "", "", fmt.Errorf("endpoint %s settings: must be a JSON object: %w", e.ID, err)
	}
	secret := map[string]json.RawMessage{}
	for _, f := range e.SecretFields {
		if v, ok := all[f]; ok {
			secret[f] = v
			delete(all, f)
		}
	}
	if len(all) > 0 {
		b, err := json.Marshal(all)
		if err != nil {
			return "", "", fmt.Errorf("endpoint %s: encode settings: %w", e.ID, err)
		}
		plain = string(b)
	}
	if len(secret) == 0 {
		return plain, "", nil
	}
	b, err := json.Marshal(secret)
	if err != nil {
		return "", "", fmt.Errorf("endpoint %s: encode settings: %w", e.ID, err)
	}
	if keys == nil {
		return plain, string(b), nil
	}
	s, err := keys.Seal(b, settingsAAD(e.ID))
	if err != nil {
		return "", "", fmt.Errorf("endpoint %s: encrypt settings: %w", e.ID, err)
	}
	return plain, s, nil
}

// DecodeEndpointSettings reads what EncodeEndpointSettings stored into e (whose ID is set):
// Settings whole, with the secret fields unsealed, and SecretFields the secret fields found.
func DecodeEndpointSettings(keys *seal.Keyring, e *Endpoint, plain, sealed string) error {
	e.Settings, e.SecretFields = nil, nil
	if plain == "" && sealed == "" {
		return nil
	}
	all := map[string]json.RawMessage{}
	if plain != "" {
		if err := json.Unmarshal([]byte(plain), &all); err != nil {
			return fmt.Errorf("endpoint %s settings: %w", e.ID, err)
		}
	}
	if sealed != "" {
		doc := []byte(sealed)
		if seal.IsSealed(sealed) {
			if keys == nil {
				return fmt.Errorf("endpoint %s settings: %w", e.ID, ErrNoEncryptionKey)
			}
			var err error
			if doc, err = keys.Open(sealed, settingsAAD(e.ID)); err != nil {
				return fmt.Errorf("endpoint %s settings: %w", e.ID, err)
			}
		}
		var secret map[string]json.RawMessage
		if err := json.Unmarshal(doc, &secret); err != nil {
			return fmt.Errorf("endpoint %s settings: %w", e.ID, err)
		}
		for k, v := range secret {
			all[k] = v
			e.SecretFields = append(e.SecretFields, k)
		}
		slices.Sort(e.SecretFields)
	}
	b, err := json.Marshal(all)
	if err != nil {
		return fmt.Errorf("endpoint %s settings: %w", e.ID, err)
	}
	e.Settings = b
	return nil
}

// ResealEndpointSettings re-encrypts the sealed part of an endpoint's settings when it is
// plaintext or sealed with a key other than the current one. It returns the new stored form,
// or "" when nothing needs to change.
func ResealEndpointSettings(keys *seal.Keyring, endpointID, sealed string) (string, error) {
	if keys == nil {
		return "", fmt.Errorf("re-encrypt settings: %w", ErrNoEncryptionKey)
	}
	if sealed == "" || keys.IsCurrent(sealed) {
		return "", nil
	}
	doc := []byte(sealed)
	if seal.IsSealed(sealed) {
		var err error
		if doc, err = keys.Open(sealed, settingsAAD(endpointID)); err != nil {
			return "", fmt.Errorf("endpoint %s settings: %w", endpointID, err)
		}
	}
	s, err := keys.Seal(bytes.Clone(doc), settingsAAD(endpointID))
	if err != nil {
		return "", fmt.Errorf("endpoint %s: encrypt settings: %w", endpointID, err)
	}
	return s, nil
}
