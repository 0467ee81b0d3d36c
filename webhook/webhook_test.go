package webhook_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/webhook"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// The test vector published with the specification and its reference
// libraries.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specBody      = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// otherSecret is a valid secret unrelated to specSecret.
const otherSecret = "whsec_c2VjcmV0LXRoYXQtaXMtbm90LXRoZS1zcGVjLW9uZQ=="

func specTime() time.Time { return time.Unix(specTimestamp, 0) }

// b64Bytes returns the standard base64 of n bytes, for building keys of an
// exact size.
func b64Bytes(n int) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xA5}, n))
}

func mustSigner(t testing.TB, keys ...string) *webhook.Signer {
	t.Helper()
	s, err := webhook.NewSigner(keys...)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	return s
}

func mustVerifier(t testing.TB, keys ...string) *webhook.Verifier {
	t.Helper()
	v, err := webhook.NewVerifier(keys...)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func mustSigningKey(t testing.TB) (private, public string) {
	t.Helper()
	private, public, err := webhook.NewSigningKey()
	if err != nil {
		t.Fatalf("NewSigningKey: %v", err)
	}
	return private, public
}

// signedHeaders returns the headers a Signer with keys sets for a message.
func signedHeaders(t testing.TB, id string, ts time.Time, body []byte, keys ...string) http.Header {
	t.Helper()
	h := http.Header{}
	mustSigner(t, keys...).SetHeaders(h, id, ts, body)
	return h
}

func TestSignSpecVector(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		secret string
	}{
		{name: "secret with whsec_ prefix", secret: specSecret},
		{name: "secret without prefix", secret: strings.TrimPrefix(specSecret, webhook.SecretPrefix)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustSigner(t, tt.secret)
			if got := s.Sign(specID, specTime(), []byte(specBody)); got != specSignature {
				t.Fatalf("Sign = %q, want %q", got, specSignature)
			}

			h := http.Header{}
			s.SetHeaders(h, specID, specTime(), []byte(specBody))
			want := map[string]string{
				webhook.HeaderID:        specID,
				webhook.HeaderTimestamp: strconv.Itoa(specTimestamp),
				webhook.HeaderSignature: specSignature,
			}
			for name, value := range want {
				if got := h.Get(name); got != value {
					t.Errorf("header %s = %q, want %q", name, got, value)
				}
			}
			if err := mustVerifier(t, tt.secret).VerifyAt([]byte(specBody), h, specTime()); err != nil {
				t.Errorf("VerifyAt of the spec vector: %v", err)
			}
		})
	}
}

func TestSignOneEntryPerKeyInOrder(t *testing.T) {
	t.Parallel()
	private, public := mustSigningKey(t)
	body := []byte(specBody)
	sig := mustSigner(t, otherSecret, private, specSecret).Sign(specID, specTime(), body)

	entries := strings.Split(sig, " ")
	if len(entries) != 3 {
		t.Fatalf("Sign = %q, want 3 space-separated entries", sig)
	}
	if want := mustSigner(t, otherSecret).Sign(specID, specTime(), body); entries[0] != want {
		t.Errorf("entry 0 = %q, want the otherSecret signature %q", entries[0], want)
	}
	if entries[2] != specSignature {
		t.Errorf("entry 2 = %q, want the spec signature %q", entries[2], specSignature)
	}

	// Check the v1a entry with crypto/ed25519 directly rather than with our
	// own Verifier, so a bug shared by both sides cannot hide.
	enc, ok := strings.CutPrefix(entries[1], "v1a,")
	if !ok {
		t.Fatalf("entry 1 = %q, want a v1a entry", entries[1])
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatalf("entry 1 is not base64: %v", err)
	}
	pub, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(public, webhook.PublicKeyPrefix))
	if err != nil {
		t.Fatalf("public key is not base64: %v", err)
	}
	content := fmt.Sprintf("%s.%d.%s", specID, specTimestamp, specBody)
	if !ed25519.Verify(pub, []byte(content), raw) {
		t.Errorf("v1a entry does not verify over %q with crypto/ed25519", content)
	}
}

