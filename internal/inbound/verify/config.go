package verify

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/heraldhq/herald/webhook"
)

// Scheme names a way of verifying incoming webhooks. The values are what the
// API stores and accepts.
type Scheme string

// The schemes Herald verifies.
const (
	SchemeStandardWebhooks Scheme = "standard_webhooks"
	SchemeStripe           Scheme = "stripe"
	SchemeGitHub           Scheme = "github"
	SchemeShopify          Scheme = "shopify"
	SchemeSlack            Scheme = "slack"
	SchemeTwilio           Scheme = "twilio"
	SchemeHMAC             Scheme = "hmac"
	SchemeBasic            Scheme = "basic"
	SchemeBearer           Scheme = "bearer"
	SchemeNone             Scheme = "none"
)

// SchemeStandardWebhooksDash is another spelling of SchemeStandardWebhooks, accepted because an
// endpoint's signature_format spells the same standard "standard-webhooks": the two names are
// easily swapped, and each field takes both (Validate stores the underscore).
const SchemeStandardWebhooksDash Scheme = "standard-webhooks"

// Schemes returns every scheme, in the order documentation lists them.
func Schemes() []Scheme {
	return []Scheme{SchemeStandardWebhooks, SchemeStripe, SchemeGitHub, SchemeShopify, SchemeSlack,
		SchemeTwilio, SchemeHMAC, SchemeBasic, SchemeBearer, SchemeNone}
}

// hasTimestamp reports whether the scheme signs a timestamp, and so whether a
// tolerance means anything for it.
func (s Scheme) hasTimestamp(c *Config) bool {
	switch s {
	case SchemeStandardWebhooks, SchemeStripe, SchemeSlack:
		return true
	case SchemeHMAC:
		return c.TimestampHeader != ""
	}
	return false
}

// SignsBodyOnly reports whether the scheme signs the body with the source's
// secret but no timestamp (github, shopify, twilio, hmac without
// timestamp_header): a captured request verifies again, unchanged, whenever it
// is sent, and its delivery id, when it has one, is an unsigned header that a
// replay can change. basic, bearer and none sign nothing: whoever captured
// their request can send any body.
func (c *Config) SignsBodyOnly() bool {
	switch c.Scheme {
	case SchemeBasic, SchemeBearer, SchemeNone:
		return false
	}
	return !c.Scheme.hasTimestamp(c)
}

// SecretHeaders names the headers whose values the scheme reads a credential
// (basic, bearer) or a signature made with the source's secret from. A stored
// request keeps none of them: a credential would let its reader send requests
// of its own, and a signature stored beside its body is a request that
// verifies again (for ever where no timestamp is signed).
func (c *Config) SecretHeaders() []string {
	switch c.Scheme {
	case SchemeStandardWebhooks:
		return []string{webhook.HeaderSignature, svixSignatureHeader}
	case SchemeStripe:
		return []string{stripeSignatureHeader}
	case SchemeGitHub:
		return []string{githubSignatureHeader, githubLegacyHeader}
	case SchemeShopify:
		return []string{shopifySignatureHeader}
	case SchemeSlack:
		return []string{slackSignatureHeader}
	case SchemeTwilio:
		return []string{twilioSignatureHeader}
	case SchemeHMAC:
		return []string{c.Header}
	case SchemeBasic:
		return []string{authorizationHeader}
	case SchemeBearer:
		if c.Header != "" {
			return []string{c.Header}
		}
		return []string{authorizationHeader}
	}
	return nil
}

// Algorithms and encodings of the generic HMAC scheme.
const (
	AlgorithmSHA1   = "sha1"
	AlgorithmSHA256 = "sha256"
	AlgorithmSHA512 = "sha512"

	EncodingHex    = "hex"
	EncodingBase64 = "base64"

	// SecretEncodingRaw, the default, uses the secret's UTF-8 bytes as the key.
	SecretEncodingRaw = "raw"
)

// Placeholders of the generic HMAC scheme's signed-content template.
const (
	PlaceholderBody      = "{body}"
	PlaceholderTimestamp = "{timestamp}"
	PlaceholderID        = "{id}"
)

