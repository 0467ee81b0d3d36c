package webhook

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Header names and key formats defined by Standard Webhooks.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"

	// SecretPrefix marks an HMAC secret: whsec_ + base64(std) of 24..64
	// random bytes.
	SecretPrefix = "whsec_"
	// SigningKeyPrefix marks an Ed25519 private key (v1a signatures):
	// whsk_ + base64(std) of the 64-byte private key.
	SigningKeyPrefix = "whsk_"
	// PublicKeyPrefix marks an Ed25519 public key (v1a verification):
	// whpk_ + base64(std) of the 32-byte public key.
	PublicKeyPrefix = "whpk_"

	// DefaultTolerance is how far a delivery's timestamp may be from the
	// receiver's clock, as the specification recommends.
	DefaultTolerance = 5 * time.Minute
)

// Secret sizes. The lower bound keeps brute force out of reach; the upper one
// is what the specification allows, and a secret longer than the SHA-256
// block would be hashed down by HMAC anyway.
const (
	minSecretLen = 24
	maxSecretLen = 64
	newSecretLen = 32
)

// ErrInvalidKey is wrapped by every error reporting a malformed secret or key,
// so callers validating user input can tell it apart from other failures.
var ErrInvalidKey = errors.New("webhook: invalid key")

// NewSecret returns a new HMAC secret: whsec_ + base64 of 32 random bytes from
// crypto/rand.
func NewSecret() (string, error) {
	key := make([]byte, newSecretLen)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("webhook: generate secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// DecodeSecret validates an HMAC secret and returns the raw key. The whsec_
// prefix is optional, as in the reference libraries, because receivers often
// store only the base64 part. Error messages never include key material, so
// they are safe to log.
func DecodeSecret(s string) ([]byte, error) {
	enc := strings.TrimPrefix(s, SecretPrefix)
	// '_' is not in the standard base64 alphabet, so its presence means a
	// prefix of another kind (typically whsk_ or whpk_); say so rather than
	// report a confusing base64 error.
	if strings.Contains(enc, "_") {
		return nil, fmt.Errorf("%w: unexpected prefix, want %q", ErrInvalidKey, SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: decode secret: %w", ErrInvalidKey, err)
	}
	if len(key) < minSecretLen || len(key) > maxSecretLen {
		return nil, fmt.Errorf("%w: secret is %d bytes, want %d to %d",
			ErrInvalidKey, len(key), minSecretLen, maxSecretLen)
	}
	return key, nil
}

// NewSigningKey returns a new Ed25519 key pair for v1a signatures, encoded as
// "whsk_"+base64(64-byte private key) and "whpk_"+base64(32-byte public key),
// the convention Svix uses. Only the public key should be given to receivers.
func NewSigningKey() (private, public string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("webhook: generate signing key: %w", err)
	}
	return SigningKeyPrefix + base64.StdEncoding.EncodeToString(priv),
		PublicKeyPrefix + base64.StdEncoding.EncodeToString(pub), nil
}

// PublicKey returns the whpk_ public key matching a whsk_ signing key, so a
// sender that stores only the signing key can show receivers what to verify
// with.
func PublicKey(signingKey string) (string, error) {
	priv, err := decodeSigningKey(signingKey)
	if err != nil {
		return "", err
	}
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)), nil
}

// decodeSigningKey parses a whsk_ key. The prefix is required: unlike HMAC
// secrets, the bare base64 of an Ed25519 key is indistinguishable from a
// secret of the same length.
func decodeSigningKey(s string) (ed25519.PrivateKey, error) {
	enc, ok := strings.CutPrefix(s, SigningKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: signing key must start with %q", ErrInvalidKey, SigningKeyPrefix)
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: decode signing key: %w", ErrInvalidKey, err)
	}
	if len(raw) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: signing key is %d bytes, want %d",
			ErrInvalidKey, len(raw), ed25519.PrivateKeySize)
	}
	// The 64 bytes are seed || public key. If the halves disagree (a
	// corrupted or hand-assembled key) every signature would fail to verify
	// against the published public key, so refuse the key up front.
	priv := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
	if !bytes.Equal(priv[ed25519.SeedSize:], raw[ed25519.SeedSize:]) {
		return nil, fmt.Errorf("%w: signing key's public half does not match its seed", ErrInvalidKey)
	}
	return priv, nil
}

// decodePublicKey parses a whpk_ key; the prefix is required for the same
// reason as in decodeSigningKey.
func decodePublicKey(s string) (ed25519.PublicKey, error) {
	enc, ok := strings.CutPrefix(s, PublicKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: public key must start with %q", ErrInvalidKey, PublicKeyPrefix)
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: decode public key: %w", ErrInvalidKey, err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key is %d bytes, want %d",
			ErrInvalidKey, len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}
