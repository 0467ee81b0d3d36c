package seal

import (
	"crypto/hmac"
	"crypto/sha256"
)

// extract is the HKDF-Extract step (RFC 5869) with a fixed, Herald-specific salt.
func extract(raw []byte) []byte {
	m := hmac.New(sha256.New, []byte("herald seal derive v1"))
	m.Write(raw)
	return m.Sum(nil)
}

// Derive returns a 32-byte key for purpose (for example "portal-link"), derived from the current
// master key with HKDF-Expand (RFC 5869, one block). Every node configured with the same master
// key derives the same key, and a copy of the database reveals nothing of it; rotating the master
// key changes it. Different purposes give independent keys.
func (k *Keyring) Derive(purpose string) []byte {
	m := hmac.New(sha256.New, k.current.prk)
	m.Write([]byte(purpose))
	m.Write([]byte{1})
	return m.Sum(nil)
}
