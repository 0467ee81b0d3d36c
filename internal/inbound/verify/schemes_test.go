package verify_test

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v84/github"
	"github.com/slack-go/slack"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	stripewebhook "github.com/stripe/stripe-go/v82/webhook"

	"github.com/heraldhq/herald/internal/inbound/verify"
)

// --- Standard Webhooks ---

// The test vector published with the Standard Webhooks specification.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specBody      = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestStandardWebhooks_SpecVector(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	h.Set("webhook-id", specID)
	h.Set("webhook-timestamp", strconv.Itoa(specTimestamp))
	h.Set("webhook-signature", specSignature)
	req := newRequest(http.MethodPost, sourceURL, h, []byte(specBody))

	v := mustNew(t, verify.Config{Scheme: verify.SchemeStandardWebhooks, Secrets: []string{swSecrets[0], specSecret}})
	res, err := v.VerifyAt(req, time.Unix(specTimestamp, 0))
	if err != nil {
		t.Fatalf("VerifyAt of the spec vector: %v", err)
	}
	if res.SecretIndex != 1 {
		t.Errorf("SecretIndex = %d, want 1", res.SecretIndex)
	}
}

// TestStandardWebhooks_AgreesWithReferenceLibrary signs with the reference Go
// library and checks that it and Herald give the same verdict. The library
// reads only time.Now, so these requests use the real clock.
func TestStandardWebhooks_AgreesWithReferenceLibrary(t *testing.T) {
	t.Parallel()
	body := []byte(testBody)
	tests := []struct {
		name   string
		secret string
		body   []byte
		at     time.Duration // from now
		want   verify.Reason
	}{
		{name: "genuine", secret: swSecrets[0], body: body},
		{name: "tampered", secret: swSecrets[0], body: []byte(`{"type":"invoice.void"}`), want: verify.ReasonBadSignature},
		{name: "other secret", secret: swSecrets[2], body: body, want: verify.ReasonBadSignature},
		{name: "stale", secret: swSecrets[0], body: body, at: -10 * time.Minute, want: verify.ReasonStaleTimestamp},
		{name: "future", secret: swSecrets[0], body: body, at: 10 * time.Minute, want: verify.ReasonFutureTimestamp},
	}
	official, err := standardwebhooks.NewWebhook(swSecrets[0])
	if err != nil {
		t.Fatalf("standardwebhooks.NewWebhook: %v", err)
	}
	ours := mustNew(t, verify.Config{Scheme: verify.SchemeStandardWebhooks, Secrets: []string{swSecrets[0]}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := signStandard(t, tt.secret, time.Now().Add(tt.at), body)
			req.Body = tt.body
			_, err := ours.Verify(req)
			officialErr := official.Verify(req.Body, req.Header)
			if tt.want == "" {
				if err != nil || officialErr != nil {
					t.Fatalf("Herald: %v; reference library: %v; want both to accept", err, officialErr)
				}
				return
			}
			wantReason(t, err, tt.want)
			if officialErr == nil {
				t.Fatalf("the reference library accepts what Herald rejects as %s", tt.want)
			}
		})
	}
}

func TestStandardWebhooks_Headers(t *testing.T) {
	t.Parallel()
	v := mustNew(t, verify.Config{Scheme: verify.SchemeStandardWebhooks, Secrets: []string{swSecrets[0]}}, verify.WithClock(fixedClock))
	signed := func() *verify.Request { return signStandard(t, swSecrets[0], testNow, []byte(testBody)) }
	tests := []struct {
		name   string
		change func(h http.Header)
		want   verify.Reason
	}{
		{name: "svix header names are accepted", change: func(h http.Header) {
			for _, n := range []string{"id", "timestamp", "signature"} {
				h.Set("svix-"+n, h.Get("webhook-"+n))
				h.Del("webhook-" + n)
			}
		}},
		{name: "unknown versions are ignored", change: func(h http.Header) {
			h.Set("webhook-signature", "v2,AAAA "+h.Get("webhook-signature"))
		}},
		{name: "missing id", change: func(h http.Header) { h.Del("webhook-id") }, want: verify.ReasonMissingHeader},
		{name: "missing timestamp", change: func(h http.Header) { h.Del("webhook-timestamp") }, want: verify.ReasonMissingHeader},
		{name: "timestamp with a sign", change: func(h http.Header) { h.Set("webhook-timestamp", "+"+h.Get("webhook-timestamp")) }, want: verify.ReasonMalformedHeader},
		{name: "timestamp in milliseconds is far future", change: func(h http.Header) { h.Set("webhook-timestamp", h.Get("webhook-timestamp")+"000") }, want: verify.ReasonFutureTimestamp},
		{name: "changed id", change: func(h http.Header) { h.Set("webhook-id", "msg_other") }, want: verify.ReasonBadSignature},
		{name: "signature without version", change: func(h http.Header) { h.Set("webhook-signature", "garbage") }, want: verify.ReasonBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := signed()
			tt.change(req.Header)
			_, err := v.Verify(req)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantReason(t, err, tt.want)
		})
	}
}

