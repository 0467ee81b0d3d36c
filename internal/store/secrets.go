package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/heraldhq/herald/internal/seal"
	"github.com/heraldhq/herald/webhook"
)

// Signature schemes of an endpoint. The scheme is a property of its current key (whsec_ signs
// v1 HMAC-SHA256, whsk_ signs v1a Ed25519), so it is derived rather than stored: it can never
// disagree with the key the dispatcher signs with.
const (
	SchemeHMAC    = "hmac-sha256"
	SchemeEd25519 = "ed25519"
)

// SignatureScheme is the scheme of the endpoint's current key.
func (e *Endpoint) SignatureScheme() string {
	if len(e.Secrets) > 0 {
		return KeyScheme(e.Secrets[0].Key)
	}
	return SchemeHMAC
}

// KeyScheme is the scheme a signing key belongs to.
func KeyScheme(key string) string {
	if strings.HasPrefix(key, webhook.SigningKeyPrefix) {
		return SchemeEd25519
	}
	return SchemeHMAC
}

// The helpers below are how both drivers store an endpoint's secrets: a JSON list of
// {"key", "expires_at"}, each key sealed with the store's keyring. Keeping them here, not in
// the drivers, means the drivers cannot drift apart in what they write.

// secretsAAD binds a sealed key to its endpoint, so that a value copied into another endpoint's
// row does not open.
func secretsAAD(endpointID string) []byte { return []byte("herald endpoint secret\x00" + endpointID) }

// EncodeSecrets is the stored form of an endpoint's secrets. With keys nil the keys are stored
// in plaintext, as versions before encryption at rest did (tests of upgrades use this).
func EncodeSecrets(keys *seal.Keyring, endpointID string, secrets []Secret) ([]byte, error) {
	out := secrets
	if keys != nil && secrets != nil {
		out = make([]Secret, len(secrets))
		for i, s := range secrets {
			sealed, err := keys.Seal([]byte(s.Key), secretsAAD(endpointID))
			if err != nil {
				return nil, fmt.Errorf("endpoint %s: encrypt secret: %w", endpointID, err)
			}
			out[i] = Secret{Key: sealed, ExpiresAt: s.ExpiresAt}
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("endpoint %s: encode secrets: %w", endpointID, err)
	}
	return b, nil
}

// ErrNoEncryptionKey is returned for a sealed secret read by a store opened without keys.
var ErrNoEncryptionKey = errors.New("secret is encrypted but the store has no encryption key")

// DecodeSecrets reads what EncodeSecrets stored. A key without the sealed marker is plaintext
// written by an earlier version, and is returned as it is.
func DecodeSecrets(keys *seal.Keyring, endpointID string, raw []byte) ([]Secret, error) {
	var secrets []Secret
	if err := json.Unmarshal(raw, &secrets); err != nil {
		return nil, fmt.Errorf("endpoint %s secrets: %w", endpointID, err)
	}
	for i, s := range secrets {
		if !seal.IsSealed(s.Key) {
			continue
		}
		if keys == nil {
			return nil, fmt.Errorf("endpoint %s secrets: %w", endpointID, ErrNoEncryptionKey)
		}
		plain, err := keys.Open(s.Key, secretsAAD(endpointID))
		if err != nil {
			return nil, fmt.Errorf("endpoint %s secret %d: %w", endpointID, i, err)
		}
		secrets[i].Key = string(plain)
	}
	return secrets, nil
}

// ResealSecrets re-encrypts stored secrets whose keys are plaintext or sealed with a key other
// than the current one. It returns the new stored form, or nil when nothing needs to change.
func ResealSecrets(keys *seal.Keyring, endpointID string, raw []byte) ([]byte, error) {
	if keys == nil {
		return nil, fmt.Errorf("re-encrypt secrets: %w", ErrNoEncryptionKey)
	}
	var stored []Secret
	if err := json.Unmarshal(raw, &stored); err != nil {
		return nil, fmt.Errorf("endpoint %s secrets: %w", endpointID, err)
	}
	stale := false
	for _, s := range stored {
		if !keys.IsCurrent(s.Key) {
			stale = true
		}
	}
	if !stale {
		return nil, nil
	}
	secrets, err := DecodeSecrets(keys, endpointID, raw)
	if err != nil {
		return nil, err
	}
	return EncodeSecrets(keys, endpointID, secrets)
}