// Defaults and bounds.
const (
	// DefaultTolerance is how far a signed timestamp may be from the clock
	// when the Config does not say: five minutes, what Standard Webhooks,
	// Stripe (300 s) and Slack all use.
	DefaultTolerance = 5 * time.Minute
	// MaxTolerance bounds ToleranceSeconds: beyond a day a timestamp no longer
	// limits replays in any useful way.
	MaxTolerance = 24 * time.Hour
	// MaxSecrets bounds how many secrets a source holds. Rotation needs two;
	// every extra secret is one more MAC computed for every forged request.
	MaxSecrets = 5
	// maxSecretLen bounds a secret's length, so a configuration cannot make
	// every verification hash megabytes of key.
	maxSecretLen = 1024
	// maxPathLen bounds JSON paths and header names in a Config.
	maxPathLen = 256
)

// Config is a source's verification settings, as the API stores them. Only
// the fields of the chosen Scheme may be set; Validate reports the others.
//
// Config holds secrets: its String method redacts them, and it must never be
// logged field by field.
type Config struct {
	Scheme Scheme `json:"scheme"`
	// Preset names a provider whose webhooks a generic scheme verifies (gitlab, linear,
	// intercom, square: presets.go); it fills in the scheme and the fields the provider fixes.
	Preset string `json:"preset,omitempty"`

	// Secrets are the keys requests may be signed with; any of them is
	// accepted, so a sender's secret can be rotated by adding the new one,
	// waiting for the sender to switch, and removing the old one. Their form
	// depends on the scheme: whsec_… or whpk_… (standard_webhooks), whsec_…
	// (stripe), the webhook secret (github), the app's client secret
	// (shopify), the signing secret (slack), the auth token (twilio), the
	// shared secret in SecretEncoding (hmac), "user:password" (basic), the
	// token (bearer). none takes no secret.
	Secrets []string `json:"secrets,omitempty"`

	// ToleranceSeconds is how far a signed timestamp may be from the clock,
	// either way. Zero means DefaultTolerance. Only for schemes that sign a
	// timestamp.
	ToleranceSeconds int `json:"tolerance_seconds,omitempty"`

	// PublicURL (twilio) is the URL exactly as configured at Twilio, without
	// query string, when it differs from the one Herald sees (a proxy or load
	// balancer in front). The query string of the request is appended to it.
	PublicURL string `json:"public_url,omitempty"`

	// Header names the header carrying the signature (hmac, required) or the
	// token (bearer, optional: the default is "Authorization: Bearer …";
	// with Header set, the whole value of that header is the token, as in
	// GitLab's X-Gitlab-Token).
	Header string `json:"header,omitempty"`
	// Algorithm (hmac) is sha1, sha256 (the default) or sha512.
	Algorithm string `json:"algorithm,omitempty"`
	// Encoding (hmac) is how the MAC is written in the header: hex (the
	// default, either case) or base64 (standard alphabet, padded).
	Encoding string `json:"encoding,omitempty"`
	// Prefix (hmac) precedes the encoded MAC in the header, as "sha256=" does
	// for GitHub-like senders; when set it must be present.
	Prefix string `json:"prefix,omitempty"`
	// Template (hmac) is the signed content. {body} is the raw body,
	// {timestamp} the value of TimestampHeader and {id} the value of IDHeader,
	// verbatim; every other byte is literal. The default is "{body}".
	Template string `json:"template,omitempty"`
	// TimestampHeader (hmac) carries a Unix timestamp in seconds. Setting it
	// turns on the tolerance check, and the template must then contain
	// {timestamp}: an unsigned timestamp proves nothing.
	TimestampHeader string `json:"timestamp_header,omitempty"`
	// IDHeader (hmac) carries the value of {id}.
	IDHeader string `json:"id_header,omitempty"`
	// SecretEncoding (hmac) is how each secret becomes the key: raw (the
	// default: its bytes as typed), base64 or hex.
	SecretEncoding string `json:"secret_encoding,omitempty"`

	// EventTypeHeader, EventTypePath, EventIDHeader and EventIDPath say where
	// Event finds the event type and delivery id: a header, or a dotted path
	// into the JSON payload ("data.object.id", numbers index arrays). They
	// are how the generic schemes (hmac, basic, bearer, none) learn them, and
	// override the built-in rules of the provider schemes. The header wins
	// when both are set.
	EventTypeHeader string `json:"event_type_header,omitempty"`
	EventTypePath   string `json:"event_type_path,omitempty"`
	EventIDHeader   string `json:"event_id_header,omitempty"`
	EventIDPath     string `json:"event_id_path,omitempty"`
}

