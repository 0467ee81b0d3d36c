package httpsend

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/destination"
)

// TestSend_EchoedCredentialsAreNotRecorded talks to a receiver that echoes its request headers, as
// request bins and debugging endpoints do: the recorded response keeps the echo but not the
// signatures or credential headers.
func TestSend_EchoedCredentialsAreNotRecorded(t *testing.T) {
	t.Parallel()
	srv := quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(r.Header)
	}), false)
	c := newTestClient(t, devConfig())
	hmacSig := "Kx3nAzR0n6mC3sHjLrS2wqk0X9h8e4Yp0f1u2v3w4x5="
	edSig := strings.Repeat("QUJD", 21) + "RA=="
	h := http.Header{
		"Webhook-Id":        {"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"},
		"Webhook-Signature": {"v1," + hmacSig + " v1a," + edSig},
		"Authorization":     {"Bearer receiver-token-0123456789"},
		"X-Api-Key":         {"rk_live_abcdefghijklmnop"},
		"X-Tenant":          {"acme-corporation-team"},
	}

	o := c.Send(t.Context(), Request{URL: srv.URL, Header: h, Body: []byte(`{}`), Timeout: 5 * time.Second})

	if o.Class != destination.Success {
		t.Fatalf("Send: %q %q %s", o.Class, o.ErrorKind, o.Error)
	}
	got := string(o.Response)
	for _, secret := range []string{hmacSig, edSig, "receiver-token-0123456789", "rk_live_abcdefghijklmnop"} {
		if strings.Contains(got, secret) {
			t.Errorf("recorded response contains %q: %s", secret, got)
		}
	}
	for _, kept := range []string{"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "acme-corporation-team", redactedMark} {
		if !strings.Contains(got, kept) {
			t.Errorf("recorded response lost %q: %s", kept, got)
		}
	}
}
