package verify_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/heraldhq/herald/internal/inbound/verify"
)

// fuzzSignatureHeaders are the signature headers of every scheme; FuzzVerify
// fills them all with fuzzed text.
var fuzzSignatureHeaders = []string{
	"webhook-signature", "svix-signature", "Stripe-Signature", "X-Hub-Signature-256", "X-Hub-Signature",
	"X-Shopify-Hmac-Sha256", "X-Slack-Signature", "X-Twilio-Signature", "X-Acme-Signature", "X-Signature",
	"Authorization", "X-Gitlab-Token",
}

// FuzzVerify checks, for every scheme, that whatever the headers, URL and
// body, Verify and Event never panic; that every rejection is a *verify.Error
// with a reason; and that a request genuinely signed over any body verifies
// with the right secret index.
func FuzzVerify(f *testing.F) {
	f.Add(uint8(0), uint8(0), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "1700000000", "msg_1", []byte(`{"test": 2432232314}`), "https://h.example/in?x=1", "application/json")
	f.Add(uint8(2), uint8(1), "t=1700000000,v1=00,v1=,v0=zz,=,t=", "", "", []byte{}, "", "")
	f.Add(uint8(6), uint8(1), "AAAA", "-1", "", []byte("a=%zz&b"), "http://[::1]:80/in?bodySHA256=00", "application/x-www-form-urlencoded; charset=utf-8")
	f.Add(uint8(7), uint8(0), "====", "99999999999999999999", "x", []byte("\xff\x00"), "https://h.example:443?bodySHA256=zz#frag", "application/json")
	f.Add(uint8(10), uint8(1), "Basic Og==", "0", "", []byte(nil), "://", "multipart/form-data")
	f.Add(uint8(11), uint8(0), "Bearer ", "", "", []byte("{}"), "https://u:p@h/in", "text/plain")

	fxs := fixtures()
	f.Fuzz(func(t *testing.T, pick, which uint8, value, ts, id string, body []byte, target, contentType string) {
		fx := fxs[int(pick)%len(fxs)]
		v, err := verify.New(fx.config(fx.secrets[0], fx.secrets[1]), verify.WithClock(fixedClock))
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		check := func(what string, req *verify.Request) {
			res, err := v.Verify(req)
			v.Event(req)
			if err == nil {
				if res.SecretIndex < 0 || res.SecretIndex > 1 {
					t.Fatalf("%s: accepted with SecretIndex %d", what, res.SecretIndex)
				}
				return
			}
			var verr *verify.Error
			if !errors.As(err, &verr) || verr.Reason == "" {
				t.Fatalf("%s: error %v (%T) is not a *verify.Error with a reason", what, err, err)
			}
		}

		// A genuine request over any body verifies, with the secret used.
		i := int(which % 2)
		genuine := fx.signWith(t, fx.secrets[i], testNow, body)
		res, err := v.Verify(genuine)
		if err != nil {
			t.Fatalf("%s: genuine request over body %q: %v", fx.name, body, err)
		}
		if res.SecretIndex != i {
			t.Fatalf("%s: SecretIndex = %d, want %d", fx.name, res.SecretIndex, i)
		}

		// The same request with its signature replaced by arbitrary text.
		genuine.Header.Set(fx.signatureHeader, value)
		check("replaced signature", genuine)

		// An arbitrary request.
		h := http.Header{}
		for _, name := range fuzzSignatureHeaders {
			h.Set(name, value)
		}
		for _, name := range []string{"webhook-timestamp", "svix-timestamp", "X-Slack-Request-Timestamp", "X-Acme-Timestamp"} {
			h.Set(name, ts)
		}
		for _, name := range []string{"webhook-id", "svix-id", "X-Acme-Delivery", "X-GitHub-Event", "X-Shopify-Topic"} {
			h.Set(name, id)
		}
		h.Set("Content-Type", contentType)
		check("arbitrary request", &verify.Request{Method: http.MethodPost, URL: target, Header: h, Body: body})
		check("no headers", &verify.Request{URL: target, Body: body})
	})
}