// String describes c without its secrets, so that a Config printed by mistake
// (%v, %+v, %s) leaks nothing.
func (c Config) String() string {
	return fmt.Sprintf("verify.Config{Scheme: %q, Secrets: %d redacted}", c.Scheme, len(c.Secrets))
}

// GoString is String for %#v.
func (c Config) GoString() string { return c.String() }

// Tolerance returns the effective timestamp tolerance.
func (c *Config) Tolerance() time.Duration {
	if c.ToleranceSeconds == 0 {
		return DefaultTolerance
	}
	return time.Duration(c.ToleranceSeconds) * time.Second
}

// FieldError is one invalid field of a Config. Field is the JSON path of the
// field under the source's "verification" object, such as
// "verification.secrets[1]"; Message says what is wrong and never repeats a
// secret.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// ValidationErrors is every problem Validate found, in the order found.
type ValidationErrors []*FieldError

func (es ValidationErrors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return "invalid verification config: " + strings.Join(msgs, "; ")
}

// fieldPrefix is the JSON object the API nests a Config under.
const fieldPrefix = "verification."

// validator collects field errors.
type validator struct{ errs ValidationErrors }

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Field: fieldPrefix + field, Message: fmt.Sprintf(format, args...)})
}

// Validate checks c and returns nil or a ValidationErrors naming every
// invalid field, so the API can report them all at once.
func (c *Config) Validate() error {
	var v validator
	if c.Scheme == SchemeStandardWebhooksDash {
		c.Scheme = SchemeStandardWebhooks
	}
	if c.Preset != "" {
		if c.applyPreset(&v); v.errs != nil {
			return v.errs
		}
	}
	name := c.Scheme.displayName()
	if name == "" {
		if c.Scheme == "" {
			v.add("scheme", "required")
		} else {
			v.add("scheme", "unknown scheme %q; want one of %s", c.Scheme, schemeList())
		}
		return v.errs
	}

	c.validateSecrets(&v, name)
	c.validateTolerance(&v, name)

	// Fields that belong to one scheme only: reporting them elsewhere catches
	// a config written for another scheme.
	only := func(field, value string, schemes ...Scheme) {
		if value != "" && !slices.Contains(schemes, c.Scheme) {
			v.add(field, "not used by %s", name)
		}
	}
	only("public_url", c.PublicURL, SchemeTwilio)
	only("header", c.Header, SchemeHMAC, SchemeBearer)
	only("algorithm", c.Algorithm, SchemeHMAC)
	only("encoding", c.Encoding, SchemeHMAC)
	only("prefix", c.Prefix, SchemeHMAC)
	only("template", c.Template, SchemeHMAC)
	only("timestamp_header", c.TimestampHeader, SchemeHMAC)
	only("id_header", c.IDHeader, SchemeHMAC)
	only("secret_encoding", c.SecretEncoding, SchemeHMAC)

	switch c.Scheme {
	case SchemeTwilio:
		if c.PublicURL != "" {
			validatePublicURL(&v, c.PublicURL)
		}
	case SchemeHMAC:
		c.validateHMAC(&v)
	case SchemeBearer:
		if c.Header != "" {
			validateHeaderName(&v, "header", c.Header)
		}
	}

	for _, f := range []struct{ field, value string }{
		{"event_type_header", c.EventTypeHeader}, {"event_id_header", c.EventIDHeader},
	} {
		if f.value == "" {
			continue
		}
		validateHeaderName(&v, f.field, f.value)
		// The event's type and id are stored and forwarded in clear.
		if slices.ContainsFunc(c.SecretHeaders(), func(h string) bool { return strings.EqualFold(h, f.value) }) {
			v.add(f.field, "%s carries the %s credential or signature, which is never stored or forwarded", f.value, name)
		}
	}
	for _, f := range []struct{ field, value string }{
		{"event_type_path", c.EventTypePath}, {"event_id_path", c.EventIDPath},
	} {
		if f.value != "" {
			validatePath(&v, f.field, f.value)
		}
	}
	if v.errs == nil {
		return nil
	}
	return v.errs
}

