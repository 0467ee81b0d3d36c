package webhook

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/httpheader"
)

// Errors returned by Verifier, wrapped with details; test with errors.Is.
var (
	ErrMissingHeaders      = errors.New("webhook: missing required headers")
	ErrTimestamp           = errors.New("webhook: invalid or out-of-tolerance timestamp")
	ErrNoMatchingSignature = errors.New("webhook: no matching signature")
)

// Header names Svix uses for the same format; accepted when verifying so a
// receiver can take deliveries from either sender.
const (
	svixHeaderID        = "svix-id"
	svixHeaderTimestamp = "svix-timestamp"
	svixHeaderSignature = "svix-signature"
)

// maxSignatures bounds how many signature entries one request can make the
// Verifier examine: each v1a entry costs an Ed25519 verification per key, so
// an unbounded list would let a sender burn CPU. Rotation needs two or three.
const maxSignatures = 32

// Verifier checks the signatures of incoming webhooks. It is immutable and so
// safe for concurrent use.
type Verifier struct {
	secrets    [][]byte
	publicKeys []ed25519.PublicKey
	tolerance  time.Duration
}

// NewVerifier returns a Verifier accepting a signature made with any of the
// given keys: whsec_ HMAC secrets (v1; the prefix may be omitted) or whpk_
// Ed25519 public keys (v1a). Hold several keys while the sender rotates.
func NewVerifier(keys ...string) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, errors.New("webhook: new verifier: no keys")
	}
	v := &Verifier{tolerance: DefaultTolerance}
	for i, k := range keys {
		switch {
		case strings.HasPrefix(k, PublicKeyPrefix):
			pub, err := decodePublicKey(k)
			if err != nil {
				return nil, fmt.Errorf("webhook: new verifier: key %d: %w", i, err)
			}
			v.publicKeys = append(v.publicKeys, pub)
		case strings.HasPrefix(k, SigningKeyPrefix):
			// Accepting it would work, but would encourage copying the
			// private key to receivers, which defeats asymmetric signing.
			return nil, fmt.Errorf("webhook: new verifier: key %d: %w: use the %s public key, not the %s signing key",
				i, ErrInvalidKey, PublicKeyPrefix, SigningKeyPrefix)
		default:
			secret, err := DecodeSecret(k)
			if err != nil {
				return nil, fmt.Errorf("webhook: new verifier: key %d: %w", i, err)
			}
			v.secrets = append(v.secrets, secret)
		}
	}
	return v, nil
}

// WithTolerance returns a copy of v that accepts timestamps up to d away from
// the current time, in either direction. It returns a copy so that a Verifier
// shared between handlers is never changed under them. Timestamps have
// second resolution, so d is truncated to whole seconds; a negative d is
// treated as zero.
func (v *Verifier) WithTolerance(d time.Duration) *Verifier {
	c := *v
	c.tolerance = max(d, 0)
	return &c
}

// Verify checks a request's body and headers against the current time. Pass
// the raw body exactly as received: re-encoding JSON changes the bytes and
// breaks the signature.
func (v *Verifier) Verify(body []byte, h http.Header) error {
	return v.VerifyAt(body, h, time.Now())
}

// VerifyAt is Verify with an explicit current time, for tests and for
// re-checking stored deliveries.
//
// It returns nil if any signature entry matches any key, and otherwise an
// error wrapping ErrMissingHeaders, ErrTimestamp or ErrNoMatchingSignature.
// Unknown signature versions are ignored, as the specification requires, and
// only the first 32 entries are examined.
func (v *Verifier) VerifyAt(body []byte, h http.Header, now time.Time) error {
	id, timestamp, signatures, err := readHeaders(h)
	if err != nil {
		return err
	}
	if err := v.checkTimestamp(timestamp, now); err != nil {
		return err
	}

	prefix := appendContentPrefix(nil, id, timestamp)
	var (
		expected [][]byte // base64 HMAC per secret, computed on first use
		message  []byte   // whole signed content, built on first v1a entry
		examined int
	)
	for _, value := range signatures {
		for entry := range strings.FieldsSeq(value) {
			if examined++; examined > maxSignatures {
				return fmt.Errorf("%w: more than %d signatures", ErrNoMatchingSignature, maxSignatures)
			}
			version, sig, ok := strings.Cut(entry, ",")
			if !ok {
				continue
			}
			switch version {
			case versionHMAC:
				if expected == nil {
					expected = v.expectedHMACs(prefix, body)
				}
				for _, want := range expected {
					// Constant time so response timing does not reveal how
					// much of a forged signature was right.
					if subtle.ConstantTimeCompare([]byte(sig), want) == 1 {
						return nil
					}
				}
			case versionEd25519:
				if len(v.publicKeys) == 0 || len(sig) != base64.StdEncoding.EncodedLen(ed25519.SignatureSize) {
					continue
				}
				raw, err := base64.StdEncoding.DecodeString(sig)
				if err != nil {
					continue
				}
				if message == nil {
					message = append(prefix[:len(prefix):len(prefix)], body...)
				}
				for _, pub := range v.publicKeys {
					if ed25519.Verify(pub, message, raw) {
						return nil
					}
				}
			}
		}
	}
	return ErrNoMatchingSignature
}