func TestStandardWebhooks_MixedHMACAndEd25519Keys(t *testing.T) {
	t.Parallel()
	v := mustNew(t, verify.Config{Scheme: verify.SchemeStandardWebhooks, Secrets: []string{swSecrets[0], edKeys[0].public}},
		verify.WithClock(fixedClock))
	res, err := v.Verify(signStandardEd25519(t, edKeys[0].private, testNow, []byte(testBody)))
	if err != nil {
		t.Fatalf("Verify v1a: %v", err)
	}
	if res.SecretIndex != 1 {
		t.Errorf("SecretIndex = %d, want 1 (the public key)", res.SecretIndex)
	}
}

// --- Stripe ---

// TestStripe_AgreesWithStripeGo checks Herald's verdict against stripe-go's
// own verification for requests its test helper signed.
func TestStripe_AgreesWithStripeGo(t *testing.T) {
	t.Parallel()
	body := []byte(testBody)
	tests := []struct {
		name   string
		secret string
		body   []byte
		at     time.Duration
		want   verify.Reason
	}{
		{name: "genuine", secret: stripeSecrets[0], body: body},
		{name: "tampered", secret: stripeSecrets[0], body: []byte(`{"type":"invoice.void"}`), want: verify.ReasonBadSignature},
		{name: "other secret", secret: stripeSecrets[2], body: body, want: verify.ReasonBadSignature},
		{name: "stale", secret: stripeSecrets[0], body: body, at: -301 * time.Second, want: verify.ReasonStaleTimestamp},
	}
	ours := mustNew(t, verify.Config{Scheme: verify.SchemeStripe, Secrets: []string{stripeSecrets[0]}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := signStripe(t, tt.secret, time.Now().Add(tt.at), body)
			req.Body = tt.body
			_, err := ours.Verify(req)
			stripeErr := stripewebhook.ValidatePayloadWithTolerance(req.Body, req.Header.Get("Stripe-Signature"),
				stripeSecrets[0], 300*time.Second)
			if tt.want == "" {
				if err != nil || stripeErr != nil {
					t.Fatalf("Herald: %v; stripe-go: %v; want both to accept", err, stripeErr)
				}
				return
			}
			wantReason(t, err, tt.want)
			if stripeErr == nil {
				t.Fatalf("stripe-go accepts what Herald rejects as %s", tt.want)
			}
		})
	}
}

