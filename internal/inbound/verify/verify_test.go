package verify_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/inbound/verify"
	"github.com/heraldhq/herald/webhook"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	stripewebhook "github.com/stripe/stripe-go/v82/webhook"
)

// testNow is the fixed clock of the tests that do not involve a library
// which only reads time.Now.
var testNow = time.Unix(1_700_000_000, 0)

func fixedClock() time.Time { return testNow }

const testBody = `{"type":"invoice.paid","id":"evt_1","action":"opened","event_id":"Ev1","event":{"type":"app_mention"}}`

// Secrets of every scheme: two valid ones, a configured pair for rotation,
// and a third never configured.
var (
	swSecrets     = [3]string{b64Secret(1), b64Secret(2), b64Secret(3)}
	stripeSecrets = [3]string{"whsec_first_test_secret_aaaaaaaa", "whsec_second_test_secret_bbbbbbb", "whsec_unconfigured_cccccccccccc"}
	plainSecrets  = [3]string{"first-secret-value", "second-secret-value", "never-configured"}
	twilioTokens  = [3]string{"12345", "67890abcdef", "not-the-token"}
	b64Secrets    = [3]string{base64.StdEncoding.EncodeToString([]byte("raw key one")), base64.StdEncoding.EncodeToString([]byte("raw key two")), base64.StdEncoding.EncodeToString([]byte("raw key three"))}
	basicCreds    = [3]string{"herald:correct horse", "herald:battery staple", "herald:wrong"}
	edKeys        = [3]edKey{newEdKey(1), newEdKey(2), newEdKey(3)}
)

// b64Secret is a whsec_ secret of 32 bytes derived from n.
func b64Secret(n byte) string {
	return webhook.SecretPrefix + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{n, 0x5a}, 16))
}

// edKey is a v1a key pair: the whsk_ signing key and the whpk_ public key.
type edKey struct{ private, public string }

func newEdKey(n byte) edKey {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{n}, ed25519.SeedSize))
	return edKey{
		private: webhook.SigningKeyPrefix + base64.StdEncoding.EncodeToString(priv),
		public:  webhook.PublicKeyPrefix + base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)),
	}
}

func macOf(newHash func() hash.Hash, key []byte, parts ...string) []byte {
	m := hmac.New(newHash, key)
	for _, p := range parts {
		io.WriteString(m, p)
	}
	return m.Sum(nil)
}

// newRequest builds a Request the way the inbound handler will: an
// httptest server request (nothing is sent) through FromHTTP.
func newRequest(method, target string, h http.Header, body []byte) *verify.Request {
	r := httptest.NewRequest(method, target, bytes.NewReader(body))
	for k, vs := range h {
		r.Header[k] = vs
	}
	return verify.FromHTTP(r, body)
}

const sourceURL = "https://hooks.example.com/in/src_tok3n"

// Signers. Where the sender publishes a Go library, the request is signed
// with it; otherwise with the sender's documented formula.

func signStandard(t testing.TB, secret string, at time.Time, body []byte) *verify.Request {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatalf("standardwebhooks.NewWebhook: %v", err)
	}
	sig, err := wh.Sign("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", at, body)
	if err != nil {
		t.Fatalf("standardwebhooks Sign: %v", err)
	}
	h := http.Header{}
	h.Set("webhook-id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")
	h.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
	h.Set("webhook-signature", sig)
	return newRequest(http.MethodPost, sourceURL, h, body)
}

// signStandardEd25519 uses Herald's own signer: the reference libraries
// cannot make v1a signatures.
func signStandardEd25519(t testing.TB, signingKey string, at time.Time, body []byte) *verify.Request {
	t.Helper()
	s, err := webhook.NewSigner(signingKey)
	if err != nil {
		t.Fatalf("webhook.NewSigner: %v", err)
	}
	h := http.Header{}
	s.SetHeaders(h, "msg_ed25519", at, body)
	return newRequest(http.MethodPost, sourceURL, h, body)
}

