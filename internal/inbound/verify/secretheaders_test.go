package verify_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/inbound/verify"
)

// TestSchemes_SecretHeaders checks, for every scheme, that SecretHeaders names each header a
// genuine request carries a credential or a signature in: once they are removed (as a stored
// request has them), no header left holds what was removed, and the request no longer verifies.
func TestSchemes_SecretHeaders(t *testing.T) {
	t.Parallel()
	for _, f := range fixtures() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			cfg := f.config(f.secrets[0])
			secret := cfg.SecretHeaders()
			if !slices.ContainsFunc(secret, func(s string) bool { return strings.EqualFold(s, f.signatureHeader) }) {
				t.Fatalf("SecretHeaders = %q, want it to name %s", secret, f.signatureHeader)
			}
			req := f.signWith(t, f.secrets[0], testNow, []byte(testBody))
			removed := http.Header{}
			for _, name := range secret {
				for k, vs := range req.Header {
					if strings.EqualFold(k, name) {
						removed[k] = vs
						delete(req.Header, k)
					}
				}
			}
			for k, vs := range req.Header {
				for _, v := range vs {
					for _, gone := range removed {
						if v != "" && slices.Contains(gone, v) {
							t.Errorf("header %s still holds %q", k, v)
						}
					}
					if strings.Contains(v, f.secrets[0]) {
						t.Errorf("header %s still holds the secret", k)
					}
				}
			}
			_, err := mustNew(t, cfg, verify.WithClock(fixedClock)).Verify(req)
			wantReason(t, err, verify.ReasonMissingSignature)
			// What dedup defaults to depends on it: a body signed without a timestamp verifies
			// again whenever it is sent.
			if got, want := cfg.SignsBodyOnly(), f.signsBody && !f.timestamped; got != want {
				t.Errorf("SignsBodyOnly = %v, want %v", got, want)
			}
		})
	}
}

// Reveals finds a source's secret sent in clear anywhere: as configured, and for basic as the
// password alone or the base64 an Authorization header carries. Short secrets are not looked for.
func TestVerifier_Reveals(t *testing.T) {
	t.Parallel()
	basic := mustNew(t, verify.Config{Scheme: verify.SchemeBasic, Secrets: []string{"hooks:correct-horse"}})
	for s, want := range map[string]bool{
		"hooks:correct-horse":                true,
		"password correct-horse":             true,
		"Basic aG9va3M6Y29ycmVjdC1ob3JzZQ==": true,
		"hooks":                              false,
		"":                                   false,
	} {
		if got := basic.Reveals(s); got != want {
			t.Errorf("basic Reveals(%q) = %v, want %v", s, got, want)
		}
	}
	short := mustNew(t, verify.Config{Scheme: verify.SchemeBearer, Secrets: []string{"abc"}})
	if short.Reveals("abcdef") {
		t.Error("a 3-byte token is looked for in ordinary values")
	}
	if none := mustNew(t, verify.Config{Scheme: verify.SchemeNone}); none.Reveals("anything") {
		t.Error("none has no secret to reveal")
	}
}