// TestStripe_Header covers the forms of Stripe-Signature: several v1 entries
// while Stripe rolls an endpoint's secret, v0 entries, and broken headers.
func TestStripe_Header(t *testing.T) {
	t.Parallel()
	body := []byte(testBody)
	sig := func(secret string) string {
		return hex.EncodeToString(stripewebhook.ComputeSignature(testNow, body, secret))
	}
	ts := "t=" + strconv.FormatInt(testNow.Unix(), 10)
	tests := []struct {
		name, header string
		want         verify.Reason
		wantIndex    int
	}{
		{name: "new secret's signature second", header: ts + ",v1=" + sig(stripeSecrets[2]) + ",v1=" + sig(stripeSecrets[1]), wantIndex: 1},
		{name: "v0 and v1", header: ts + ",v1=" + sig(stripeSecrets[0]) + ",v0=" + sig("whsec_test"), wantIndex: 0},
		{name: "malformed v1 entries are skipped", header: ts + ",v1=zz,v1=abcd,v1=" + sig(stripeSecrets[0]), wantIndex: 0},
		{name: "spaces after commas", header: ts + ", v1=" + sig(stripeSecrets[0]), wantIndex: 0},
		{name: "only v0", header: ts + ",v0=" + sig(stripeSecrets[0]), want: verify.ReasonMalformedHeader},
		{name: "no timestamp", header: "v1=" + sig(stripeSecrets[0]), want: verify.ReasonMalformedHeader},
		{name: "two timestamps", header: ts + "," + ts + ",v1=" + sig(stripeSecrets[0]), want: verify.ReasonMalformedHeader},
		{name: "non-numeric timestamp", header: "t=yesterday,v1=" + sig(stripeSecrets[0]), want: verify.ReasonMalformedHeader},
		{name: "garbage", header: "garbage", want: verify.ReasonMalformedHeader},
		{name: "too many signatures", header: ts + strings.Repeat(",v1="+sig(stripeSecrets[2]), 40), want: verify.ReasonMalformedHeader},
	}
	v := mustNew(t, verify.Config{Scheme: verify.SchemeStripe, Secrets: []string{stripeSecrets[0], stripeSecrets[1]}}, verify.WithClock(fixedClock))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := newRequest(http.MethodPost, sourceURL, http.Header{"Stripe-Signature": {tt.header}}, body)
			res, err := v.Verify(req)
			if tt.want != "" {
				wantReason(t, err, tt.want)
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if res.SecretIndex != tt.wantIndex {
				t.Errorf("SecretIndex = %d, want %d", res.SecretIndex, tt.wantIndex)
			}
		})
	}
}

// TestStripe_KeyIsTheWholeSecret pins the difference from Standard Webhooks:
// Stripe keys the HMAC with the whsec_ string itself, not its base64 decoding.
func TestStripe_KeyIsTheWholeSecret(t *testing.T) {
	t.Parallel()
	body := []byte(testBody)
	secret := swSecrets[0] // a whsec_ secret whose tail is valid base64
	decoded, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(testNow.Unix(), 10)
	decodedSig := hex.EncodeToString(macOf(sha256.New, decoded, ts+"."+string(body)))
	req := newRequest(http.MethodPost, sourceURL, http.Header{"Stripe-Signature": {"t=" + ts + ",v1=" + decodedSig}}, body)
	v := mustNew(t, verify.Config{Scheme: verify.SchemeStripe, Secrets: []string{secret}}, verify.WithClock(fixedClock))
	_, err = v.Verify(req)
	wantReason(t, err, verify.ReasonBadSignature)
	if _, err := v.Verify(signStripe(t, secret, testNow, body)); err != nil {
		t.Fatalf("Verify of stripe-go's signature with the same secret: %v", err)
	}
}

// --- GitHub ---

// TestGitHub_DocumentedExample is the example in GitHub's "Validating webhook
// deliveries": secret "It's a Secret to Everybody", payload "Hello, World!".
func TestGitHub_DocumentedExample(t *testing.T) {
	t.Parallel()
	const sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	req := newRequest(http.MethodPost, sourceURL, http.Header{"X-Hub-Signature-256": {sig}}, []byte("Hello, World!"))
	v := mustNew(t, verify.Config{Scheme: verify.SchemeGitHub, Secrets: []string{"It's a Secret to Everybody"}})
	if _, err := v.Verify(req); err != nil {
		t.Fatalf("Verify of GitHub's documented example: %v", err)
	}
	if err := github.ValidateSignature(sig, []byte("Hello, World!"), []byte("It's a Secret to Everybody")); err != nil {
		t.Fatalf("go-github rejects GitHub's documented example: %v", err)
	}
}