func signStripe(t testing.TB, secret string, at time.Time, body []byte) *verify.Request {
	t.Helper()
	signed := stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{
		Payload: body, Secret: secret, Timestamp: at,
	})
	h := http.Header{}
	h.Set("Stripe-Signature", signed.Header)
	return newRequest(http.MethodPost, sourceURL, h, body)
}

// signGitHub follows
// https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries;
// TestGitHub_AgreesWithGoGitHub checks it against go-github.
func signGitHub(_ testing.TB, secret string, _ time.Time, body []byte) *verify.Request {
	h := http.Header{}
	h.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(macOf(sha256.New, []byte(secret), string(body))))
	h.Set("X-GitHub-Event", "pull_request")
	h.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	return newRequest(http.MethodPost, sourceURL, h, body)
}

// signShopify follows https://shopify.dev/docs/apps/build/webhooks/subscribe/https:
// base64(HMAC-SHA256(client secret, raw body)).
func signShopify(_ testing.TB, secret string, _ time.Time, body []byte) *verify.Request {
	h := http.Header{}
	h.Set("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(macOf(sha256.New, []byte(secret), string(body))))
	h.Set("X-Shopify-Topic", "orders/create")
	h.Set("X-Shopify-Event-Id", "98880550-7158-44d4-b7cd-2c97c8a091b5")
	h.Set("X-Shopify-Webhook-Id", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
	return newRequest(http.MethodPost, sourceURL, h, body)
}

// signSlack follows
// https://api.slack.com/authentication/verifying-requests-from-slack;
// TestSlack_AgreesWithSlackGo checks it against slack-go.
func signSlack(_ testing.TB, secret string, at time.Time, body []byte) *verify.Request {
	ts := strconv.FormatInt(at.Unix(), 10)
	h := http.Header{}
	h.Set("X-Slack-Request-Timestamp", ts)
	h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(macOf(sha256.New, []byte(secret), "v0:"+ts+":"+string(body))))
	return newRequest(http.MethodPost, sourceURL, h, body)
}

// twilioSignature follows https://www.twilio.com/docs/usage/webhooks/webhooks-security:
// base64(HMAC-SHA1(auth token, URL + each POST parameter, sorted by name, as name+value)).
func twilioSignature(token, u string, params url.Values) string {
	s := u
	for _, k := range slices.Sorted(maps.Keys(params)) {
		for _, v := range params[k] {
			s += k + v
		}
	}
	return base64.StdEncoding.EncodeToString(macOf(sha1.New, []byte(token), s))
}

// twilioTarget is the URL of the Twilio fixtures, with a query string, which
// Twilio signs as part of the URL.
const twilioTarget = sourceURL + "?foo=1&bar=2"

// signTwilioForm signs a form POST; the test body is turned into form
// fields so that tampering with it changes a signed parameter.
func signTwilioForm(_ testing.TB, token string, _ time.Time, body []byte) *verify.Request {
	params := url.Values{"Body": {string(body)}, "From": {"+14158675309"}, "To": {"+18005551212"}, "MessageSid": {"SM123"}}
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("X-Twilio-Signature", twilioSignature(token, twilioTarget, params))
	h.Set("I-Twilio-Idempotency-Token", "idem-1")
	return newRequest(http.MethodPost, twilioTarget, h, []byte(params.Encode()))
}

// signTwilioJSON signs a JSON POST: the URL carries the body's SHA-256.
func signTwilioJSON(_ testing.TB, token string, _ time.Time, body []byte) *verify.Request {
	sum := sha256.Sum256(body)
	u := twilioTarget + "&bodySHA256=" + hex.EncodeToString(sum[:])
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-Twilio-Signature", twilioSignature(token, u, nil))
	return newRequest(http.MethodPost, u, h, body)
}

// genericConfig is the generic HMAC configuration of the "full" fixture:
// everything the scheme can do at once.
func genericConfig(secrets ...string) verify.Config {
	return verify.Config{
		Scheme: verify.SchemeHMAC, Secrets: secrets,
		Header: "X-Acme-Signature", Algorithm: verify.AlgorithmSHA512, Encoding: verify.EncodingBase64,
		Prefix: "v1=", Template: "{id}:{timestamp}:{body}", TimestampHeader: "X-Acme-Timestamp",
		IDHeader: "X-Acme-Delivery", SecretEncoding: verify.EncodingBase64,
	}
}

func signGeneric(t testing.TB, secret string, at time.Time, body []byte) *verify.Request {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(secret)
	if err != nil {
		t.Fatalf("decode secret: %v", err)
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	h := http.Header{}
	h.Set("X-Acme-Timestamp", ts)
	h.Set("X-Acme-Delivery", "dlv_42")
	h.Set("X-Acme-Signature", "v1="+base64.StdEncoding.EncodeToString(macOf(sha512.New, key, "dlv_42:"+ts+":"+string(body))))
	return newRequest(http.MethodPost, sourceURL, h, body)
}

// signGenericSimple is the GitHub-like use of the generic scheme: SHA-1, hex,
// body only, no timestamp.
func signGenericSimple(_ testing.TB, secret string, _ time.Time, body []byte) *verify.Request {
	h := http.Header{}
	h.Set("X-Signature", hex.EncodeToString(macOf(sha1.New, []byte(secret), string(body))))
	return newRequest(http.MethodPost, sourceURL, h, body)
}

func signBasic(_ testing.TB, cred string, _ time.Time, body []byte) *verify.Request {
	r := httptest.NewRequest(http.MethodPost, sourceURL, bytes.NewReader(body))
	user, pass, _ := strings.Cut(cred, ":")
	r.SetBasicAuth(user, pass)
	return verify.FromHTTP(r, body)
}

func signBearer(_ testing.TB, token string, _ time.Time, body []byte) *verify.Request {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	return newRequest(http.MethodPost, sourceURL, h, body)
}

func signGitLabToken(_ testing.TB, token string, _ time.Time, body []byte) *verify.Request {
	h := http.Header{}
	h.Set("X-Gitlab-Token", token)
	return newRequest(http.MethodPost, sourceURL, h, body)
}

// fixture describes one scheme for the conformance suite.
type fixture struct {
	name   string
	config func(secrets ...string) verify.Config
	// secrets holds two secrets to configure and a third that never is.
	secrets [3]string
	// signer is the secret a request is signed with, when it differs from
	// the verifying one (Ed25519: the signing key for a public key).
	signer func(secret string) string
	sign   func(t testing.TB, secret string, at time.Time, body []byte) *verify.Request
	// signatureHeader is removed to make a request without a signature.
	signatureHeader string
	timestamped     bool
	// signsBody is false for credential schemes, which cannot detect a
	// changed body.
	signsBody bool
}

func schemeConfig(s verify.Scheme) func(...string) verify.Config {
	return func(secrets ...string) verify.Config { return verify.Config{Scheme: s, Secrets: secrets} }
}

func fixtures() []fixture {
	return []fixture{
		{name: "standard_webhooks v1", config: schemeConfig(verify.SchemeStandardWebhooks), secrets: swSecrets,
			sign: signStandard, signatureHeader: "webhook-signature", timestamped: true, signsBody: true},
		{name: "standard_webhooks v1a", config: schemeConfig(verify.SchemeStandardWebhooks),
			secrets: [3]string{edKeys[0].public, edKeys[1].public, edKeys[2].public},
			signer: func(public string) string {
				for _, k := range edKeys {
					if k.public == public {
						return k.private
					}
				}
				panic("unknown public key")
			},
			sign: signStandardEd25519, signatureHeader: "webhook-signature", timestamped: true, signsBody: true},
		{name: "stripe", config: schemeConfig(verify.SchemeStripe), secrets: stripeSecrets,
			sign: signStripe, signatureHeader: "Stripe-Signature", timestamped: true, signsBody: true},
		{name: "github", config: schemeConfig(verify.SchemeGitHub), secrets: plainSecrets,
			sign: signGitHub, signatureHeader: "X-Hub-Signature-256", signsBody: true},
		{name: "shopify", config: schemeConfig(verify.SchemeShopify), secrets: plainSecrets,
			sign: signShopify, signatureHeader: "X-Shopify-Hmac-Sha256", signsBody: true},
		{name: "slack", config: schemeConfig(verify.SchemeSlack), secrets: plainSecrets,
			sign: signSlack, signatureHeader: "X-Slack-Signature", timestamped: true, signsBody: true},
		{name: "twilio form", config: schemeConfig(verify.SchemeTwilio), secrets: twilioTokens,
			sign: signTwilioForm, signatureHeader: "X-Twilio-Signature", signsBody: true},
		{name: "twilio json", config: schemeConfig(verify.SchemeTwilio), secrets: twilioTokens,
			sign: signTwilioJSON, signatureHeader: "X-Twilio-Signature", signsBody: true},
		{name: "hmac full", config: genericConfig, secrets: b64Secrets,
			sign: signGeneric, signatureHeader: "X-Acme-Signature", timestamped: true, signsBody: true},
		{name: "hmac simple", config: func(secrets ...string) verify.Config {
			return verify.Config{Scheme: verify.SchemeHMAC, Secrets: secrets, Header: "X-Signature", Algorithm: verify.AlgorithmSHA1}
		}, secrets: plainSecrets, sign: signGenericSimple, signatureHeader: "X-Signature", signsBody: true},
		{name: "basic", config: schemeConfig(verify.SchemeBasic), secrets: basicCreds,
			sign: signBasic, signatureHeader: "Authorization"},
		{name: "bearer", config: schemeConfig(verify.SchemeBearer), secrets: plainSecrets,
			sign: signBearer, signatureHeader: "Authorization"},
		{name: "bearer in a named header", config: func(secrets ...string) verify.Config {
			return verify.Config{Scheme: verify.SchemeBearer, Secrets: secrets, Header: "X-Gitlab-Token"}
		}, secrets: plainSecrets, sign: signGitLabToken, signatureHeader: "X-Gitlab-Token"},
	}
}

func (f fixture) signWith(t testing.TB, secret string, at time.Time, body []byte) *verify.Request {
	t.Helper()
	if f.signer != nil {
		secret = f.signer(secret)
	}
	return f.sign(t, secret, at, body)
}

func mustNew(t testing.TB, cfg verify.Config, opts ...verify.Option) *verify.Verifier {
	t.Helper()
	v, err := verify.New(cfg, opts...)
	if err != nil {
		t.Fatalf("New(%v): %v", cfg, err)
	}
	return v
}

// wantReason fails unless err is an *verify.Error with the reason.
func wantReason(t testing.TB, err error, want verify.Reason) {
	t.Helper()
	if err == nil {
		t.Fatalf("Verify accepted the request, want rejection %s", want)
	}
	if got := verify.ReasonOf(err); got != want {
		t.Fatalf("Verify = %v (reason %q), want reason %q", err, got, want)
	}
	if _, ok := errors.AsType[*verify.Error](err); !ok {
		t.Fatalf("Verify error %T is not a *verify.Error", err)
	}
}

// TestSchemes_Conformance runs every scheme through the same
// specification: what a genuine request, a tampered one, a wrong secret, a
// stale or future timestamp, a missing header and a rotated secret must give.
func TestSchemes_Conformance(t *testing.T) {
	t.Parallel()
	body := []byte(testBody)
	tampered := []byte(strings.Replace(testBody, "invoice.paid", "invoice.void", 1))
	tol := verify.DefaultTolerance

	for _, f := range fixtures() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			one := mustNew(t, f.config(f.secrets[0]), verify.WithClock(fixedClock))
			rotating := mustNew(t, f.config(f.secrets[0], f.secrets[1]), verify.WithClock(fixedClock))

			t.Run("valid request is accepted", func(t *testing.T) {
				res, err := one.Verify(f.signWith(t, f.secrets[0], testNow, body))
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if res.SecretIndex != 0 {
					t.Errorf("SecretIndex = %d, want 0", res.SecretIndex)
				}
				if res.Scheme != one.Scheme() {
					t.Errorf("Scheme = %q, want %q", res.Scheme, one.Scheme())
				}
				if f.timestamped && !res.Timestamp.Equal(testNow) {
					t.Errorf("Timestamp = %v, want %v", res.Timestamp, testNow)
				}
				if !f.timestamped && !res.Timestamp.IsZero() {
					t.Errorf("Timestamp = %v for a scheme that signs none", res.Timestamp)
				}
			})

			t.Run("tampered body is rejected", func(t *testing.T) {
				req := f.signWith(t, f.secrets[0], testNow, body)
				signed := f.signWith(t, f.secrets[0], testNow, tampered)
				// Swap the body only: keep the headers and URL signed for the original.
				req.Body = signed.Body
				_, err := one.Verify(req)
				if !f.signsBody {
					// Credentials say who sent the request, not what it says:
					// only TLS protects the body of these schemes.
					if err != nil {
						t.Fatalf("Verify: %v; a credential scheme cannot see the body", err)
					}
					return
				}
				wantReason(t, err, verify.ReasonBadSignature)
			})

			t.Run("wrong secret is rejected", func(t *testing.T) {
				_, err := rotating.Verify(f.signWith(t, f.secrets[2], testNow, body))
				wantReason(t, err, verify.ReasonBadSignature)
			})

			t.Run("missing signature header is rejected", func(t *testing.T) {
				req := f.signWith(t, f.secrets[0], testNow, body)
				req.Header.Del(f.signatureHeader)
				_, err := one.Verify(req)
				wantReason(t, err, verify.ReasonMissingSignature)
			})

			t.Run("empty signature header is rejected", func(t *testing.T) {
				req := f.signWith(t, f.secrets[0], testNow, body)
				req.Header.Set(f.signatureHeader, "")
				_, err := one.Verify(req)
				wantReason(t, err, verify.ReasonMissingSignature)
			})

			t.Run("rotated secrets are both accepted during the overlap", func(t *testing.T) {
				for i := range 2 {
					res, err := rotating.Verify(f.signWith(t, f.secrets[i], testNow, body))
					if err != nil {
						t.Fatalf("signed with secret %d: Verify: %v", i, err)
					}
					if res.SecretIndex != i {
						t.Errorf("signed with secret %d: SecretIndex = %d", i, res.SecretIndex)
					}
				}
			})

			t.Run("timestamps", func(t *testing.T) {
				tests := []struct {
					name string
					at   time.Time
					want verify.Reason // "" for accepted
				}{
					{name: "at the tolerance in the past", at: testNow.Add(-tol)},
					{name: "at the tolerance in the future", at: testNow.Add(tol)},
					{name: "stale", at: testNow.Add(-tol - time.Second), want: verify.ReasonStaleTimestamp},
					{name: "a day old", at: testNow.Add(-24 * time.Hour), want: verify.ReasonStaleTimestamp},
					{name: "future", at: testNow.Add(tol + time.Second), want: verify.ReasonFutureTimestamp},
				}
				for _, tt := range tests {
					t.Run(tt.name, func(t *testing.T) {
						_, err := one.Verify(f.signWith(t, f.secrets[0], tt.at, body))
						switch {
						case !f.timestamped:
							// Nothing to check: such a request verifies at any
							// time, which is why its delivery id must be
							// remembered.
							if err != nil {
								t.Fatalf("Verify: %v", err)
							}
						case tt.want == "":
							if err != nil {
								t.Fatalf("Verify: %v", err)
							}
						default:
							wantReason(t, err, tt.want)
						}
					})
				}
			})

			if f.timestamped {
				t.Run("configured tolerance", func(t *testing.T) {
					cfg := f.config(f.secrets[0])
					cfg.ToleranceSeconds = 60
					v := mustNew(t, cfg, verify.WithClock(fixedClock))
					if _, err := v.Verify(f.signWith(t, f.secrets[0], testNow.Add(-59*time.Second), body)); err != nil {
						t.Fatalf("59 s old: %v", err)
					}
					_, err := v.Verify(f.signWith(t, f.secrets[0], testNow.Add(-61*time.Second), body))
					wantReason(t, err, verify.ReasonStaleTimestamp)
					_, err = v.Verify(f.signWith(t, f.secrets[0], testNow.Add(61*time.Second), body))
					wantReason(t, err, verify.ReasonFutureTimestamp)
				})
			}
		})
	}
}