func TestOfficialLibraryAcceptsOurSignatures(t *testing.T) {
	t.Parallel()
	private, _ := mustSigningKey(t)
	tests := []struct {
		name       string
		signerKeys []string
		// officialSecret is what the receiver, using the reference library,
		// holds.
		officialSecret string
		wantErr        error
	}{
		{
			name:           "single secret",
			signerKeys:     []string{specSecret},
			officialSecret: specSecret,
		},
		{
			name:           "rotation, only the second signature matches",
			signerKeys:     []string{otherSecret, specSecret},
			officialSecret: specSecret,
		},
		{
			name:           "rotation, only the first signature matches",
			signerKeys:     []string{specSecret, otherSecret},
			officialSecret: specSecret,
		},
		{
			name:           "v1a entry before the v1 one is skipped",
			signerKeys:     []string{private, specSecret},
			officialSecret: specSecret,
		},
		{
			// Guards against the cases above passing vacuously.
			name:           "receiver holding another secret rejects",
			signerKeys:     []string{specSecret},
			officialSecret: otherSecret,
			wantErr:        standardwebhooks.ErrNoMatchingSignature,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := []byte(`{"type":"invoice.paid","data":{"id":"inv_1"}}`)
			// The reference library only verifies against time.Now.
			h := signedHeaders(t, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", time.Now(), body, tt.signerKeys...)

			official, err := standardwebhooks.NewWebhook(tt.officialSecret)
			if err != nil {
				t.Fatalf("standardwebhooks.NewWebhook: %v", err)
			}
			err = official.Verify(body, h)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("official Verify(%q) = %v, want %v", h.Get(webhook.HeaderSignature), err, tt.wantErr)
			}
		})
	}
}

