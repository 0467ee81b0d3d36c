package event

import (
	"crypto/rand"
	"encoding/base32"
	"time"
)

// idEncoding is lowercase base32 without padding in an alphabet whose order is the bytes' order,
// so that ids sort by creation time.
var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewID makes an event id for an event made at now: "evt_", then 48 bits of Unix milliseconds
// and 80 random bits in lowercase base32 (26 characters), so ids sort by creation time.
func NewID(now time.Time) string { return NewPrefixedID(IDPrefix, now) }

// NewPrefixedID makes an id by the scheme of NewID with another prefix: Herald's other objects
// (endpoints "ep_", received requests "req_", …) are named the same way.
func NewPrefixedID(prefix string, now time.Time) string {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails (it crashes the program instead)
	return prefix + "_" + idEncoding.EncodeToString(b[:])
}