func TestNone_AcceptsEverything(t *testing.T) {
	t.Parallel()
	v := mustNew(t, verify.Config{Scheme: verify.SchemeNone})
	res, err := v.Verify(newRequest(http.MethodPost, sourceURL, nil, []byte("anything")))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if res.SecretIndex != -1 {
		t.Errorf("SecretIndex = %d, want -1", res.SecretIndex)
	}
}

// TestVerify_ErrorsRevealNoSecrets checks that no rejection message repeats a
// secret, a signature or the body, so errors can be logged and returned.
func TestVerify_ErrorsRevealNoSecrets(t *testing.T) {
	t.Parallel()
	body := []byte(`{"card":"4242424242424242"}`)
	for _, f := range fixtures() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			v := mustNew(t, f.config(f.secrets[0]), verify.WithClock(fixedClock))
			req := f.signWith(t, f.secrets[2], testNow, body)
			_, err := v.Verify(req)
			if err == nil {
				t.Fatal("Verify accepted a request signed with an unconfigured secret")
			}
			msg := err.Error()
			forbidden := []string{f.secrets[0], f.secrets[2], "4242424242424242"}
			if sig := req.Header.Get(f.signatureHeader); len(sig) > 12 {
				forbidden = append(forbidden, sig[len(sig)-12:])
			}
			for _, s := range forbidden {
				if strings.Contains(msg, s) {
					t.Errorf("error %q contains %q", msg, s)
				}
			}
			if s := v.String(); strings.Contains(s, f.secrets[0]) {
				t.Errorf("Verifier.String() = %q contains the secret", s)
			}
		})
	}
}

