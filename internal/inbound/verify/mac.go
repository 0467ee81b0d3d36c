package verify

import (
	"crypto/hmac"
	"hash"
)

// maxSignatures bounds how many signatures one request can make a checker
// compare, so a header listing thousands cannot burn CPU. Rotation on the
// sender's side needs two or three.
const maxSignatures = 32

// macKeys computes one HMAC per configured secret.
type macKeys struct {
	newHash func() hash.Hash
	keys    [][]byte
}

func newMACKeys(newHash func() hash.Hash, secrets []string) macKeys {
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		keys[i] = []byte(s)
	}
	return macKeys{newHash: newHash, keys: keys}
}

// match returns the index of the first key whose MAC over the concatenated
// parts equals one of sigs, or -1. Each comparison is constant-time
// (hmac.Equal), so the response time does not reveal how much of a forged
// signature was right.
func (m macKeys) match(sigs [][]byte, parts ...[]byte) int {
	var sum []byte
	for i, key := range m.keys {
		mac := hmac.New(m.newHash, key)
		for _, p := range parts {
			mac.Write(p)
		}
		sum = mac.Sum(sum[:0])
		for _, sig := range sigs {
			if hmac.Equal(sum, sig) {
				return i
			}
		}
	}
	return -1
}
