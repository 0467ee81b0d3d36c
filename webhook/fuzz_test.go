package webhook_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/webhook"
)

// fit pads or trims b to between lo and hi bytes, so every fuzzed input makes a valid key.
func fit(b []byte, lo, hi int) []byte {
	out := append([]byte(nil), b...)
	for len(out) < lo {
		out = append(out, byte(len(out)))
	}
	return out[:min(len(out), hi)]
}

// FuzzSignVerify checks that whatever the key, id, time and body, a signature Herald makes verifies
// with the matching HMAC secret and Ed25519 public key, and stops verifying once any signed part
// changes or the key is another.
func FuzzSignVerify(f *testing.F) {
	f.Add([]byte("0123456789abcdef01234567"), []byte("seed"), "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", int64(1614265330), []byte(`{"test": 2432232314}`), uint16(0))
	f.Add([]byte{}, []byte{}, "x", int64(0), []byte{}, uint16(7))
	f.Add(make([]byte, 100), make([]byte, 64), "id with spaces. and dots.", int64(-1), []byte{0xff, 0, '.', '\n'}, uint16(65535))
	f.Add([]byte("k"), []byte("s"), "evt_1", int64(1<<62), []byte("{}"), uint16(1))

	f.Fuzz(func(t *testing.T, key, seed []byte, id string, ts int64, body []byte, flip uint16) {
		if id == "" {
			return // an empty webhook-id is a missing header, tested elsewhere
		}
		// Timestamps are decimal Unix seconds without a sign: fold the input into [0, 2^36).
		if ts < 0 {
			ts = -(ts + 1)
		}
		at := time.Unix(ts%(1<<36), 0)

		secret := webhook.SecretPrefix + base64.StdEncoding.EncodeToString(fit(key, 24, 64))
		priv := ed25519.NewKeyFromSeed(fit(seed, ed25519.SeedSize, ed25519.SeedSize))
		signingKey := webhook.SigningKeyPrefix + base64.StdEncoding.EncodeToString(priv)
		public, err := webhook.PublicKey(signingKey)
		if err != nil {
			t.Fatalf("PublicKey: %v", err)
		}
		s, err := webhook.NewSigner(secret, signingKey)
		if err != nil {
			t.Fatalf("NewSigner: %v", err)
		}
		hmacOnly, err := webhook.NewVerifier(secret)
		if err != nil {
			t.Fatalf("NewVerifier(secret): %v", err)
		}
		edOnly, err := webhook.NewVerifier(public)
		if err != nil {
			t.Fatalf("NewVerifier(public key): %v", err)
		}
		otherSecret := webhook.SecretPrefix + base64.StdEncoding.EncodeToString(fit(append([]byte{1}, key...), 24, 64))
		if otherSecret == secret {
			otherSecret = webhook.SecretPrefix + base64.StdEncoding.EncodeToString(fit([]byte("another key, not the one"), 24, 64))
		}
		other, err := webhook.NewVerifier(otherSecret)
		if err != nil {
			t.Fatalf("NewVerifier(other): %v", err)
		}

		h := http.Header{}
		s.SetHeaders(h, id, at, body)
		for name, v := range map[string]*webhook.Verifier{"HMAC": hmacOnly, "Ed25519": edOnly} {
			if err := v.VerifyAt(body, h, at); err != nil {
				t.Fatalf("%s: signed id=%q ts=%d body=%q does not verify: %v", name, id, at.Unix(), body, err)
			}
		}
		if err := other.VerifyAt(body, h, at); !errors.Is(err, webhook.ErrNoMatchingSignature) {
			t.Fatalf("another secret: VerifyAt = %v, want ErrNoMatchingSignature", err)
		}

		// Any change to the body or id breaks both signatures.
		if len(body) > 0 {
			tampered := append([]byte(nil), body...)
			tampered[int(flip)%len(tampered)] ^= 1 << (flip % 8)
			for name, v := range map[string]*webhook.Verifier{"HMAC": hmacOnly, "Ed25519": edOnly} {
				if err := v.VerifyAt(tampered, h, at); !errors.Is(err, webhook.ErrNoMatchingSignature) {
					t.Fatalf("%s: tampered body: VerifyAt = %v, want ErrNoMatchingSignature", name, err)
				}
			}
		}
		h2 := h.Clone()
		h2.Set(webhook.HeaderID, id+"x")
		if err := hmacOnly.VerifyAt(body, h2, at); !errors.Is(err, webhook.ErrNoMatchingSignature) {
			t.Fatalf("changed id: VerifyAt = %v, want ErrNoMatchingSignature", err)
		}
		// Outside the tolerance the signature no longer counts: a captured request cannot be replayed later.
		if err := hmacOnly.VerifyAt(body, h, at.Add(webhook.DefaultTolerance+time.Second)); !errors.Is(err, webhook.ErrTimestamp) {
			t.Fatalf("replayed after the tolerance: VerifyAt = %v, want ErrTimestamp", err)
		}
	})
}

// FuzzNewVerifierKeys checks that any key text is either accepted or refused with ErrInvalidKey,
// never a panic, and that an error never echoes the key.
func FuzzNewVerifierKeys(f *testing.F) {
	for _, k := range []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whpk_", "whsk_AAAA",
		"whsec_", "", "whsec_====", "whpk_" + base64.StdEncoding.EncodeToString(make([]byte, 32))} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		_, err := webhook.NewVerifier(key)
		if err == nil {
			return
		}
		if !errors.Is(err, webhook.ErrInvalidKey) {
			t.Fatalf("NewVerifier(%q) = %v, want an error wrapping ErrInvalidKey", key, err)
		}
		if len(key) >= 8 && strings.Contains(err.Error(), key) {
			t.Fatalf("NewVerifier error %q repeats the key", err)
		}
	})
}