// TestGitHub_AgreesWithGoGitHub checks Herald's verdict against go-github's
// ValidateSignature for the same header, body and secret.
func TestGitHub_AgreesWithGoGitHub(t *testing.T) {
	t.Parallel()
	body := []byte(testBody)
	good := "sha256=" + hex.EncodeToString(macOf(sha256.New, []byte(plainSecrets[0]), testBody))
	tests := []struct {
		name, header string
		body         []byte
		want         verify.Reason
	}{
		{name: "genuine", header: good, body: body},
		{name: "upper-case hex", header: "sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256=")), body: body},
		{name: "tampered", header: good, body: []byte(`{}`), want: verify.ReasonBadSignature},
		{name: "other secret", header: "sha256=" + hex.EncodeToString(macOf(sha256.New, []byte(plainSecrets[2]), testBody)), body: body, want: verify.ReasonBadSignature},
		{name: "sha1 prefix", header: "sha1=" + strings.TrimPrefix(good, "sha256="), body: body, want: verify.ReasonMalformedHeader},
		{name: "no prefix", header: strings.TrimPrefix(good, "sha256="), body: body, want: verify.ReasonMalformedHeader},
		{name: "short", header: good[:40], body: body, want: verify.ReasonMalformedHeader},
	}
	v := mustNew(t, verify.Config{Scheme: verify.SchemeGitHub, Secrets: []string{plainSecrets[0]}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := newRequest(http.MethodPost, sourceURL, http.Header{"X-Hub-Signature-256": {tt.header}}, tt.body)
			_, err := v.Verify(req)
			ghErr := github.ValidateSignature(tt.header, tt.body, []byte(plainSecrets[0]))
			if tt.want == "" {
				if err != nil || ghErr != nil {
					t.Fatalf("Herald: %v; go-github: %v; want both to accept", err, ghErr)
				}
				return
			}
			wantReason(t, err, tt.want)
			// go-github accepts sha1= signatures, which Herald refuses on
			// purpose; every other rejection must be shared.
			if ghErr == nil && !strings.HasPrefix(tt.header, "sha1=") {
				t.Fatalf("go-github accepts what Herald rejects as %s", tt.want)
			}
		})
	}
}

func TestGitHub_OnlySHA1HeaderIsMissingSignature(t *testing.T) {
	t.Parallel()
	req := newRequest(http.MethodPost, sourceURL, http.Header{"X-Hub-Signature": {"sha1=0123"}}, []byte(testBody))
	_, err := mustNew(t, verify.Config{Scheme: verify.SchemeGitHub, Secrets: []string{plainSecrets[0]}}).Verify(req)
	wantReason(t, err, verify.ReasonMissingSignature)
	if !strings.Contains(err.Error(), "SHA-1") {
		t.Errorf("error %q does not say why the SHA-1 header is not enough", err)
	}
}

// --- Shopify ---

// TestShopify_Formula checks Herald against the formula Shopify documents
// (https://shopify.dev/docs/apps/build/webhooks/subscribe/https), computed
// here independently; Shopify publishes no Go library nor test vector.
func TestShopify_Formula(t *testing.T) {
	t.Parallel()
	v := mustNew(t, verify.Config{Scheme: verify.SchemeShopify, Secrets: []string{plainSecrets[0]}})
	good := base64.StdEncoding.EncodeToString(macOf(sha256.New, []byte(plainSecrets[0]), testBody))
	tests := []struct {
		name, header string
		want         verify.Reason
	}{
		{name: "genuine", header: good},
		{name: "hex instead of base64", header: hex.EncodeToString(macOf(sha256.New, []byte(plainSecrets[0]), testBody)), want: verify.ReasonMalformedHeader},
		{name: "url-safe base64 is not Shopify's", header: strings.NewReplacer("+", "-", "/", "_").Replace(good) + "-_", want: verify.ReasonMalformedHeader},
		{name: "truncated", header: good[:20], want: verify.ReasonMalformedHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := v.Verify(newRequest(http.MethodPost, sourceURL, http.Header{"X-Shopify-Hmac-Sha256": {tt.header}}, []byte(testBody)))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantReason(t, err, tt.want)
		})
	}
}

// --- Slack ---