func (c *Config) validateSecrets(v *validator, name string) {
	if c.Scheme == SchemeNone {
		if len(c.Secrets) > 0 {
			v.add("secrets", "must be empty for none")
		}
		return
	}
	switch {
	case len(c.Secrets) == 0:
		v.add("secrets", "at least one secret is required for %s", name)
		return
	case len(c.Secrets) > MaxSecrets:
		v.add("secrets", "at most %d secrets, got %d", MaxSecrets, len(c.Secrets))
		return
	}
	for i, s := range c.Secrets {
		field := fmt.Sprintf("secrets[%d]", i)
		switch {
		case s == "":
			v.add(field, "must not be empty")
			continue
		case len(s) > maxSecretLen:
			v.add(field, "longer than %d bytes", maxSecretLen)
			continue
		case strings.TrimSpace(s) != s:
			// Almost always a copy-paste accident, and one that makes every
			// signature fail in a way that is hard to see.
			v.add(field, "has leading or trailing white space")
			continue
		}
		if msg := c.secretProblem(s); msg != "" {
			v.add(field, "%s", msg)
		}
	}
}

// secretProblem checks one secret's form for the scheme. Messages never
// include the secret.
func (c *Config) secretProblem(s string) string {
	switch c.Scheme {
	case SchemeStandardWebhooks:
		if _, err := webhook.NewVerifier(s); err != nil {
			// webhook's errors never contain key material.
			msg := strings.TrimPrefix(err.Error(), "webhook: new verifier: key 0: ")
			return strings.TrimPrefix(msg, webhook.ErrInvalidKey.Error()+": ")
		}
	case SchemeStripe:
		if !strings.HasPrefix(s, "whsec_") {
			// A Stripe API key (sk_…, rk_…) pasted here is a common mistake,
			// and a leak of a far more powerful secret than a signing secret.
			return `Stripe signing secrets start with "whsec_" (Dashboard → Developers → Webhooks → Signing secret)`
		}
	case SchemeHMAC:
		switch c.SecretEncoding {
		case "", SecretEncodingRaw, EncodingBase64, EncodingHex:
		default:
			return "" // reported once, at secret_encoding
		}
		if _, err := decodeSecret(s, c.SecretEncoding); err != nil {
			return err.Error()
		}
	case SchemeBasic:
		user, _, ok := strings.Cut(s, ":")
		if !ok {
			return `must be "user:password"`
		}
		if user == "" {
			return "user name must not be empty"
		}
	case SchemeBearer:
		if strings.ContainsFunc(s, isSpaceOrControl) {
			return "token must not contain white space or control characters"
		}
	}
	return ""
}

func (c *Config) validateTolerance(v *validator, name string) {
	switch {
	case c.ToleranceSeconds == 0:
	case !c.Scheme.hasTimestamp(c):
		if c.Scheme == SchemeHMAC {
			v.add("tolerance_seconds", "needs timestamp_header")
		} else {
			v.add("tolerance_seconds", "%s signs no timestamp", name)
		}
	case c.ToleranceSeconds < 0:
		v.add("tolerance_seconds", "must not be negative")
	case time.Duration(c.ToleranceSeconds)*time.Second > MaxTolerance:
		v.add("tolerance_seconds", "at most %d (%s)", int(MaxTolerance/time.Second), MaxTolerance)
	}
}