// expectedHMACs returns the base64 v1 signature of the content under each
// secret. Comparing encoded forms, as the reference library does, avoids
// decoding every attacker-supplied entry.
func (v *Verifier) expectedHMACs(prefix, body []byte) [][]byte {
	out := make([][]byte, len(v.secrets))
	for i, secret := range v.secrets {
		mac := hmac.New(sha256.New, secret)
		mac.Write(prefix)
		mac.Write(body)
		out[i] = base64.StdEncoding.AppendEncode(nil, mac.Sum(nil))
	}
	return out
}

// checkTimestamp parses the webhook-timestamp value and checks it is within
// the tolerance of now, both ways: a timestamp in the future is as suspect as
// a stale one, since it would extend how long a captured request replays.
func (v *Verifier) checkTimestamp(timestamp string, now time.Time) error {
	// Only plain digits: ParseInt alone would also accept a sign, and the
	// signed content uses the header text verbatim, so there must be a single
	// way to write a given time.
	for i := range len(timestamp) {
		if c := timestamp[i]; c < '0' || c > '9' {
			return fmt.Errorf("%w: %s is not a decimal Unix time", ErrTimestamp, HeaderTimestamp)
		}
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: parse %s: %w", ErrTimestamp, HeaderTimestamp, err)
	}
	// Compare in whole seconds rather than through time.Unix: sec can be
	// anything up to MaxInt64, which time.Unix would overflow, whereas these
	// differences stay in range for any realistic now.
	tol := int64(v.tolerance / time.Second)
	switch nowSec := now.Unix(); {
	case sec < nowSec-tol:
		return fmt.Errorf("%w: %ds old, tolerance %s", ErrTimestamp, nowSec-sec, v.tolerance)
	case sec > nowSec+tol:
		return fmt.Errorf("%w: %ds in the future, tolerance %s", ErrTimestamp, sec-nowSec, v.tolerance)
	}
	return nil
}

// readHeaders returns the id, timestamp and signature values of a request,
// taking the webhook-* headers if any is present and the svix-* ones
// otherwise. The two families are never mixed so that what is verified is
// exactly the set one sender wrote.
func readHeaders(h http.Header) (id, timestamp string, signatures []string, err error) {
	names := [3]string{HeaderID, HeaderTimestamp, HeaderSignature}
	if headerValues(h, HeaderID) == nil && headerValues(h, HeaderTimestamp) == nil &&
		headerValues(h, HeaderSignature) == nil {
		names = [3]string{svixHeaderID, svixHeaderTimestamp, svixHeaderSignature}
	}
	id = firstValue(headerValues(h, names[0]))
	timestamp = firstValue(headerValues(h, names[1]))
	signatures = headerValues(h, names[2])
	var missing []string
	if id == "" {
		missing = append(missing, names[0])
	}
	if timestamp == "" {
		missing = append(missing, names[1])
	}
	if !slices.ContainsFunc(signatures, func(s string) bool { return strings.TrimSpace(s) != "" }) {
		missing = append(missing, names[2])
	}
	if missing != nil {
		return "", "", nil, fmt.Errorf("%w: %s", ErrMissingHeaders, strings.Join(missing, ", "))
	}
	return id, timestamp, signatures, nil
}

// headerValues finds a header's values whatever the case of its stored name.
func headerValues(h http.Header, name string) []string { return httpheader.Values(h, name) }

func firstValue(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// appendContentPrefix appends "id.timestamp." to dst: the part of the signed
// content that precedes the body.
func appendContentPrefix(dst []byte, id, timestamp string) []byte {
	dst = append(dst, id...)
	dst = append(dst, '.')
	dst = append(dst, timestamp...)
	return append(dst, '.')
}