func TestFromHTTP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, target, want string
	}{
		{name: "https keeps the query verbatim", target: "https://hooks.example.com/in/tok?b=2&a=%2B1", want: "https://hooks.example.com/in/tok?b=2&a=%2B1"},
		{name: "plain http", target: "http://127.0.0.1:8080/in/tok", want: "http://127.0.0.1:8080/in/tok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodPost, tt.target, nil)
			r.Header.Set("X-Forwarded-Proto", "https")
			r.Header.Set("X-Forwarded-Host", "evil.example")
			req := verify.FromHTTP(r, []byte("b"))
			if req.URL != tt.want {
				t.Errorf("URL = %q, want %q (forwarded headers must be ignored)", req.URL, tt.want)
			}
			if req.Method != http.MethodPost || string(req.Body) != "b" {
				t.Errorf("Method, Body = %q, %q", req.Method, req.Body)
			}
		})
	}
}

func TestVerify_LowerCaseHeaderKeys(t *testing.T) {
	t.Parallel()
	// Headers copied by hand (serverless events) often keep the wire case.
	req := signGitHub(t, plainSecrets[0], testNow, []byte(testBody))
	lower := http.Header{}
	for k, vs := range req.Header {
		lower[strings.ToLower(k)] = vs
	}
	req.Header = lower
	if _, err := mustNew(t, schemeConfig(verify.SchemeGitHub)(plainSecrets[0])).Verify(req); err != nil {
		t.Fatalf("Verify with lower-case header keys: %v", err)
	}
}

func TestConfig_StringRedactsSecrets(t *testing.T) {
	t.Parallel()
	cfg := verify.Config{Scheme: verify.SchemeGitHub, Secrets: []string{"hunter2-secret"}}
	for _, s := range []string{cfg.String(), cfg.GoString()} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("%q contains the secret", s)
		}
	}
}

func TestNew_CopiesSecrets(t *testing.T) {
	t.Parallel()
	secrets := []string{plainSecrets[0]}
	v := mustNew(t, verify.Config{Scheme: verify.SchemeGitHub, Secrets: secrets})
	secrets[0] = plainSecrets[2] // the caller reusing its slice must not change the Verifier
	if _, err := v.Verify(signGitHub(t, plainSecrets[0], testNow, []byte(testBody))); err != nil {
		t.Fatalf("Verify after the caller changed its slice: %v", err)
	}
}