func (c *Config) validateHMAC(v *validator) {
	if c.Header == "" {
		v.add("header", "required for generic HMAC")
	} else {
		validateHeaderName(v, "header", c.Header)
	}
	switch c.Algorithm {
	case "", AlgorithmSHA1, AlgorithmSHA256, AlgorithmSHA512:
	default:
		v.add("algorithm", "want %s, %s or %s", AlgorithmSHA1, AlgorithmSHA256, AlgorithmSHA512)
	}
	switch c.Encoding {
	case "", EncodingHex, EncodingBase64:
	default:
		v.add("encoding", "want %s or %s", EncodingHex, EncodingBase64)
	}
	switch c.SecretEncoding {
	case "", SecretEncodingRaw, EncodingBase64, EncodingHex:
	default:
		v.add("secret_encoding", "want %s, %s or %s", SecretEncodingRaw, EncodingBase64, EncodingHex)
	}
	if len(c.Prefix) > maxPathLen {
		v.add("prefix", "longer than %d bytes", maxPathLen)
	}
	tmpl, err := parseTemplate(c.templateText())
	if err != nil {
		v.add("template", "%s", err)
		return
	}
	if tmpl.uses(partTimestamp) && c.TimestampHeader == "" {
		v.add("timestamp_header", "required: the template uses %s", PlaceholderTimestamp)
	}
	if c.TimestampHeader != "" {
		validateHeaderName(v, "timestamp_header", c.TimestampHeader)
		if !tmpl.uses(partTimestamp) {
			v.add("template", "must contain %s when timestamp_header is set, or the timestamp is not signed", PlaceholderTimestamp)
		}
	}
	if tmpl.uses(partID) && c.IDHeader == "" {
		v.add("id_header", "required: the template uses %s", PlaceholderID)
	}
	if c.IDHeader != "" {
		validateHeaderName(v, "id_header", c.IDHeader)
		if !tmpl.uses(partID) {
			v.add("template", "must contain %s when id_header is set", PlaceholderID)
		}
	}
}

func (c *Config) templateText() string {
	if c.Template == "" {
		return PlaceholderBody
	}
	return c.Template
}

func validatePublicURL(v *validator, s string) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		v.add("public_url", "not a URL")
	case u.Scheme != "https" && u.Scheme != "http":
		v.add("public_url", "must be an http or https URL")
	case u.Host == "":
		v.add("public_url", "must include the host")
	case u.User != nil:
		v.add("public_url", "must not contain credentials")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(s, "?#"):
		v.add("public_url", "must not contain a query or fragment: the request's query string is appended")
	}
}

// validateHeaderName accepts an RFC 9110 token, the characters a header name
// may have.
func validateHeaderName(v *validator, field, name string) {
	if len(name) > maxPathLen {
		v.add(field, "longer than %d bytes", maxPathLen)
		return
	}
	for i := range len(name) {
		if !isTokenChar(name[i]) {
			v.add(field, "not a valid header name")
			return
		}
	}
}

func validatePath(v *validator, field, path string) {
	if len(path) > maxPathLen {
		v.add(field, "longer than %d bytes", maxPathLen)
		return
	}
	for seg := range strings.SplitSeq(path, ".") {
		if seg == "" {
			v.add(field, `empty segment in %q; want a dotted path such as "data.object.id"`, path)
			return
		}
	}
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// displayName is the name errors use for a scheme, or "" for an unknown one.
func (s Scheme) displayName() string {
	switch s {
	case SchemeStandardWebhooks:
		return "Standard Webhooks"
	case SchemeStripe:
		return "Stripe"
	case SchemeGitHub:
		return "GitHub"
	case SchemeShopify:
		return "Shopify"
	case SchemeSlack:
		return "Slack"
	case SchemeTwilio:
		return "Twilio"
	case SchemeHMAC:
		return "generic HMAC"
	case SchemeBasic:
		return "HTTP Basic"
	case SchemeBearer:
		return "bearer token"
	case SchemeNone:
		return "none"
	}
	return ""
}

func schemeList() string {
	var names []string
	for _, s := range Schemes() {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}
