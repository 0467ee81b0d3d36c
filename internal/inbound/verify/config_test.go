package verify_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/inbound/verify"
)

func TestConfig_ValidateAcceptsEveryFixture(t *testing.T) {
	t.Parallel()
	for _, f := range fixtures() {
		cfg := f.config(f.secrets[0], f.secrets[1])
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: Validate: %v", f.name, err)
		}
	}
	none := verify.Config{Scheme: verify.SchemeNone}
	if err := none.Validate(); err != nil {
		t.Errorf("none: Validate: %v", err)
	}
}

// TestConfig_Validate lists, for each invalid config, every field error the
// API must report, in order.
func TestConfig_Validate(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", 1025)
	tests := []struct {
		name string
		cfg  verify.Config
		want []string // "field: message" prefixes
	}{
		{name: "no scheme", cfg: verify.Config{}, want: []string{"verification.scheme: required"}},
		{name: "unknown scheme", cfg: verify.Config{Scheme: "paypal"}, want: []string{`verification.scheme: unknown scheme "paypal"`}},
		{name: "no secret", cfg: verify.Config{Scheme: verify.SchemeGitHub},
			want: []string{"verification.secrets: at least one secret is required for GitHub"}},
		{name: "too many secrets", cfg: verify.Config{Scheme: verify.SchemeGitHub, Secrets: []string{"a", "b", "c", "d", "e", "f"}},
			want: []string{"verification.secrets: at most 5 secrets"}},
		{name: "bad secrets", cfg: verify.Config{Scheme: verify.SchemeShopify, Secrets: []string{"", " padded", long}},
			want: []string{"verification.secrets[0]: must not be empty", "verification.secrets[1]: has leading or trailing white space",
				"verification.secrets[2]: longer than 1024 bytes"}},
		{name: "secret for none", cfg: verify.Config{Scheme: verify.SchemeNone, Secrets: []string{"x"}},
			want: []string{"verification.secrets: must be empty for none"}},
		{name: "Stripe API key instead of signing secret", cfg: verify.Config{Scheme: verify.SchemeStripe, Secrets: []string{"sk_live_abc"}},
			want: []string{`verification.secrets[0]: Stripe signing secrets start with "whsec_"`}},
		{name: "Standard Webhooks signing key instead of public key",
			cfg:  verify.Config{Scheme: verify.SchemeStandardWebhooks, Secrets: []string{swSecrets[0], edKeys[0].private}},
			want: []string{"verification.secrets[1]: use the whpk_ public key, not the whsk_ signing key"}},
		{name: "Standard Webhooks secret too short", cfg: verify.Config{Scheme: verify.SchemeStandardWebhooks, Secrets: []string{"whsec_c2hvcnQ="}},
			want: []string{"verification.secrets[0]: secret is 5 bytes, want 24 to 64"}},
		{name: "basic without password separator", cfg: verify.Config{Scheme: verify.SchemeBasic, Secrets: []string{"justuser", ":pw"}},
			want: []string{`verification.secrets[0]: must be "user:password"`, "verification.secrets[1]: user name must not be empty"}},
		{name: "bearer token with a space", cfg: verify.Config{Scheme: verify.SchemeBearer, Secrets: []string{"two words"}},
			want: []string{"verification.secrets[0]: token must not contain white space"}},
		{name: "event id read from the token's header",
			cfg:  verify.Config{Scheme: verify.SchemeBearer, Secrets: []string{"glpat-token"}, Header: "X-Gitlab-Token", EventIDHeader: "x-gitlab-token"},
			want: []string{"verification.event_id_header: x-gitlab-token carries the bearer token credential or signature"}},
		{name: "event type read from the signature header",
			cfg:  verify.Config{Scheme: verify.SchemeGitHub, Secrets: []string{"s"}, EventTypeHeader: "X-Hub-Signature-256"},
			want: []string{"verification.event_type_header: X-Hub-Signature-256 carries the GitHub credential or signature"}},
		{name: "tolerance on a scheme without timestamp", cfg: verify.Config{Scheme: verify.SchemeGitHub, Secrets: []string{"s"}, ToleranceSeconds: 60},
			want: []string{"verification.tolerance_seconds: GitHub signs no timestamp"}},
		{name: "negative tolerance", cfg: verify.Config{Scheme: verify.SchemeStripe, Secrets: []string{stripeSecrets[0]}, ToleranceSeconds: -1},
			want: []string{"verification.tolerance_seconds: must not be negative"}},
		{name: "tolerance above a day", cfg: verify.Config{Scheme: verify.SchemeSlack, Secrets: []string{"s"}, ToleranceSeconds: 86401},
			want: []string{"verification.tolerance_seconds: at most 86400"}},
		{name: "fields of another scheme", cfg: verify.Config{Scheme: verify.SchemeGitHub, Secrets: []string{"s"}, Header: "X-Sig", PublicURL: "https://x"},
			want: []string{"verification.public_url: not used by GitHub", "verification.header: not used by GitHub"}},
		{name: "generic HMAC without header", cfg: verify.Config{Scheme: verify.SchemeHMAC, Secrets: []string{"s"}},
			want: []string{"verification.header: required for generic HMAC"}},
		{name: "generic HMAC with bad choices", cfg: verify.Config{Scheme: verify.SchemeHMAC, Secrets: []string{"s"}, Header: "X Sig",
			Algorithm: "md5", Encoding: "base32", SecretEncoding: "rot13"},
			want: []string{"verification.header: not a valid header name",
				"verification.algorithm: want sha1, sha256 or sha512", "verification.encoding: want hex or base64",
				"verification.secret_encoding: want raw, base64 or hex"}},
		{name: "generic HMAC secret not in its encoding", cfg: verify.Config{Scheme: verify.SchemeHMAC, Secrets: []string{"zz"}, Header: "X-Sig", SecretEncoding: "hex"},
			want: []string{"verification.secrets[0]: not valid hex"}},
		{name: "template without body", cfg: verify.Config{Scheme: verify.SchemeHMAC, Secrets: []string{"s"}, Header: "X-Sig", Template: "{timestamp}", TimestampHeader: "X-Ts"},
			want: []string{"verification.template: must contain {body}"}},
		{name: "template with unknown placeholder", cfg: verify.Config{Scheme: verify.SchemeHMAC, Secrets: []string{"s"}, Header: "X-Sig", Template: "{ts}.{body}"},
			want: []string{"verification.template: unknown placeholder"}},
		{name: "template repeating a placeholder", cfg: verify.Config{Scheme: verify.SchemeHMAC, Secrets: []string{"s"}, Header: "X-Sig", Template: "{body}{body}"},
			want: []string{"verification.template: {body} appears more than once"}},
		{name: "template uses timestamp without header", cfg: verify.Config{Scheme: verify.SchemeHMAC, Secrets: []string{"s"}, Header: "X-Sig", Template: "{timestamp}.{id}.{body}"},
			want: []string{"verification.timestamp_header: required: the template uses {timestamp}", "verification.id_header: required: the template uses {id}"}},
		{name: "timestamp header not signed", cfg: verify.Config{Scheme: verify.SchemeHMAC, Secrets: []string{"s"}, Header: "X-Sig", TimestampHeader: "X-Ts"},
			want: []string{"verification.template: must contain {timestamp} when timestamp_header is set"}},
		{name: "tolerance without timestamp header", cfg: verify.Config{Scheme: verify.SchemeHMAC, Secrets: []string{"s"}, Header: "X-Sig", ToleranceSeconds: 30},
			want: []string{"verification.tolerance_seconds: needs timestamp_header"}},
		{name: "public URL with a query", cfg: verify.Config{Scheme: verify.SchemeTwilio, Secrets: []string{"t"}, PublicURL: "https://x.example/in?a=1"},
			want: []string{"verification.public_url: must not contain a query or fragment"}},
		{name: "public URL not http", cfg: verify.Config{Scheme: verify.SchemeTwilio, Secrets: []string{"t"}, PublicURL: "ftp://x.example/in"},
			want: []string{"verification.public_url: must be an http or https URL"}},
		{name: "public URL with credentials", cfg: verify.Config{Scheme: verify.SchemeTwilio, Secrets: []string{"t"}, PublicURL: "https://u:p@x.example/in"},
			want: []string{"verification.public_url: must not contain credentials"}},
		{name: "bad event fields", cfg: verify.Config{Scheme: verify.SchemeNone, EventTypeHeader: "Bad Header", EventIDPath: "data..id"},
			want: []string{"verification.event_type_header: not a valid header name", "verification.event_id_path: empty segment"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			ve, ok := errors.AsType[verify.ValidationErrors](err)
			if !ok {
				t.Fatalf("Validate = %v, want ValidationErrors", err)
			}
			var got []string
			for _, fe := range ve {
				got = append(got, fe.Error())
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Validate reported %d errors, want %d:\n got %q\nwant %q", len(got), len(tt.want), got, tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("error %d = %q, want prefix %q", i, got[i], tt.want[i])
				}
			}
			// Messages never repeat a secret.
			for _, s := range tt.cfg.Secrets {
				if len(s) >= 4 && slices.ContainsFunc(got, func(m string) bool { return strings.Contains(m, s) }) {
					t.Errorf("an error repeats secret %q", s)
				}
			}
			if _, err := verify.New(tt.cfg); !errors.As(err, new(verify.ValidationErrors)) {
				t.Errorf("New = %v, want it to wrap the ValidationErrors", err)
			}
		})
	}
}

func TestConfig_Tolerance(t *testing.T) {
	t.Parallel()
	c := verify.Config{Scheme: verify.SchemeStripe}
	if got := c.Tolerance(); got != 5*time.Minute {
		t.Errorf("default Tolerance = %v, want 5m (Stripe's 300 s)", got)
	}
	c.ToleranceSeconds = 90
	if got := c.Tolerance(); got != 90*time.Second {
		t.Errorf("Tolerance = %v, want 90s", got)
	}
}

func TestSchemes_AllListed(t *testing.T) {
	t.Parallel()
	for _, s := range verify.Schemes() {
		cfg := verify.Config{Scheme: s}
		err := cfg.Validate()
		if err != nil && strings.Contains(err.Error(), "unknown scheme") {
			t.Errorf("Schemes lists %q, which Validate does not know", s)
		}
	}
}