func TestWeAcceptOfficialLibrarySignatures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		officialSecret string
		verifierKeys   []string
	}{
		{name: "same prefixed secret", officialSecret: specSecret, verifierKeys: []string{specSecret}},
		{
			name:           "receiver holds the secret without prefix",
			officialSecret: specSecret,
			verifierKeys:   []string{strings.TrimPrefix(specSecret, webhook.SecretPrefix)},
		},
		{name: "receiver holds old and new secrets", officialSecret: specSecret, verifierKeys: []string{otherSecret, specSecret}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			official, err := standardwebhooks.NewWebhook(tt.officialSecret)
			if err != nil {
				t.Fatalf("standardwebhooks.NewWebhook: %v", err)
			}
			now := time.Now()
			body := []byte(`{"type":"user.created"}`)
			sig, err := official.Sign("msg_official", now, body)
			if err != nil {
				t.Fatalf("official Sign: %v", err)
			}
			h := http.Header{}
			h.Set(standardwebhooks.HeaderWebhookID, "msg_official")
			h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
			h.Set(standardwebhooks.HeaderWebhookSignature, sig)

			v := mustVerifier(t, tt.verifierKeys...)
			if err := v.VerifyAt(body, h, now); err != nil {
				t.Fatalf("VerifyAt(official signature %q) = %v, want nil", sig, err)
			}
			if err := v.VerifyAt([]byte(`{"type":"user.deleted"}`), h, now); !errors.Is(err, webhook.ErrNoMatchingSignature) {
				t.Fatalf("VerifyAt(other body) = %v, want ErrNoMatchingSignature", err)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	private, public := mustSigningKey(t)
	otherPrivate, otherPublic := mustSigningKey(t)
	ts := specTime()
	body := []byte(specBody)

	tests := []struct {
		name         string
		signerKeys   []string
		verifierKeys []string
		tolerance    time.Duration // 0: DefaultTolerance
		// edit changes the signed request before verification.
		edit    func(h http.Header, body []byte) (http.Header, []byte)
		now     time.Time
		wantErr error
	}{
		{
			name:         "HMAC v1 accepted",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			now:          ts,
		},
		{
			name:         "Ed25519 v1a round trip accepted",
			signerKeys:   []string{private},
			verifierKeys: []string{public},
			now:          ts,
		},
		{
			name:         "verifier with several keys accepts any",
			signerKeys:   []string{private},
			verifierKeys: []string{otherSecret, otherPublic, public},
			now:          ts,
		},
		{
			name:         "rotation, only the second signature matches",
			signerKeys:   []string{otherSecret, specSecret},
			verifierKeys: []string{specSecret},
			now:          ts,
		},
		{
			name:         "wrong HMAC secret rejected",
			signerKeys:   []string{otherSecret},
			verifierKeys: []string{specSecret},
			now:          ts,
			wantErr:      webhook.ErrNoMatchingSignature,
		},
		{
			name:         "wrong Ed25519 key rejected",
			signerKeys:   []string{otherPrivate},
			verifierKeys: []string{public},
			now:          ts,
			wantErr:      webhook.ErrNoMatchingSignature,
		},
		{
			name:         "HMAC signature against Ed25519-only verifier rejected",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{public},
			now:          ts,
			wantErr:      webhook.ErrNoMatchingSignature,
		},
		{
			name:         "tampered body rejected",
			signerKeys:   []string{specSecret, private},
			verifierKeys: []string{specSecret, public},
			edit: func(h http.Header, body []byte) (http.Header, []byte) {
				return h, []byte(`{"test": 2432232315}`)
			},
			now:     ts,
			wantErr: webhook.ErrNoMatchingSignature,
		},
		{
			name:         "tampered id rejected",
			signerKeys:   []string{specSecret, private},
			verifierKeys: []string{specSecret, public},
			edit: func(h http.Header, body []byte) (http.Header, []byte) {
				h.Set(webhook.HeaderID, specID+"x")
				return h, body
			},
			now:     ts,
			wantErr: webhook.ErrNoMatchingSignature,
		},
		{
			name:         "tampered timestamp within tolerance rejected",
			signerKeys:   []string{specSecret, private},
			verifierKeys: []string{specSecret, public},
			edit: func(h http.Header, body []byte) (http.Header, []byte) {
				h.Set(webhook.HeaderTimestamp, strconv.Itoa(specTimestamp+1))
				return h, body
			},
			now:     ts,
			wantErr: webhook.ErrNoMatchingSignature,
		},
		{
			name:         "v1 signature relabelled v1a rejected",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret, public},
			edit: func(h http.Header, body []byte) (http.Header, []byte) {
				h.Set(webhook.HeaderSignature, strings.Replace(h.Get(webhook.HeaderSignature), "v1,", "v1a,", 1))
				return h, body
			},
			now:     ts,
			wantErr: webhook.ErrNoMatchingSignature,
		},
		{
			name:         "unknown version only rejected",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			edit: func(h http.Header, body []byte) (http.Header, []byte) {
				h.Set(webhook.HeaderSignature, strings.Replace(h.Get(webhook.HeaderSignature), "v1,", "v2,", 1))
				return h, body
			},
			now:     ts,
			wantErr: webhook.ErrNoMatchingSignature,
		},
		{
			name:         "unknown version and extra spaces ignored beside a valid entry",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			edit: func(h http.Header, body []byte) (http.Header, []byte) {
				h.Set(webhook.HeaderSignature, "v2,abc  garbage "+h.Get(webhook.HeaderSignature)+" ")
				return h, body
			},
			now: ts,
		},
		{
			name:         "signature split over two header lines accepted",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			edit: func(h http.Header, body []byte) (http.Header, []byte) {
				sig := h.Get(webhook.HeaderSignature)
				h.Set(webhook.HeaderSignature, "v1,bm90IGl0")
				h.Add(webhook.HeaderSignature, sig)
				return h, body
			},
			now: ts,
		},
		{
			name:         "valid entry after too many bogus ones rejected",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			edit: func(h http.Header, body []byte) (http.Header, []byte) {
				bogus := strings.Repeat("v1,AAAA ", 40)
				h.Set(webhook.HeaderSignature, bogus+h.Get(webhook.HeaderSignature))
				return h, body
			},
			now:     ts,
			wantErr: webhook.ErrNoMatchingSignature,
		},
		{
			name:         "timestamp exactly at the tolerance accepted",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			now:          ts.Add(webhook.DefaultTolerance),
		},
		{
			name:         "stale timestamp rejected",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			now:          ts.Add(webhook.DefaultTolerance + time.Second),
			wantErr:      webhook.ErrTimestamp,
		},
		{
			name:         "future timestamp rejected",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			now:          ts.Add(-webhook.DefaultTolerance - time.Second),
			wantErr:      webhook.ErrTimestamp,
		},
		{
			name:         "custom tolerance accepts an older message",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			tolerance:    time.Hour,
			now:          ts.Add(50 * time.Minute),
		},
		{
			name:         "custom tolerance still rejects beyond it",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			tolerance:    time.Hour,
			now:          ts.Add(-61 * time.Minute),
			wantErr:      webhook.ErrTimestamp,
		},
		{
			name:         "non-numeric timestamp rejected",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			edit:         setHeader(webhook.HeaderTimestamp, "yesterday"),
			now:          ts,
			wantErr:      webhook.ErrTimestamp,
		},
		{
			name:         "signed timestamp rejected",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			edit:         setHeader(webhook.HeaderTimestamp, "+"+strconv.Itoa(specTimestamp)),
			now:          ts,
			wantErr:      webhook.ErrTimestamp,
		},
		{
			name:         "timestamp beyond int64 rejected",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			edit:         setHeader(webhook.HeaderTimestamp, "99999999999999999999999"),
			now:          ts,
			wantErr:      webhook.ErrTimestamp,
		},
		{
			name:         "largest int64 timestamp rejected as future",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			edit:         setHeader(webhook.HeaderTimestamp, "9223372036854775807"),
			now:          ts,
			wantErr:      webhook.ErrTimestamp,
		},
		{
			name:         "missing id",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			edit:         delHeader(webhook.HeaderID),
			now:          ts,
			wantErr:      webhook.ErrMissingHeaders,
		},
		{
			name:         "missing timestamp",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			edit:         delHeader(webhook.HeaderTimestamp),
			now:          ts,
			wantErr:      webhook.ErrMissingHeaders,
		},
		{
			name:         "missing signature",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			edit:         delHeader(webhook.HeaderSignature),
			now:          ts,
			wantErr:      webhook.ErrMissingHeaders,
		},
		{
			name:         "blank signature",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			edit:         setHeader(webhook.HeaderSignature, "   "),
			now:          ts,
			wantErr:      webhook.ErrMissingHeaders,
		},
		{
			name:         "no headers at all",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			edit: func(http.Header, []byte) (http.Header, []byte) {
				return http.Header{}, body
			},
			now:     ts,
			wantErr: webhook.ErrMissingHeaders,
		},
		{
			name:         "hand-built map with lower-case keys accepted",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			edit: func(h http.Header, body []byte) (http.Header, []byte) {
				return http.Header{
					"webhook-id":        {h.Get(webhook.HeaderID)},
					"WEBHOOK-TIMESTAMP": {h.Get(webhook.HeaderTimestamp)},
					"webhook-Signature": {h.Get(webhook.HeaderSignature)},
				}, body
			},
			now: ts,
		},
		{
			name:         "Svix header names accepted",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			edit: func(h http.Header, body []byte) (http.Header, []byte) {
				svix := http.Header{}
				svix.Set("svix-id", h.Get(webhook.HeaderID))
				svix.Set("svix-timestamp", h.Get(webhook.HeaderTimestamp))
				svix.Set("svix-signature", h.Get(webhook.HeaderSignature))
				return svix, body
			},
			now: ts,
		},
		{
			name:         "webhook and svix families are not mixed",
			signerKeys:   []string{specSecret},
			verifierKeys: []string{specSecret},
			edit: func(h http.Header, body []byte) (http.Header, []byte) {
				h.Set("svix-signature", h.Get(webhook.HeaderSignature))
				h.Del(webhook.HeaderSignature)
				return h, body
			},
			now:     ts,
			wantErr: webhook.ErrMissingHeaders,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := signedHeaders(t, specID, ts, body, tt.signerKeys...)
			got := bytes.Clone(body)
			if tt.edit != nil {
				h, got = tt.edit(h, got)
			}
			v := mustVerifier(t, tt.verifierKeys...)
			if tt.tolerance != 0 {
				v = v.WithTolerance(tt.tolerance)
			}
			err := v.VerifyAt(got, h, tt.now)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("VerifyAt = %v, want nil", err)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("VerifyAt = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func setHeader(name, value string) func(http.Header, []byte) (http.Header, []byte) {
	return func(h http.Header, body []byte) (http.Header, []byte) {
		h.Set(name, value)
		return h, body
	}
}

func delHeader(name string) func(http.Header, []byte) (http.Header, []byte) {
	return func(h http.Header, body []byte) (http.Header, []byte) {
		h.Del(name)
		return h, body
	}
}

func TestVerifyUsesCurrentTime(t *testing.T) {
	t.Parallel()
	body := []byte(specBody)
	v := mustVerifier(t, specSecret)
	tests := []struct {
		name    string
		ts      time.Time
		wantErr error
	}{
		{name: "fresh message accepted", ts: time.Now()},
		{name: "spec vector from 2021 is stale", ts: specTime(), wantErr: webhook.ErrTimestamp},
		{name: "message an hour ahead rejected", ts: time.Now().Add(time.Hour), wantErr: webhook.ErrTimestamp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := signedHeaders(t, specID, tt.ts, body, specSecret)
			if err := v.Verify(body, h); !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestWithToleranceReturnsCopy(t *testing.T) {
	t.Parallel()
	base := mustVerifier(t, specSecret)
	wide := base.WithTolerance(time.Hour)
	h := signedHeaders(t, specID, specTime(), []byte(specBody), specSecret)
	now := specTime().Add(30 * time.Minute)

	if err := wide.VerifyAt([]byte(specBody), h, now); err != nil {
		t.Errorf("widened verifier: VerifyAt = %v, want nil", err)
	}
	if err := base.VerifyAt([]byte(specBody), h, now); !errors.Is(err, webhook.ErrTimestamp) {
		t.Errorf("original verifier after WithTolerance: VerifyAt = %v, want ErrTimestamp", err)
	}
}

func TestMalformedKeys(t *testing.T) {
	t.Parallel()
	private, public := mustSigningKey(t)
	rawPrivate, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(private, webhook.SigningKeyPrefix))
	if err != nil {
		t.Fatal(err)
	}
	// A key whose public half was replaced: signatures would never verify.
	mismatched := bytes.Clone(rawPrivate)
	mismatched[ed25519.SeedSize] ^= 0xFF

	tests := []struct {
		name string
		// where the key is tried: DecodeSecret, NewSigner and/or NewVerifier.
		decode, sign, verify bool
		key                  string
	}{
		{name: "empty", decode: true, sign: true, verify: true, key: ""},
		{name: "empty after prefix", decode: true, sign: true, verify: true, key: webhook.SecretPrefix},
		{name: "misspelt prefix", decode: true, sign: true, verify: true, key: "whsex_" + b64Bytes(32)},
		{name: "bad base64", decode: true, sign: true, verify: true, key: webhook.SecretPrefix + "not*base64!!"},
		{name: "URL-safe base64", decode: true, sign: true, verify: true, key: webhook.SecretPrefix + "----" + b64Bytes(30)},
		{name: "too short, 23 bytes", decode: true, sign: true, verify: true, key: webhook.SecretPrefix + b64Bytes(23)},
		{name: "too long, 65 bytes", decode: true, sign: true, verify: true, key: webhook.SecretPrefix + b64Bytes(65)},
		{name: "signing key given as secret", decode: true, key: private},
		{name: "public key given as secret", decode: true, key: public},
		{name: "public key cannot sign", sign: true, key: public},
		{name: "signing key refused by verifier", verify: true, key: private},
		{name: "signing key too short", sign: true, key: webhook.SigningKeyPrefix + b64Bytes(63)},
		{name: "signing key bad base64", sign: true, key: webhook.SigningKeyPrefix + "%%%"},
		{
			name: "signing key halves disagree", sign: true,
			key: webhook.SigningKeyPrefix + base64.StdEncoding.EncodeToString(mismatched),
		},
		{name: "public key too long", verify: true, key: webhook.PublicKeyPrefix + b64Bytes(33)},
		{name: "public key bad base64", verify: true, key: webhook.PublicKeyPrefix + "===="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.decode {
				if key, err := webhook.DecodeSecret(tt.key); !errors.Is(err, webhook.ErrInvalidKey) {
					t.Errorf("DecodeSecret = %x, %v; want ErrInvalidKey", key, err)
				}
			}
			if tt.sign {
				// A valid key alongside must not rescue a bad one.
				if s, err := webhook.NewSigner(specSecret, tt.key); !errors.Is(err, webhook.ErrInvalidKey) || s != nil {
					t.Errorf("NewSigner = %v, %v; want nil, ErrInvalidKey", s, err)
				}
			}
			if tt.verify {
				if v, err := webhook.NewVerifier(specSecret, tt.key); !errors.Is(err, webhook.ErrInvalidKey) || v != nil {
					t.Errorf("NewVerifier = %v, %v; want nil, ErrInvalidKey", v, err)
				}
			}
		})
	}
}

func TestKeyErrorsDoNotLeakKeyMaterial(t *testing.T) {
	t.Parallel()
	material := "c2VjcmV0LXNlY3JldC1zZWNyZXQ" // 27 characters: not valid padded base64
	for _, key := range []string{webhook.SecretPrefix + material, "abc_" + material} {
		_, err := webhook.DecodeSecret(key)
		if err == nil {
			t.Fatalf("DecodeSecret(%q) = nil error", key)
		}
		if strings.Contains(err.Error(), material) {
			t.Errorf("error %q contains the key material", err)
		}
	}
}

func TestNoKeys(t *testing.T) {
	t.Parallel()
	if s, err := webhook.NewSigner(); err == nil {
		t.Errorf("NewSigner() = %v, nil; want an error", s)
	}
	if v, err := webhook.NewVerifier(); err == nil {
		t.Errorf("NewVerifier() = %v, nil; want an error", v)
	}
}

func TestSecretLengthBounds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		size int
	}{
		{name: "24 bytes is the minimum", size: 24},
		{name: "64 bytes is the maximum", size: 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key, err := webhook.DecodeSecret(webhook.SecretPrefix + b64Bytes(tt.size))
			if err != nil {
				t.Fatalf("DecodeSecret: %v", err)
			}
			if !bytes.Equal(key, bytes.Repeat([]byte{0xA5}, tt.size)) {
				t.Fatalf("DecodeSecret = %x, want %d bytes of a5", key, tt.size)
			}
		})
	}
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	a, err := webhook.NewSecret()
	if err != nil {
		t.Fatalf("NewSecret: %v", err)
	}
	b, err := webhook.NewSecret()
	if err != nil {
		t.Fatalf("NewSecret: %v", err)
	}
	if !strings.HasPrefix(a, webhook.SecretPrefix) {
		t.Errorf("NewSecret = %q, want prefix %q", a, webhook.SecretPrefix)
	}
	key, err := webhook.DecodeSecret(a)
	if err != nil {
		t.Fatalf("DecodeSecret(NewSecret()): %v", err)
	}
	if len(key) != 32 {
		t.Errorf("NewSecret decodes to %d bytes, want 32", len(key))
	}
	if a == b {
		t.Errorf("two calls to NewSecret returned the same secret %q", a)
	}
	// The official library must be able to use what we generate.
	if _, err := standardwebhooks.NewWebhook(a); err != nil {
		t.Errorf("standardwebhooks.NewWebhook(NewSecret()): %v", err)
	}
}

func TestNewSigningKey(t *testing.T) {
	t.Parallel()
	private, public := mustSigningKey(t)
	if !strings.HasPrefix(private, webhook.SigningKeyPrefix) || !strings.HasPrefix(public, webhook.PublicKeyPrefix) {
		t.Fatalf("NewSigningKey = %q, %q; want prefixes %q and %q",
			private, public, webhook.SigningKeyPrefix, webhook.PublicKeyPrefix)
	}
	rawPrivate, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(private, webhook.SigningKeyPrefix))
	if err != nil || len(rawPrivate) != ed25519.PrivateKeySize {
		t.Fatalf("private key decodes to %d bytes (err %v), want %d", len(rawPrivate), err, ed25519.PrivateKeySize)
	}
	rawPublic, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(public, webhook.PublicKeyPrefix))
	if err != nil || len(rawPublic) != ed25519.PublicKeySize {
		t.Fatalf("public key decodes to %d bytes (err %v), want %d", len(rawPublic), err, ed25519.PublicKeySize)
	}
	if !bytes.Equal(ed25519.PrivateKey(rawPrivate).Public().(ed25519.PublicKey), rawPublic) {
		t.Errorf("public key does not belong to the private key")
	}
	derived, err := webhook.PublicKey(private)
	if err != nil {
		t.Fatalf("PublicKey: %v", err)
	}
	if derived != public {
		t.Errorf("PublicKey(private) = %q, want %q", derived, public)
	}
	if _, err := webhook.PublicKey(public); !errors.Is(err, webhook.ErrInvalidKey) {
		t.Errorf("PublicKey(public key) = %v, want ErrInvalidKey", err)
	}
}

