package webhook_test

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/heraldhq/herald/webhook"
)

// A receiver verifies each delivery before acting on it, using the secret it
// was given when it subscribed.
func ExampleNewVerifier() {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

	verifier, err := webhook.NewVerifier(secret)
	if err != nil {
		log.Fatal(err)
	}

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Verify the raw bytes: decoding and re-encoding JSON would change
		// them and break the signature.
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		if err := verifier.Verify(body, r.Header); err != nil {
			http.Error(w, "invalid webhook", http.StatusUnauthorized)
			return
		}
		fmt.Printf("accepted %s: %s\n", r.Header.Get(webhook.HeaderID), body)
		w.WriteHeader(http.StatusNoContent)
	})

	// What Herald does when delivering, simulated in process.
	signer, err := webhook.NewSigner(secret)
	if err != nil {
		log.Fatal(err)
	}
	deliver := func(body, sent []byte) int {
		req := httptest.NewRequest(http.MethodPost, "/webhooks", bytes.NewReader(sent))
		signer.SetHeaders(req.Header, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", time.Now(), body)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		return rec.Code
	}

	body := []byte(`{"type":"invoice.paid"}`)
	fmt.Println("genuine:", deliver(body, body))
	fmt.Println("tampered:", deliver(body, []byte(`{"type":"invoice.void"}`)))

	// Output:
	// accepted msg_2KWPBgLlAfxdpx2AI54pPJ85f4W: {"type":"invoice.paid"}
	// genuine: 204
	// tampered: 401
}