// TestSlack_AgreesWithSlackGo checks Herald's verdict against slack-go's
// SecretsVerifier, which reads time.Now, for the same request.
func TestSlack_AgreesWithSlackGo(t *testing.T) {
	t.Parallel()
	body := []byte("token=xyz&team_id=T1&command=%2Fweather&text=94070")
	tests := []struct {
		name   string
		secret string
		body   []byte
		at     time.Duration
		want   verify.Reason
	}{
		{name: "genuine", secret: plainSecrets[0], body: body},
		{name: "tampered", secret: plainSecrets[0], body: []byte("token=xyz&text=0"), want: verify.ReasonBadSignature},
		{name: "other secret", secret: plainSecrets[2], body: body, want: verify.ReasonBadSignature},
		{name: "stale", secret: plainSecrets[0], body: body, at: -6 * time.Minute, want: verify.ReasonStaleTimestamp},
		{name: "future", secret: plainSecrets[0], body: body, at: 6 * time.Minute, want: verify.ReasonFutureTimestamp},
	}
	v := mustNew(t, verify.Config{Scheme: verify.SchemeSlack, Secrets: []string{plainSecrets[0]}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := signSlack(t, tt.secret, time.Now().Add(tt.at), body)
			req.Body = tt.body
			_, err := v.Verify(req)
			slackErr := slackVerify(req, plainSecrets[0])
			if tt.want == "" {
				if err != nil || slackErr != nil {
					t.Fatalf("Herald: %v; slack-go: %v; want both to accept", err, slackErr)
				}
				return
			}
			wantReason(t, err, tt.want)
			if slackErr == nil {
				t.Fatalf("slack-go accepts what Herald rejects as %s", tt.want)
			}
		})
	}
}

func slackVerify(req *verify.Request, secret string) error {
	sv, err := slack.NewSecretsVerifier(req.Header, secret)
	if err != nil {
		return err
	}
	if _, err := sv.Write(req.Body); err != nil {
		return err
	}
	return sv.Ensure()
}

func TestSlack_Headers(t *testing.T) {
	t.Parallel()
	v := mustNew(t, verify.Config{Scheme: verify.SchemeSlack, Secrets: []string{plainSecrets[0]}}, verify.WithClock(fixedClock))
	tests := []struct {
		name   string
		change func(h http.Header)
		want   verify.Reason
	}{
		{name: "missing timestamp", change: func(h http.Header) { h.Del("X-Slack-Request-Timestamp") }, want: verify.ReasonMissingHeader},
		{name: "changed timestamp", change: func(h http.Header) {
			h.Set("X-Slack-Request-Timestamp", strconv.FormatInt(testNow.Unix()-1, 10))
		}, want: verify.ReasonBadSignature},
		{name: "v1 prefix", change: func(h http.Header) {
			h.Set("X-Slack-Signature", "v1="+strings.TrimPrefix(h.Get("X-Slack-Signature"), "v0="))
		}, want: verify.ReasonMalformedHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := signSlack(t, plainSecrets[0], testNow, []byte(testBody))
			tt.change(req.Header)
			_, err := v.Verify(req)
			wantReason(t, err, tt.want)
		})
	}
}

// --- Twilio ---

// Twilio's published example, from the tests of its official Go library
// (twilio-go, client/request_validator_test.go): auth token "12345", this
// URL and these parameters.
const (
	twilioExampleToken = "12345"
	twilioExampleURL   = "https://mycompany.com/myapp.php?foo=1&bar=2"
	twilioExampleBody  = `{"property": "value", "boolean": true}`
	twilioExampleHash  = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
)

func twilioExampleParams() url.Values {
	return url.Values{
		"Digits":  {"1234"},
		"CallSid": {"CA1234567890ABCDE"},
		"To":      {"+18005551212"},
		"Caller":  {"+14158675309"},
		"From":    {"+14158675309"},
	}
}

