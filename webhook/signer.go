package webhook

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Signature versions, as they appear before the comma in webhook-signature.
const (
	versionHMAC    = "v1"
	versionEd25519 = "v1a"
)

// maxPooledContent is the largest content buffer a Signer keeps for reuse.
// Only Ed25519 keys need the whole message in one buffer, and one unusually
// large body should not pin that much memory for the Signer's lifetime.
const maxPooledContent = 64 << 10

// Signer signs outgoing webhooks. It is safe for concurrent use.
type Signer struct {
	keys []signerKey
	// sigLen is the exact length of the signature header, so Sign can
	// allocate its result once.
	sigLen int
	// needMessage reports whether an Ed25519 key is present, which needs the
	// signed content contiguous in memory rather than streamed.
	needMessage bool
	// states holds *signState values: keyed HMAC states and scratch buffers
	// reused across calls so that signing does not allocate them per message.
	states sync.Pool
}

// signerKey is one decoded key; exactly one field is set.
type signerKey struct {
	hmacKey []byte
	edKey   ed25519.PrivateKey
}

// signState is the per-call scratch space of Sign.
type signState struct {
	macs    []hash.Hash // keyed HMAC-SHA256 per key index; nil for Ed25519 keys
	content []byte      // "id.ts." and, when needed, the body
	sum     [sha256.Size]byte
	encoded [88]byte // base64 of the largest signature (Ed25519, 64 bytes)
}

// NewSigner returns a Signer that signs with every given key, in order. Keys
// are whsec_ HMAC secrets (v1; the prefix may be omitted) or whsk_ Ed25519
// signing keys (v1a). Pass several keys while rotating so that receivers
// holding either the old or the new key accept the deliveries.
func NewSigner(keys ...string) (*Signer, error) {
	if len(keys) == 0 {
		return nil, errors.New("webhook: new signer: no keys")
	}
	s := &Signer{keys: make([]signerKey, 0, len(keys))}
	for i, k := range keys {
		var sk signerKey
		switch {
		case strings.HasPrefix(k, SigningKeyPrefix):
			priv, err := decodeSigningKey(k)
			if err != nil {
				return nil, fmt.Errorf("webhook: new signer: key %d: %w", i, err)
			}
			sk.edKey = priv
			s.needMessage = true
			s.sigLen += len(versionEd25519) + 1 + base64.StdEncoding.EncodedLen(ed25519.SignatureSize)
		case strings.HasPrefix(k, PublicKeyPrefix):
			return nil, fmt.Errorf("webhook: new signer: key %d: %w: a public key cannot sign, use the %s key",
				i, ErrInvalidKey, SigningKeyPrefix)
		default:
			secret, err := DecodeSecret(k)
			if err != nil {
				return nil, fmt.Errorf("webhook: new signer: key %d: %w", i, err)
			}
			sk.hmacKey = secret
			s.sigLen += len(versionHMAC) + 1 + base64.StdEncoding.EncodedLen(sha256.Size)
		}
		s.keys = append(s.keys, sk)
	}
	s.sigLen += len(keys) - 1 // separating spaces
	s.states.New = func() any {
		st := &signState{macs: make([]hash.Hash, len(s.keys))}
		for i, k := range s.keys {
			if k.hmacKey != nil {
				st.macs[i] = hmac.New(sha256.New, k.hmacKey)
			}
		}
		return st
	}
	return s, nil
}

// Sign returns the webhook-signature header value for a message: one
// "version,base64" entry per key, separated by spaces. ts is sent with second
// precision, as the webhook-timestamp header carries it.
//
// Sign sits on the delivery hot path, so the keyed hashes and buffers are
// pooled and an HMAC-only Signer allocates just the returned string.
func (s *Signer) Sign(id string, ts time.Time, body []byte) string {
	st := s.states.Get().(*signState)
	defer s.putState(st)

	// The signed content is "id.timestamp.body". The prefix is built in the
	// pooled buffer (AppendInt avoids a string for the timestamp); the body is
	// only copied after it when an Ed25519 key needs the whole message.
	content := append(st.content[:0], id...)
	content = append(content, '.')
	content = strconv.AppendInt(content, ts.Unix(), 10)
	content = append(content, '.')
	prefixLen := len(content)
	if s.needMessage {
		content = append(content, body...)
	}
	st.content = content

	var b strings.Builder
	b.Grow(s.sigLen)
	for i, k := range s.keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		var sig []byte
		if k.edKey != nil {
			b.WriteString(versionEd25519)
			sig = ed25519.Sign(k.edKey, content)
		} else {
			b.WriteString(versionHMAC)
			mac := st.macs[i]
			mac.Reset()
			mac.Write(content[:prefixLen])
			mac.Write(body)
			sig = mac.Sum(st.sum[:0])
		}
		b.WriteByte(',')
		n := base64.StdEncoding.EncodedLen(len(sig))
		base64.StdEncoding.Encode(st.encoded[:n], sig)
		b.Write(st.encoded[:n])
	}
	return b.String()
}

func (s *Signer) putState(st *signState) {
	if cap(st.content) > maxPooledContent {
		st.content = nil
	}
	s.states.Put(st)
}

// SetHeaders signs the message and sets webhook-id, webhook-timestamp (Unix
// seconds) and webhook-signature on h, replacing any previous values.
func (s *Signer) SetHeaders(h http.Header, id string, ts time.Time, body []byte) {
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, s.Sign(id, ts, body))
}
