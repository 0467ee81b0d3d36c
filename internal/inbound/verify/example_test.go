package verify_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/heraldhq/herald/internal/inbound/verify"
)

// A source receiving GitHub webhooks: verify the request, then read the event
// type and delivery id for routing and deduplication.
func ExampleVerifier_Verify() {
	v, err := verify.New(verify.Config{
		Scheme:  verify.SchemeGitHub,
		Secrets: []string{"old-secret", "new-secret"}, // rotating
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	// What GitHub sends, simulated in process.
	body := []byte(`{"action":"opened","number":7}`)
	mac := hmac.New(sha256.New, []byte("new-secret"))
	mac.Write(body)
	r := httptest.NewRequest(http.MethodPost, "https://hooks.example.com/in/src_abc", bytes.NewReader(body))
	r.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	r.Header.Set("X-GitHub-Event", "pull_request")
	r.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")

	req := verify.FromHTTP(r, body)
	res, err := v.Verify(req)
	if err != nil {
		fmt.Println("rejected:", verify.ReasonOf(err))
		return
	}
	ev := v.Event(req)
	fmt.Println("verified with secret", res.SecretIndex)
	fmt.Println("type:", ev.Type)
	fmt.Println("id:", ev.ID)

	req.Body = []byte(`{"action":"closed","number":7}`)
	_, err = v.Verify(req)
	fmt.Println("tampered:", verify.ReasonOf(err))
	fmt.Println(err)

	// Output:
	// verified with secret 1
	// type: pull_request.opened
	// id: 72d3162e-cc78-11e3-81ab-4c9367dc0958
	// tampered: bad_signature
	// verify github: bad_signature: X-Hub-Signature-256: signature matches no secret
}

// Validate names every invalid field, for a 422 problem.
func ExampleConfig_Validate() {
	cfg := verify.Config{Scheme: verify.SchemeHMAC, Secrets: []string{"s"}, Algorithm: "md5", Template: "{timestamp}.{body}"}
	if errs, ok := cfg.Validate().(verify.ValidationErrors); ok {
		for _, e := range errs {
			fmt.Println(e.Field, "→", e.Message)
		}
	}
	// Output:
	// verification.header → required for generic HMAC
	// verification.algorithm → want sha1, sha256 or sha512
	// verification.timestamp_header → required: the template uses {timestamp}
}