func TestTwilio_PublishedVectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, url, signature string
		json                 bool
	}{
		{name: "form POST", url: twilioExampleURL, signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8="},
		{name: "signed with the default port, received without", url: twilioExampleURL, signature: "kvajT1Ptam85bY51eRf/AJRuM3w="},
		{name: "signed without the port, received with one", url: strings.Replace(twilioExampleURL, ".com", ".com:1234", 1), signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8="},
		{name: "http without port", url: strings.Replace(twilioExampleURL, "https", "http", 1), signature: "0ZXoZLH/DfblKGATFgpif+LLRf4="},
		{name: "http with port", url: strings.Replace(strings.Replace(twilioExampleURL, ".com", ".com:1234", 1), "https", "http", 1), signature: "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="},
		{name: "JSON body", url: twilioExampleURL + "&bodySHA256=" + twilioExampleHash, signature: "a9nBmqA0ju/hNViExpshrM61xv4=", json: true},
		{name: "JSON body, no other parameter", url: "https://mycompany.com/myapp.php?bodySHA256=" + twilioExampleHash, signature: "y77kIzt2vzLz71DgmJGsen2scGs=", json: true},
	}
	v := mustNew(t, verify.Config{Scheme: verify.SchemeTwilio, Secrets: []string{twilioTokens[2], twilioExampleToken}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{"X-Twilio-Signature": {tt.signature}}
			body := []byte(twilioExampleParams().Encode())
			h.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.json {
				body = []byte(twilioExampleBody)
				h.Set("Content-Type", "application/json")
			}
			res, err := v.Verify(newRequest(http.MethodPost, tt.url, h, body))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if res.SecretIndex != 1 {
				t.Errorf("SecretIndex = %d, want 1", res.SecretIndex)
			}
		})
	}
}

// TestTwilio_PublicURL models Herald behind a proxy: Twilio calls the public
// URL, Herald sees an internal one with the same query string.
func TestTwilio_PublicURL(t *testing.T) {
	t.Parallel()
	params := twilioExampleParams()
	h := http.Header{"X-Twilio-Signature": {"RSOYDt4T1cUTdK1PDd93/VVr8B8="}, "Content-Type": {"application/x-www-form-urlencoded"}}
	req := newRequest(http.MethodPost, "http://herald.internal:8080/in/src_tok3n?foo=1&bar=2", h, []byte(params.Encode()))

	without := mustNew(t, verify.Config{Scheme: verify.SchemeTwilio, Secrets: []string{twilioExampleToken}})
	_, err := without.Verify(req)
	wantReason(t, err, verify.ReasonBadSignature)

	with := mustNew(t, verify.Config{Scheme: verify.SchemeTwilio, Secrets: []string{twilioExampleToken}, PublicURL: "https://mycompany.com/myapp.php"})
	if _, err := with.Verify(req); err != nil {
		t.Fatalf("Verify with public_url: %v", err)
	}
}

func TestTwilio_Requests(t *testing.T) {
	t.Parallel()
	v := mustNew(t, verify.Config{Scheme: verify.SchemeTwilio, Secrets: []string{twilioExampleToken}})
	params := twilioExampleParams()
	sum := sha256.Sum256([]byte(twilioExampleBody))
	tests := []struct {
		name   string
		method string
		url    string
		header http.Header
		body   string
		form   url.Values
		want   verify.Reason
	}{
		{name: "form given by the caller", method: http.MethodPost, url: twilioExampleURL,
			header: http.Header{"X-Twilio-Signature": {"RSOYDt4T1cUTdK1PDd93/VVr8B8="}}, form: params},
		{name: "GET signs the URL only", method: http.MethodGet, url: twilioExampleURL + "&CallSid=CA1",
			header: http.Header{"X-Twilio-Signature": {twilioSignature(twilioExampleToken, twilioExampleURL+"&CallSid=CA1", nil)}}},
		{name: "changed query string", method: http.MethodGet, url: twilioExampleURL + "&CallSid=CA2",
			header: http.Header{"X-Twilio-Signature": {twilioSignature(twilioExampleToken, twilioExampleURL+"&CallSid=CA1", nil)}},
			want:   verify.ReasonBadSignature},
		{name: "added form parameter", method: http.MethodPost, url: twilioExampleURL,
			header: http.Header{"X-Twilio-Signature": {"RSOYDt4T1cUTdK1PDd93/VVr8B8="}, "Content-Type": {"application/x-www-form-urlencoded"}},
			body:   params.Encode() + "&Extra=1", want: verify.ReasonBadSignature},
		{name: "unsigned JSON body", method: http.MethodPost, url: twilioExampleURL,
			header: http.Header{"X-Twilio-Signature": {twilioSignature(twilioExampleToken, twilioExampleURL, nil)}, "Content-Type": {"application/json"}},
			body:   twilioExampleBody, want: verify.ReasonBadSignature},
		{name: "JSON body not matching its hash", method: http.MethodPost, url: twilioExampleURL + "&bodySHA256=" + hex.EncodeToString(sum[:]),
			header: http.Header{"X-Twilio-Signature": {"a9nBmqA0ju/hNViExpshrM61xv4="}, "Content-Type": {"application/json"}},
			body:   `{"property": "other"}`, want: verify.ReasonBadSignature},
		{name: "form that does not parse", method: http.MethodPost, url: twilioExampleURL,
			header: http.Header{"X-Twilio-Signature": {"RSOYDt4T1cUTdK1PDd93/VVr8B8="}, "Content-Type": {"application/x-www-form-urlencoded"}},
			body:   "a=%zz", want: verify.ReasonMalformedBody},
		{name: "signature not base64", method: http.MethodPost, url: twilioExampleURL,
			header: http.Header{"X-Twilio-Signature": {"not base64!"}}, want: verify.ReasonMalformedHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := newRequest(tt.method, tt.url, tt.header, []byte(tt.body))
			req.Form = tt.form
			_, err := v.Verify(req)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantReason(t, err, tt.want)
		})
	}
}