// TestSignConcurrent checks that pooled signing state is not shared between
// goroutines; run with -race.
func TestSignConcurrent(t *testing.T) {
	t.Parallel()
	private, public := mustSigningKey(t)
	s := mustSigner(t, specSecret, private)
	v := mustVerifier(t, public)
	want := s.Sign(specID, specTime(), []byte(specBody))
	if !strings.HasPrefix(want, specSignature+" v1a,") {
		t.Fatalf("Sign = %q, want the spec signature followed by a v1a entry", want)
	}

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				// Alternate sizes so buffers are regrown and reused.
				body := bytes.Repeat([]byte{byte('a' + g)}, (i%3)*40_000)
				id := fmt.Sprintf("msg_%d_%d", g, i)
				h := http.Header{}
				s.SetHeaders(h, id, specTime(), body)
				if err := v.VerifyAt(body, h, specTime()); err != nil {
					t.Errorf("goroutine %d message %d: VerifyAt = %v", g, i, err)
					return
				}
				if got := s.Sign(specID, specTime(), []byte(specBody)); got != want {
					t.Errorf("goroutine %d message %d: Sign = %q, want %q", g, i, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func FuzzVerify(f *testing.F) {
	f.Add(specID, strconv.Itoa(specTimestamp), specSignature, []byte(specBody))
	f.Add(specID, strconv.Itoa(specTimestamp), "v1a,"+strings.Repeat("A", 86)+"==", []byte(specBody))
	f.Add("", "", "", []byte(nil))
	f.Add("id", "-1", "v1,", []byte("x"))
	f.Add("id", "00001614265330", "v1 v1, ,v1a v1a,==== v2,x", []byte{0xff, 0x00})
	f.Add("id", "9223372036854775808", strings.Repeat("v1,AAAA ", 50), []byte("{}"))

	_, public := mustSigningKey(f)
	v := mustVerifier(f, specSecret, public)
	key, err := webhook.DecodeSecret(specSecret)
	if err != nil {
		f.Fatal(err)
	}
	now := specTime()

	f.Fuzz(func(t *testing.T, id, timestamp, signature string, body []byte) {
		h := http.Header{}
		h.Set(webhook.HeaderID, id)
		h.Set(webhook.HeaderTimestamp, timestamp)
		h.Set(webhook.HeaderSignature, signature)

		err := v.VerifyAt(body, h, now)
		if err == nil {
			// Nobody holds the Ed25519 private key, so acceptance must mean
			// the header carries the true HMAC of exactly this content.
			mac := hmac.New(sha256.New, key)
			fmt.Fprintf(mac, "%s.%s.%s", id, timestamp, body)
			want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
			if !strings.Contains(signature, want) {
				t.Fatalf("accepted id=%q ts=%q sig=%q body=%q without its HMAC %q", id, timestamp, signature, body, want)
			}
			return
		}
		if !errors.Is(err, webhook.ErrMissingHeaders) && !errors.Is(err, webhook.ErrTimestamp) &&
			!errors.Is(err, webhook.ErrNoMatchingSignature) {
			t.Fatalf("VerifyAt = %v, which wraps none of the sentinel errors", err)
		}
	})
}

func BenchmarkSign(b *testing.B) {
	s := mustSigner(b, specSecret)
	body := bytes.Repeat([]byte("x"), 1024)
	ts := specTime()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		s.Sign(specID, ts, body)
	}
}

func BenchmarkSignEd25519(b *testing.B) {
	private, _ := mustSigningKey(b)
	s := mustSigner(b, private)
	body := bytes.Repeat([]byte("x"), 1024)
	ts := specTime()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		s.Sign(specID, ts, body)
	}
}

func BenchmarkVerify(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	h := signedHeaders(b, specID, specTime(), body, specSecret)
	v := mustVerifier(b, specSecret)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := v.VerifyAt(body, h, specTime()); err != nil {
			b.Fatal(err)
		}
	}
}
