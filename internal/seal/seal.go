// Package seal encrypts the credentials Herald stores — endpoint signing secrets and Ed25519
// private keys — with AES-256-GCM under a master key, so that a copy of the database (a backup,
// a stolen disk, a read-only SQL account) reveals none of them.
//
// A sealed value is text, so it fits the columns that held the plaintext:
//
//	enc:v1:<key id>:<base64url(nonce || ciphertext || tag)>
//
// The nonce is 96 random bits, drawn afresh for every value. The key id names the master key
// that sealed the value, so that several keys can coexist while the master key is rotated: a
// Keyring seals with its current key and opens with any key it holds. The header (version and
// key id) and a caller's context (an endpoint id) are authenticated as additional data, so a
// value moved to another endpoint, or given another key id, fails to open like a tampered one.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the size of a master key: AES-256.
const KeySize = 32

// prefix marks a sealed value. No plaintext Herald stores starts with it (secrets start with
// whsec_ or whsk_), which is how values written before encryption are told apart.
const prefix = "enc:v1:"

// Errors returned by Open.
var (
	// ErrUnknownKey means the value was sealed with a master key the keyring does not hold.
	ErrUnknownKey = errors.New("seal: sealed with an unknown master key")
	// ErrCorrupt means the value is malformed or was altered (or its context differs).
	ErrCorrupt = errors.New("seal: value is corrupt or was tampered with")
	// ErrNotSealed means Open was given a value without the sealed marker.
	ErrNotSealed = errors.New("seal: value is not sealed")
)

type key struct {
	id   string
	aead cipher.AEAD
	// prk keys Derive (derive.go): a pseudorandom key extracted from the master key, so that the
	// master key itself is never used for anything but AES-GCM.
	prk []byte
}

// Keyring holds the current master key, which seals, and older ones, which only open. It is
// immutable and safe for concurrent use.
type Keyring struct {
	current *key
	byID    map[string]*key
}

// NewKeyring returns a keyring that seals with current and opens values sealed with current or
// any of old. Every key must be KeySize bytes.
func NewKeyring(current []byte, old ...[]byte) (*Keyring, error) {
	k := &Keyring{byID: map[string]*key{}}
	for i, raw := range append([][]byte{current}, old...) {
		what := "current key"
		if i > 0 {
			what = fmt.Sprintf("old key %d", i)
		}
		if len(raw) != KeySize {
			return nil, fmt.Errorf("seal: %s is %d bytes, want %d", what, len(raw), KeySize)
		}
		id := keyID(raw)
		if _, ok := k.byID[id]; ok {
			continue // the same key given twice (an old key still listed as current)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("seal: %s: %w", what, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("seal: %s: %w", what, err)
		}
		kk := &key{id: id, aead: aead, prk: extract(raw)}
		k.byID[id] = kk
		if i == 0 {
			k.current = kk
		}
	}
	return k, nil
}

// keyID names a key without revealing it: the first 4 bytes of a domain-separated SHA-256, as
// hex. Ids are derived, not configured, so an operator cannot mislabel a key.
func keyID(raw []byte) string {
	h := sha256.New()
	h.Write([]byte("herald seal key id\x00"))
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil)[:4])
}

// ID is the id of the current key, the one Seal uses.
func (k *Keyring) ID() string { return k.current.id }

// IDs are the ids of every key the keyring can open with, current first.
func (k *Keyring) IDs() []string {
	ids := []string{k.current.id}
	for id := range k.byID {
		if id != k.current.id {
			ids = append(ids, id)
		}
	}
	return ids
}

// Seal encrypts plaintext with the current key. aad binds the value to its context (for an
// endpoint's secret, the endpoint's id): Open must be given the same aad.
func (k *Keyring) Seal(plaintext, aad []byte) (string, error) {
	header := prefix + k.current.id + ":"
	nonce := make([]byte, k.current.aead.NonceSize(), k.current.aead.NonceSize()+len(plaintext)+k.current.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: nonce: %w", err)
	}
	out := k.current.aead.Seal(nonce, nonce, plaintext, additional(header, aad))
	return header + base64.RawURLEncoding.EncodeToString(out), nil
}

// Open decrypts a value made by Seal with any key of the keyring. It fails with ErrUnknownKey
// when the value's key is not held, and ErrCorrupt when it was altered or aad differs.
func (k *Keyring) Open(sealed string, aad []byte) ([]byte, error) {
	id, body, ok := split(sealed)
	if !ok {
		if !IsSealed(sealed) {
			return nil, ErrNotSealed
		}
		return nil, ErrCorrupt
	}
	kk, ok := k.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w (key id %s; this node holds %s)", ErrUnknownKey, id, strings.Join(k.IDs(), ", "))
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(raw) < kk.aead.NonceSize()+kk.aead.Overhead() {
		return nil, ErrCorrupt
	}
	n := kk.aead.NonceSize()
	plain, err := kk.aead.Open(nil, raw[:n], raw[n:], additional(prefix+id+":", aad))
	if err != nil {
		return nil, ErrCorrupt
	}
	return plain, nil
}

// IsCurrent reports whether s was sealed with the current key, that is, needs no re-encryption.
func (k *Keyring) IsCurrent(s string) bool {
	id, ok := KeyID(s)
	return ok && id == k.current.id
}

func additional(header string, aad []byte) []byte {
	b := make([]byte, 0, len(header)+len(aad))
	return append(append(b, header...), aad...)
}

// IsSealed reports whether s carries the sealed marker (whether or not it will open).
func IsSealed(s string) bool { return strings.HasPrefix(s, prefix) }

// KeyID returns the id of the key that sealed s.
func KeyID(s string) (string, bool) {
	id, _, ok := split(s)
	return id, ok
}

func split(s string) (id, body string, ok bool) {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return "", "", false
	}
	id, body, ok = strings.Cut(rest, ":")
	if !ok || len(id) != 8 || body == "" {
		return "", "", false
	}
	return id, body, true
}