// TestTwilio_RepeatedAndPrefixParameters pins the order of the signed
// parameters where sorting whole "name+value" strings (what twilio-go does)
// and sorting by name (what Twilio documents, and its Python, Node and Java
// libraries do) differ: "To" before "ToCity" whatever the values.
func TestTwilio_RepeatedAndPrefixParameters(t *testing.T) {
	t.Parallel()
	params := url.Values{"To": {"whatsapp:+1555"}, "ToCity": {"Berlin"}, "MediaUrl": {"b", "a"}}
	want := "https://example.com/in" + "MediaUrla" + "MediaUrlb" + "Towhatsapp:+1555" + "ToCityBerlin"
	sig := base64.StdEncoding.EncodeToString(macOf(sha1.New, []byte(twilioExampleToken), want))
	h := http.Header{"X-Twilio-Signature": {sig}, "Content-Type": {"application/x-www-form-urlencoded"}}
	req := newRequest(http.MethodPost, "https://example.com/in", h, []byte(params.Encode()))
	if _, err := mustNew(t, verify.Config{Scheme: verify.SchemeTwilio, Secrets: []string{twilioExampleToken}}).Verify(req); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

// --- generic HMAC ---

func TestHMAC_Variants(t *testing.T) {
	t.Parallel()
	body := []byte(testBody)
	ts := strconv.FormatInt(testNow.Unix(), 10)
	tests := []struct {
		name   string
		cfg    verify.Config
		header http.Header
		want   verify.Reason
	}{
		{
			name:   "defaults: sha256, hex, body",
			cfg:    verify.Config{Header: "X-Sig"},
			header: http.Header{"X-Sig": {hex.EncodeToString(macOf(sha256.New, []byte(plainSecrets[0]), testBody))}},
		},
		{
			name:   "GitHub-like prefix",
			cfg:    verify.Config{Header: "X-Sig", Prefix: "sha256="},
			header: http.Header{"X-Sig": {"sha256=" + hex.EncodeToString(macOf(sha256.New, []byte(plainSecrets[0]), testBody))}},
		},
		{
			name:   "missing prefix",
			cfg:    verify.Config{Header: "X-Sig", Prefix: "sha256="},
			header: http.Header{"X-Sig": {hex.EncodeToString(macOf(sha256.New, []byte(plainSecrets[0]), testBody))}},
			want:   verify.ReasonMalformedHeader,
		},
		{
			name: "Slack-like template",
			cfg:  verify.Config{Header: "X-Sig", Prefix: "v0=", Template: "v0:{timestamp}:{body}", TimestampHeader: "X-Ts"},
			header: http.Header{"X-Ts": {ts},
				"X-Sig": {"v0=" + hex.EncodeToString(macOf(sha256.New, []byte(plainSecrets[0]), "v0:"+ts+":"+testBody))}},
		},
		{
			name:   "missing timestamp header",
			cfg:    verify.Config{Header: "X-Sig", Template: "{timestamp}.{body}", TimestampHeader: "X-Ts"},
			header: http.Header{"X-Sig": {hex.EncodeToString(macOf(sha256.New, []byte(plainSecrets[0]), ts+"."+testBody))}},
			want:   verify.ReasonMissingHeader,
		},
		{
			name:   "missing id header",
			cfg:    verify.Config{Header: "X-Sig", Template: "{id}.{body}", IDHeader: "X-Id"},
			header: http.Header{"X-Sig": {hex.EncodeToString(macOf(sha256.New, []byte(plainSecrets[0]), "1."+testBody))}},
			want:   verify.ReasonMissingHeader,
		},
		{
			name:   "hex secret",
			cfg:    verify.Config{Header: "X-Sig", SecretEncoding: verify.EncodingHex, Secrets: []string{hex.EncodeToString([]byte("k"))}},
			header: http.Header{"X-Sig": {hex.EncodeToString(macOf(sha256.New, []byte("k"), testBody))}},
		},
		{
			name:   "wrong algorithm",
			cfg:    verify.Config{Header: "X-Sig", Algorithm: verify.AlgorithmSHA512},
			header: http.Header{"X-Sig": {hex.EncodeToString(macOf(sha256.New, []byte(plainSecrets[0]), testBody))}},
			want:   verify.ReasonMalformedHeader,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			cfg.Scheme = verify.SchemeHMAC
			if cfg.Secrets == nil {
				cfg.Secrets = []string{plainSecrets[0]}
			}
			_, err := mustNew(t, cfg, verify.WithClock(fixedClock)).Verify(newRequest(http.MethodPost, sourceURL, tt.header, body))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantReason(t, err, tt.want)
		})
	}
}

