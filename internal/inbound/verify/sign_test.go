package verify_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/inbound/verify"
)

// TestSign_VerifiesUnderEveryScheme signs a request for every scheme (and the presets) and checks
// that the scheme's verifier, configured with the same secret, accepts it and refuses it with
// another secret: Sign is the sender's side of each scheme.
func TestSign_VerifiesUnderEveryScheme(t *testing.T) {
	t.Parallel()
	const ingest = "http://127.0.0.1:8080/in/hin_test"
	cases := []struct {
		name          string
		cfg           verify.Config
		secret, other string
		contentType   string
		body          string
	}{
		{"standard_webhooks", verify.Config{Scheme: verify.SchemeStandardWebhooks}, swSecrets[0], swSecrets[1], "application/json", testBody},
		{"standard_webhooks v1a", verify.Config{Scheme: verify.SchemeStandardWebhooks}, edKeys[0].private, edKeys[1].private, "application/json", testBody},
		{"stripe", verify.Config{Scheme: verify.SchemeStripe}, stripeSecrets[0], stripeSecrets[1], "application/json", testBody},
		{"github", verify.Config{Scheme: verify.SchemeGitHub}, plainSecrets[0], plainSecrets[1], "application/json", testBody},
		{"shopify", verify.Config{Scheme: verify.SchemeShopify}, plainSecrets[0], plainSecrets[1], "application/json", testBody},
		{"slack", verify.Config{Scheme: verify.SchemeSlack}, plainSecrets[0], plainSecrets[1], "application/json", testBody},
		{"twilio json", verify.Config{Scheme: verify.SchemeTwilio}, twilioTokens[0], twilioTokens[1], "application/json", testBody},
		{"twilio form", verify.Config{Scheme: verify.SchemeTwilio}, twilioTokens[0], twilioTokens[1], "application/x-www-form-urlencoded", "To=%2B1555&Body=hi&From=%2B1666"},
		{"twilio public url", verify.Config{Scheme: verify.SchemeTwilio, PublicURL: "https://hooks.example.com/in/hin_test"}, twilioTokens[0], twilioTokens[1], "application/x-www-form-urlencoded", "Body=hi"},
		{"hmac with timestamp and id", verify.Config{Scheme: verify.SchemeHMAC, Header: "X-Sig", Prefix: "sha512=", Algorithm: verify.AlgorithmSHA512,
			Encoding: verify.EncodingBase64, Template: "{timestamp}:{id}:{body}", TimestampHeader: "X-Ts", IDHeader: "X-Id", SecretEncoding: verify.EncodingBase64},
			b64Secrets[0], b64Secrets[1], "application/json", testBody},
		{"hmac simple", verify.Config{Scheme: verify.SchemeHMAC, Header: "X-Sig"}, plainSecrets[0], plainSecrets[1], "application/json", testBody},
		{"basic", verify.Config{Scheme: verify.SchemeBasic}, basicCreds[0], basicCreds[1], "application/json", testBody},
		{"bearer", verify.Config{Scheme: verify.SchemeBearer}, plainSecrets[0], plainSecrets[1], "application/json", testBody},
		{"gitlab preset", verify.Config{Preset: verify.PresetGitLab}, plainSecrets[0], plainSecrets[1], "application/json", testBody},
		{"intercom preset", verify.Config{Preset: verify.PresetIntercom}, plainSecrets[0], plainSecrets[1], "application/json", testBody},
		{"square preset", verify.Config{Preset: verify.PresetSquare, PublicURL: "https://hooks.example.com/square"}, plainSecrets[0], plainSecrets[1], "application/json", testBody},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sign := func(secret string) *verify.Request {
				in := &verify.SignInput{URL: ingest, Header: http.Header{"Content-Type": {c.contentType}}, Body: []byte(c.body), ID: "msg_1", At: time.Now()}
				if err := verify.Sign(c.cfg, secret, in); err != nil {
					t.Fatalf("Sign: %v", err)
				}
				return &verify.Request{Method: http.MethodPost, URL: in.URL, Header: in.Header, Body: in.Body}
			}
			cfg := c.cfg
			cfg.Secrets = []string{c.secret}
			if strings.HasPrefix(c.secret, "whsk_") {
				cfg.Secrets = []string{edKeys[0].public}
			}
			v, err := verify.New(cfg)
			if err != nil {
				t.Fatalf("verify.New: %v", err)
			}
			if _, err := v.Verify(sign(c.secret)); err != nil {
				t.Errorf("a request signed with the source's secret does not verify: %v", err)
			}
			if _, err := v.Verify(sign(c.other)); verify.ReasonOf(err) != verify.ReasonBadSignature {
				t.Errorf("a request signed with another secret: %v, want bad_signature", err)
			}
		})
	}
}

func TestSign_RefusesASecretOfTheWrongForm(t *testing.T) {
	t.Parallel()
	in := &verify.SignInput{URL: "http://127.0.0.1/in/x", Header: http.Header{}, Body: []byte("{}"), At: time.Now()}
	err := verify.Sign(verify.Config{Scheme: verify.SchemeStripe}, "sk_live_not_a_signing_secret", in)
	if err == nil || !strings.Contains(err.Error(), "whsec_") || strings.Contains(err.Error(), "sk_live") {
		t.Errorf("Sign with a Stripe API key: %v; want an error naming whsec_ and not repeating the key", err)
	}
	if len(in.Header) != 0 {
		t.Errorf("a refused Sign set headers: %v", in.Header)
	}
}