// --- basic and bearer ---

func TestCredentials_Malformed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		scheme verify.Scheme
		secret string
		value  string
		want   verify.Reason
	}{
		{verify.SchemeBasic, basicCreds[0], "Bearer abc", verify.ReasonMalformedHeader},
		{verify.SchemeBasic, basicCreds[0], "Basic !!!", verify.ReasonMalformedHeader},
		{verify.SchemeBasic, basicCreds[0], "Basic " + base64.StdEncoding.EncodeToString([]byte("nocolon")), verify.ReasonMalformedHeader},
		{verify.SchemeBasic, basicCreds[0], "basic " + base64.StdEncoding.EncodeToString([]byte(basicCreds[0])), ""},
		{verify.SchemeBasic, basicCreds[0], "Basic " + base64.StdEncoding.EncodeToString([]byte("herald:correct horse ")), verify.ReasonBadSignature},
		{verify.SchemeBearer, plainSecrets[0], "Basic abc", verify.ReasonMalformedHeader},
		{verify.SchemeBearer, plainSecrets[0], "bearer " + plainSecrets[0], ""},
		{verify.SchemeBearer, plainSecrets[0], "Bearer " + plainSecrets[0] + "x", verify.ReasonBadSignature},
		{verify.SchemeBearer, plainSecrets[0], "Bearer " + plainSecrets[0][:5], verify.ReasonBadSignature},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.scheme, i), func(t *testing.T) {
			t.Parallel()
			v := mustNew(t, verify.Config{Scheme: tt.scheme, Secrets: []string{tt.secret}})
			_, err := v.Verify(newRequest(http.MethodPost, sourceURL, http.Header{"Authorization": {tt.value}}, nil))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantReason(t, err, tt.want)
		})
	}
}

func TestReasonOf(t *testing.T) {
	t.Parallel()
	if got := verify.ReasonOf(nil); got != "" {
		t.Errorf("ReasonOf(nil) = %q", got)
	}
	if got := verify.ReasonOf(errors.New("other")); got != "" {
		t.Errorf("ReasonOf(other) = %q", got)
	}
	wrapped := fmt.Errorf("inbound: %w", &verify.Error{Reason: verify.ReasonBadSignature})
	if got := verify.ReasonOf(wrapped); got != verify.ReasonBadSignature {
		t.Errorf("ReasonOf(wrapped) = %q", got)
	}
}
