package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/inbound"
	"github.com/heraldhq/herald/internal/inbound/schema"
	"github.com/heraldhq/herald/internal/inbound/verify"
	"github.com/heraldhq/herald/internal/redact"
	"github.com/heraldhq/herald/internal/store"
)

// A source is an inbound URL of a tenant (see internal/inbound). Its token and the sender's
// secrets are credentials: the token is shown in the ingest URL to whoever may manage the source,
// the secrets are write-only, and neither is ever written to the audit log.

// TokenPrefix starts every ingest token, so that a leaked one is recognisable.
const TokenPrefix = "hin_"

// Bounds of a source's settings.
const (
	maxAllowIPs     = 100
	maxEventTypeLen = 100
)

// Source is an inbound URL of a tenant: what it receives is verified, stored and forwarded as
// events to the tenant's endpoints.
type Source struct {
	ID                 string           `json:"id"`
	TenantID           string           `json:"tenant_id"`
	Name               string           `json:"name"`
	Description        string           `json:"description"`
	Enabled            bool             `json:"enabled" doc:"A disabled source answers 404, exactly like an unknown token."`
	IngestURL          string           `json:"ingest_url" doc:"The URL to give the sender: it carries the source's token, so treat it as a secret."`
	Verification       VerificationView `json:"verification"`
	AllowIPs           []string         `json:"allow_ips" doc:"CIDRs requests must come from; empty allows every address."`
	RateLimit          float64          `json:"rate_limit" doc:"Requests per second; 0 means no limit."`
	RateBurst          int              `json:"rate_burst" doc:"How many requests a burst may hold; 0 means the rate, rounded up."`
	MaxBodyBytes       int              `json:"max_body_bytes" doc:"Largest body accepted; 0 means the server's default."`
	Schema             json.RawMessage  `json:"schema,omitempty" doc:"JSON Schema payloads must satisfy; a payload that does not is quarantined."`
	Dedup              SourceDedup      `json:"dedup"`
	EventTypePrefix    string           `json:"event_type_prefix,omitempty" doc:"Put before the provider's event type: stripe. makes stripe.invoice.paid."`
	DefaultEventType   string           `json:"default_event_type,omitempty" doc:"The type of a request that carries none (default webhook.received)."`
	CloudEventsOrigins []string         `json:"cloudevents_origins" doc:"Origins (WebHook-Request-Origin) whose CloudEvents abuse-protection handshake the source agrees to; * for any; empty refuses every handshake."`
	ClientCert         *ClientCert      `json:"client_cert,omitempty" doc:"Set: every request must present a verified client certificate (docs/receiving.md)."`
	CreatedAt          time.Time        `json:"created_at"`
	UpdatedAt          time.Time        `json:"updated_at"`
}

// SourceDedup is a source's duplicate rule as the API shows it, with its effective values.
type SourceDedup struct {
	By            string `json:"by" enum:"provider_id,header,json_path,body_hash,none"`
	Header        string `json:"header,omitempty"`
	Path          string `json:"path,omitempty"`
	WindowSeconds int    `json:"window_seconds" doc:"How long a key stays taken after the request that carried it."`
}

// VerificationView is a source's verification settings without the secrets' values: the scheme
// and its other fields, and secrets_count.
type VerificationView map[string]any

// Schema documents the view.
func (VerificationView) Schema(huma.Registry) *huma.Schema {
	s := verificationSchema()
	delete(s.Properties, "secrets")
	s.Properties["secrets_count"] = &huma.Schema{Type: huma.TypeInteger, Description: "How many secrets the source holds. Their values are never returned."}
	s.Description = "The verification settings without the secrets' values."
	return s
}

// VerificationInput is the "verification" object of a request, kept raw: it is decoded strictly
// (unknown fields are refused) and checked by verify.Config.Validate, whose messages never repeat
// a secret.
type VerificationInput json.RawMessage

// Schema documents the object. The secrets carry no type here on purpose: a type error would
// make the validator echo the value in the problem, and Validate reports them without it.
func (VerificationInput) Schema(huma.Registry) *huma.Schema {
	return verificationSchema()
}

// UnmarshalJSON keeps a copy of the raw object.
func (v *VerificationInput) UnmarshalJSON(b []byte) error {
	*v = append((*v)[:0], b...)
	return nil
}

// verificationSchema describes verify.Config, field by field, from its JSON tags, so that a
// field added there is documented (and accepted by the validator) here.
func verificationSchema() *huma.Schema {
	props := map[string]*huma.Schema{}
	t := reflect.TypeFor[verify.Config]()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		p := &huma.Schema{}
		switch f.Type.Kind() {
		case reflect.String:
			p.Type = huma.TypeString
		case reflect.Int:
			p.Type = huma.TypeInteger
		}
		props[name] = p
	}
	schemes := []any{}
	for _, sc := range verify.Schemes() {
		schemes = append(schemes, string(sc))
	}
	schemes = append(schemes, string(verify.SchemeStandardWebhooksDash))
	props["scheme"] = &huma.Schema{Type: huma.TypeString, Enum: schemes, Description: "How requests are verified; see docs/receiving.md. standard-webhooks is another spelling of standard_webhooks (answers show standard_webhooks)."}
	presets := []any{}
	for _, p := range verify.Presets() {
		presets = append(presets, p)
	}
	props["preset"] = &huma.Schema{Type: huma.TypeString, Enum: presets, Description: "A provider whose webhooks a generic scheme verifies: fills in the scheme and the fields the provider fixes (docs/receiving.md, Presets)."}
	props["secrets"] = &huma.Schema{WriteOnly: true, Description: "Array of strings: the keys requests may be signed with (1 to 5; none for the none scheme). " +
		"Write-only: answers show secrets_count. On update, omit it to keep the stored secrets."}
	return &huma.Schema{
		Type: huma.TypeObject, Properties: props, AdditionalProperties: true,
		Description: "verify.Config: the scheme and its fields (docs/receiving.md lists them per provider). Unknown fields are refused.",
	}
}

// SourceDedupInput is a source's duplicate rule. A request whose key was seen within the window
// is acknowledged and not forwarded.
type SourceDedupInput struct {
	By            string `json:"by,omitempty" enum:"provider_id,header,json_path,body_hash,none" doc:"What identifies a delivery: the provider's delivery id (a request without one is not deduplicated), a header, a JSON path into the body, the body's SHA-256, or nothing. Default: body_hash for the schemes that sign no timestamp (github, shopify, twilio, hmac without timestamp_header), provider_id for the others."`
	Header        string `json:"header,omitempty" maxLength:"256" doc:"With by=header: the header."`
	Path          string `json:"path,omitempty" maxLength:"256" doc:"With by=json_path: a dotted path into the JSON body (data.object.id)."`
	WindowSeconds *int   `json:"window_seconds,omitempty" minimum:"0" maximum:"2592000" doc:"How long a key stays taken; default 604800 (7 days), at most 30 days. 0 means the default."`
}

// SourceFields are the settings of create and update; nil means "not given". Unknown fields are
// refused, by the handler rather than by the validator, whose answer would echo the whole body
// (and with it the secrets).
type SourceFields struct {
	_                  struct{}          `json:"-" additionalProperties:"true"`
	Name               *string           `json:"name,omitempty" maxLength:"200" doc:"Required on create." example:"stripe-live"`
	Description        *string           `json:"description,omitempty" maxLength:"2000"`
	Enabled            *bool             `json:"enabled,omitempty" doc:"Default true."`
	Verification       VerificationInput `json:"verification,omitempty" doc:"Required on create. On update it replaces the settings as a whole, except that omitted secrets keep the stored ones (unless the scheme becomes none)."`
	AllowIPs           []string          `json:"allow_ips,omitempty" maxItems:"100" doc:"CIDRs (203.0.113.0/24, 2001:db8::/32) or addresses; replaces the list, [] allows every address." example:"[\"203.0.113.0/24\"]"`
	RateLimit          *float64          `json:"rate_limit,omitempty" minimum:"0" maximum:"100000" doc:"Requests per second; 0 for none."`
	RateBurst          *int              `json:"rate_burst,omitempty" minimum:"0" maximum:"100000" doc:"How many requests a burst may hold; 0 for the rate, rounded up."`
	MaxBodyBytes       *int              `json:"max_body_bytes,omitempty" minimum:"0" maximum:"10485760" doc:"Largest body accepted, at most 10 MiB; 0 for the server's default."`
	Schema             Object            `json:"schema,omitempty" doc:"A JSON Schema (draft 4 to 2020-12, no external $ref) the payload must satisfy; {} removes it."`
	Dedup              *SourceDedupInput `json:"dedup,omitempty" doc:"Replaces the rule as a whole."`
	EventTypePrefix    *string           `json:"event_type_prefix,omitempty" maxLength:"100" doc:"Put before the provider's event type; a final dot is added if missing. \"\" removes it." example:"stripe."`
	DefaultEventType   *string           `json:"default_event_type,omitempty" maxLength:"100" doc:"The type of a request that carries none (resource.action); \"\" restores webhook.received." example:"acme.notified"`
	CloudEventsOrigins []string          `json:"cloudevents_origins,omitempty" maxItems:"20" doc:"Origins (DNS names, as senders send WebHook-Request-Origin) whose CloudEvents abuse-protection handshake the source agrees to, or [\"*\"] for any; replaces the list, [] refuses every handshake." example:"[\"eventgrid.azure.net\"]"`
	ClientCert         *ClientCertInput  `json:"client_cert,omitempty" doc:"Require a verified client certificate on every request; {\"required\": false} removes the requirement."`

	unknown []string
}

// UnmarshalJSON decodes the fields and remembers the names it does not know.
func (f *SourceFields) UnmarshalJSON(b []byte) error {
	type plain SourceFields
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		return err
	}
	*f = SourceFields(p)
	known := jsonNames(reflect.TypeFor[SourceFields]())
	for k := range keys {
		if !containsFold(known, k) {
			f.unknown = append(f.unknown, k)
		}
	}
	return nil
}

// jsonNames lists the JSON names of a struct's fields.
func jsonNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

// containsFold reports whether names holds s in any case: encoding/json (and so huma) matches
// field names that way.
func containsFold(names []string, s string) bool {
	for _, n := range names {
		if strings.EqualFold(n, s) {
			return true
		}
	}
	return false
}

// IngestOrigin remembers the scheme and host of the API request, the base of ingest URLs when
// no public URL is configured.
type IngestOrigin struct {
	base string
}

// Resolve reads the request's origin. X-Forwarded-* headers are not trusted: behind a proxy the
// operator sets the public URL.
func (o *IngestOrigin) Resolve(ctx huma.Context) []error {
	scheme := "http"
	if ctx.TLS() != nil {
		scheme = "https"
	}
	o.base = scheme + "://" + ctx.Host()
	return nil
}

// ingestURL is a source's URL for senders.
func (s *Server) ingestURL(o IngestOrigin, token string) string {
	base := strings.TrimRight(s.cfg.PublicURL, "/")
	if base == "" {
		base = o.base
	}
	return base + "/in/" + token
}

func sourceOut(src *store.Source, ingestURL string) Source {
	set := &src.Settings
	ips := set.AllowIPs
	if ips == nil {
		ips = []string{}
	}
	d := set.Dedup
	by := inbound.DedupBy(set)
	origins := set.CloudEventsOrigins
	if origins == nil {
		origins = []string{}
	}
	return Source{
		ID: src.ID, TenantID: src.TenantID, Name: src.Name, Description: set.Description, Enabled: src.Enabled,
		IngestURL: ingestURL, Verification: verificationView(set.Verification), AllowIPs: ips,
		RateLimit: set.RateLimit, RateBurst: set.RateBurst, MaxBodyBytes: set.MaxBodyBytes, Schema: set.Schema,
		Dedup:           SourceDedup{By: by, Header: d.Header, Path: d.Path, WindowSeconds: int(d.Window() / time.Second)},
		EventTypePrefix: set.EventTypePrefix, DefaultEventType: set.DefaultEventType,
		CloudEventsOrigins: origins, ClientCert: clientCertOut(set.ClientCert),
		CreatedAt: src.CreatedAt, UpdatedAt: src.UpdatedAt,
	}
}

// ClientCert is a source's client certificate requirement as answers show it.
type ClientCert struct {
	Names []string `json:"names" doc:"The certificate must carry one of these names (subject CN, DNS or URI SAN); empty accepts any verified certificate."`
}

// ClientCertInput sets or removes a source's client certificate requirement.
type ClientCertInput struct {
	Required bool     `json:"required" doc:"true requires a verified client certificate; false removes the requirement."`
	Names    []string `json:"names,omitempty" maxItems:"50" doc:"Accept only certificates with one of these names (subject CN, DNS or URI SAN)."`
}

func clientCertOut(c *store.ClientCertRequirement) *ClientCert {
	if c == nil {
		return nil
	}
	names := c.Names
	if names == nil {
		names = []string{}
	}
	return &ClientCert{Names: names}
}

// verificationView is the stored verification without its secrets. It goes through
// verify.Config, so that only the fields Herald knows are shown, whatever the document holds.
func verificationView(raw json.RawMessage) VerificationView {
	var c verify.Config
	if err := json.Unmarshal(raw, &c); err != nil {
		return VerificationView{"scheme": "", "secrets_count": 0}
	}
	n := len(c.Secrets)
	c.Secrets = nil
	view := VerificationView{}
	b, err := json.Marshal(c)
	if err == nil {
		err = json.Unmarshal(b, &view)
	}
	if err != nil {
		view = VerificationView{"scheme": string(c.Scheme)}
	}
	view["secrets_count"] = n
	return view
}

// sourceSnapshot is a source as the audit log keeps it: what GET shows, without the token.
func sourceSnapshot(src *store.Source) Source {
	return sourceOut(src, "/in/"+redact.Marker)
}

// auditSource returns ctx carrying the audit entry of a change of a source: before is nil for a
// create, after for a delete.
func (s *Server) auditSource(ctx context.Context, action string, before, after *store.Source) context.Context {
	var b, a any
	var id, tenant string
	if before != nil {
		b, id, tenant = sourceSnapshot(before), before.ID, before.TenantID
	}
	if after != nil {
		a, id, tenant = sourceSnapshot(after), after.ID, after.TenantID
	}
	return store.WithAudit(ctx, s.audit(ctx, action, "source", id, tenant, b, a))
}

// newToken makes an ingest token: 256 random bits, so that it cannot be guessed.
func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate ingest token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

var (
	// typePrefixRe is an event type prefix with its final dot.
	typePrefixRe = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.$`)
	unknownField = regexp.MustCompile(`^json: unknown field "(.*)"$`)
)

// decodeVerification reads a verification object strictly into a Config. It reports whether
// the object has a "secrets" member.
func decodeVerification(raw VerificationInput) (*verify.Config, bool, []error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return nil, false, []error{&huma.ErrorDetail{Location: "body.verification", Message: "must be an object"}}
	}
	hasSecrets := false
	for k := range members {
		if strings.EqualFold(k, "secrets") {
			hasSecrets = true
		}
	}
	var c verify.Config
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		// Neither message carries the value: it may be a secret.
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			field, _, _ := strings.Cut(te.Field, ".")
			loc, want := "body.verification", te.Type
			if field != "" {
				loc += "." + field
				if f, ok := configField(field); ok {
					want = f.Type
				}
			}
			return nil, false, []error{&huma.ErrorDetail{Location: loc, Message: "must be " + jsonKind(want)}}
		case unknownField.MatchString(err.Error()):
			name := unknownField.FindStringSubmatch(err.Error())[1]
			return nil, false, []error{&huma.ErrorDetail{Location: "body.verification." + name, Message: "unknown field for verification"}}
		}
		return nil, false, []error{&huma.ErrorDetail{Location: "body.verification", Message: "not a verification object"}}
	}
	return &c, hasSecrets, nil
}

// configField finds the field of verify.Config with a JSON name.
func configField(name string) (reflect.StructField, bool) {
	t := reflect.TypeFor[verify.Config]()
	for i := range t.NumField() {
		if n, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); strings.EqualFold(n, name) {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

// jsonKind names the JSON type of a Go type, for messages.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Slice:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(jsonKind(t.Elem()), "a "), "an ") + "s"
	case reflect.Bool:
		return "a boolean"
	}
	return "of another type"
}

// checkVerification validates a Config; each problem is located under body.verification.
func checkVerification(c *verify.Config) []error {
	err := c.Validate()
	if err == nil {
		return nil
	}
	var ves verify.ValidationErrors
	if !errors.As(err, &ves) {
		return []error{&huma.ErrorDetail{Location: "body.verification", Message: err.Error()}}
	}
	out := make([]error, len(ves))
	for i, fe := range ves {
		out[i] = &huma.ErrorDetail{Location: "body." + fe.Field, Message: fe.Message}
	}
	return out
}

// applySource validates the given fields and writes them into src; creating says the source is
// new (name and verification are then required). Every problem is reported at once.
func applySource(f *SourceFields, src *store.Source, creating bool) error {
	var errs []error
	bad := func(loc, msg string, value any) {
		errs = append(errs, &huma.ErrorDetail{Location: loc, Message: msg, Value: value})
	}
	for _, k := range f.unknown {
		bad("body."+k, "unknown field", nil)
	}
	set := &src.Settings
	switch {
	case f.Name != nil:
		name := strings.TrimSpace(*f.Name)
		switch {
		case name == "":
			bad("body.name", "must not be empty", nil)
		case strings.ContainsRune(name, 0):
			bad("body.name", "must not contain NUL characters", nil)
		}
		src.Name = name
	case creating:
		bad("body.name", "required", nil)
	}
	if f.Description != nil {
		if strings.ContainsRune(*f.Description, 0) {
			bad("body.description", "must not contain NUL characters", nil)
		}
		set.Description = *f.Description
	}
	if f.Enabled != nil {
		src.Enabled = *f.Enabled
	}
	switch {
	case f.Verification != nil:
		c, hasSecrets, es := decodeVerification(f.Verification)
		if es != nil {
			errs = append(errs, es...)
			break
		}
		// Secrets are never shown, so a client cannot send them back: omitted, they are kept.
		kept := false
		if !hasSecrets && !creating && c.Scheme != verify.SchemeNone {
			var old verify.Config
			if err := json.Unmarshal(set.Verification, &old); err == nil {
				c.Secrets, kept = old.Secrets, len(old.Secrets) > 0
			}
		}
		if es := checkVerification(c); es != nil {
			for _, e := range es {
				// A scheme change can make the kept secrets wrong: say where they came from.
				if d, ok := e.(*huma.ErrorDetail); ok && kept && strings.HasPrefix(d.Location, "body.verification.secrets") {
					d.Message += " (these are the stored secrets, kept because verification has no secrets: send the new scheme's)"
				}
			}
			errs = append(errs, es...)
			break
		}
		doc, err := json.Marshal(c)
		if err != nil {
			bad("body.verification", "cannot be encoded", nil)
			break
		}
		set.Verification = doc
	case creating:
		bad("body.verification", `required: at least {"scheme": "…"}; see docs/receiving.md`, nil)
	}
	if f.AllowIPs != nil {
		if len(f.AllowIPs) > maxAllowIPs {
			bad("body.allow_ips", fmt.Sprintf("at most %d entries", maxAllowIPs), nil)
		}
		ips := make([]string, 0, len(f.AllowIPs))
		for i, s := range f.AllowIPs {
			p, err := parseAllowIP(s)
			if err != nil {
				bad(fmt.Sprintf("body.allow_ips[%d]", i), err.Error(), s)
				continue
			}
			ips = append(ips, p.String())
		}
		set.AllowIPs = ips
		if len(ips) == 0 {
			set.AllowIPs = nil
		}
	}
	if f.RateLimit != nil {
		set.RateLimit = *f.RateLimit
	}
	if f.CloudEventsOrigins != nil {
		set.CloudEventsOrigins = nil
		for i, o := range f.CloudEventsOrigins {
			if o != "*" && !validOrigin(o) {
				bad(fmt.Sprintf("body.cloudevents_origins[%d]", i), "want a DNS name (the sender's WebHook-Request-Origin) or *", o)
				continue
			}
			set.CloudEventsOrigins = append(set.CloudEventsOrigins, strings.ToLower(o))
		}
	}
	if f.ClientCert != nil {
		set.ClientCert = nil
		if f.ClientCert.Required {
			set.ClientCert = &store.ClientCertRequirement{}
			for i, n := range f.ClientCert.Names {
				if n == "" || len(n) > 253 || strings.ContainsFunc(n, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
					bad(fmt.Sprintf("body.client_cert.names[%d]", i), "want a certificate name without white space or control characters, at most 253 characters", n)
					continue
				}
				set.ClientCert.Names = append(set.ClientCert.Names, n)
			}
		} else if len(f.ClientCert.Names) > 0 {
			bad("body.client_cert.names", "names need required: true", nil)
		}
	}
	if f.RateBurst != nil {
		set.RateBurst = *f.RateBurst
	}
	if f.MaxBodyBytes != nil {
		set.MaxBodyBytes = *f.MaxBodyBytes
	}
	if f.Schema != nil {
		doc := json.RawMessage(f.Schema)
		var compact bytes.Buffer
		if err := json.Compact(&compact, doc); err == nil {
			doc = compact.Bytes()
		}
		switch _, err := schema.Compile(doc); {
		case err != nil:
			bad("body.schema", err.Error(), nil)
		case string(doc) == "{}":
			set.Schema = nil // accepts everything: the same as none
		default:
			set.Schema = doc
		}
	}
	if f.Dedup != nil {
		errs = append(errs, applyDedup(f.Dedup, &set.Dedup)...)
	}
	if f.EventTypePrefix != nil {
		p := *f.EventTypePrefix
		if p != "" && !strings.HasSuffix(p, ".") {
			p += "."
		}
		if p != "" && (len(p) > maxEventTypeLen || !typePrefixRe.MatchString(p)) {
			bad("body.event_type_prefix", "not a valid prefix: lower-case words separated by dots, such as stripe. (at most 100 characters with the final dot)", *f.EventTypePrefix)
		}
		set.EventTypePrefix = p
	}
	if f.DefaultEventType != nil {
		t := *f.DefaultEventType
		if t != "" && (len(t) > maxEventTypeLen || !eventTypeRe.MatchString(t)) {
			bad("body.default_event_type", "not a valid event type name (resource.action, lower case)", t)
		}
		set.DefaultEventType = t
	}
	if len(errs) > 0 {
		return huma.Error422UnprocessableEntity("invalid source", errs...)
	}
	return nil
}

// parseAllowIP reads a CIDR, or an address meaning itself alone (/32 or /128). IPv4-mapped IPv6
// addresses become IPv4, the form the remote address of an IPv4 request takes.
func parseAllowIP(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, errors.New("not an IP address or CIDR (203.0.113.0/24, 2001:db8::/32)")
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, errors.New("not an IP address or CIDR (203.0.113.0/24, 2001:db8::/32)")
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// applyDedup validates a dedup rule and writes it into d: each kind needs its field and takes
// no other.
func applyDedup(in *SourceDedupInput, d *store.Dedup) []error {
	var errs []error
	bad := func(loc, msg string) { errs = append(errs, &huma.ErrorDetail{Location: loc, Message: msg}) }
	by := in.By
	if by == "" {
		by = store.DedupProviderID
	}
	switch by {
	case store.DedupHeader:
		switch {
		case in.Header == "":
			bad("body.dedup.header", "required with by=header")
		case !headerName.MatchString(in.Header):
			bad("body.dedup.header", "not a valid header name")
		}
	case store.DedupJSONPath:
		switch {
		case in.Path == "":
			bad("body.dedup.path", "required with by=json_path")
		case strings.Contains("."+in.Path+".", ".."):
			bad("body.dedup.path", `empty segment; want a dotted path such as "data.object.id"`)
		}
	}
	if in.Header != "" && by != store.DedupHeader {
		bad("body.dedup.header", "only with by=header")
	}
	if in.Path != "" && by != store.DedupJSONPath {
		bad("body.dedup.path", "only with by=json_path")
	}
	window := 0
	if in.WindowSeconds != nil {
		window = *in.WindowSeconds
		if window < 0 || time.Duration(window)*time.Second > store.MaxDedupWindow {
			bad("body.dedup.window_seconds", fmt.Sprintf("must be between 0 and %d seconds (30 days)", int(store.MaxDedupWindow/time.Second)))
		}
	}
	// An omitted by is stored as such: the scheme's default, which follows the verification.
	*d = store.Dedup{By: in.By, Header: in.Header, Path: in.Path, WindowSeconds: window}
	return errs
}

type SourcePath struct {
	TenantPath
	ID string `path:"id" maxLength:"64" doc:"A source id, src_…"`
}

type sourceInput struct {
	SourcePath
	IngestOrigin
}

type createSourceInput struct {
	TenantPath
	IngestOrigin
	Body SourceFields
}

type updateSourceInput struct {
	SourcePath
	IngestOrigin
	Body SourceFields
}

// sourceChanged tells the receiving side to drop what it cached about a source.
func (s *Server) sourceChanged(id string) {
	if s.cfg.Inbound != nil {
		s.cfg.Inbound.SourceChanged(id)
	}
}

func (s *Server) registerSources() {
	tags := []string{"Sources"}
	huma.Register(s.api, huma.Operation{
		OperationID: "create-source", Metadata: map[string]any{metaSecretBody: true}, Method: http.MethodPost, Path: "/v1/tenants/{tenant}/sources", Tags: tags,
		Summary: "Create a source",
		Description: "A source is an ingest URL (ingest_url) for a sender: what it receives is verified as the verification " +
			"object says, deduplicated, stored, and forwarded as events to the tenant's endpoints. Secrets are write-only.",
		DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *createSourceInput) (*Out[Source], error) {
		now := s.auditTime()
		src := &store.Source{ID: newID("src"), TenantID: in.Tenant, Enabled: true, CreatedAt: now, UpdatedAt: now}
		if err := applySource(&in.Body, src, true); err != nil {
			return nil, err
		}
		token, err := newToken()
		if err != nil {
			return nil, s.fail(err, "token")
		}
		src.Token = token
		if err := s.st.CreateSource(s.auditSource(ctx, "source.create", nil, src), src); err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		return &Out[Source]{Body: sourceOut(src, s.ingestURL(in.IngestOrigin, src.Token))}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "list-sources", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/sources", Tags: tags,
		Summary: "List a tenant's sources",
	}, func(ctx context.Context, in *struct {
		TenantPath
		IngestOrigin
		ListParams
	}) (*Out[ListBody[Source]], error) {
		if _, err := s.st.GetTenant(ctx, in.Tenant); err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		srcs, next, err := s.st.ListSources(ctx, in.Tenant, in.page())
		if err != nil {
			return nil, s.fail(err, "sources")
		}
		out := make([]Source, len(srcs))
		for i := range srcs {
			out[i] = sourceOut(&srcs[i], s.ingestURL(in.IngestOrigin, srcs[i].Token))
		}
		return &Out[ListBody[Source]]{Body: list(out, next)}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "get-source", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/sources/{id}", Tags: tags,
		Summary: "Get a source",
	}, func(ctx context.Context, in *sourceInput) (*Out[Source], error) {
		src, err := s.st.GetSource(ctx, in.Tenant, in.ID)
		if err != nil {
			return nil, s.fail(err, "source "+in.ID)
		}
		return &Out[Source]{Body: sourceOut(src, s.ingestURL(in.IngestOrigin, src.Token))}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "update-source", Metadata: map[string]any{metaSecretBody: true}, Method: http.MethodPatch, Path: "/v1/tenants/{tenant}/sources/{id}", Tags: tags,
		Summary: "Change a source",
		Description: "Only the fields given change. verification, allow_ips and dedup are replaced as a whole; " +
			"verification without secrets keeps the stored secrets.",
	}, func(ctx context.Context, in *updateSourceInput) (*Out[Source], error) {
		src, err := s.st.GetSource(ctx, in.Tenant, in.ID)
		if err != nil {
			return nil, s.fail(err, "source "+in.ID)
		}
		before := *src // applySource replaces settings, never changes them in place
		if err := applySource(&in.Body, src, false); err != nil {
			return nil, err
		}
		src.UpdatedAt = s.auditTime()
		action := "source.update"
		switch {
		case src.Enabled && !before.Enabled:
			action = "source.enable"
		case !src.Enabled && before.Enabled:
			action = "source.disable"
		}
		if err := s.st.UpdateSource(s.auditSource(ctx, action, &before, src), src); err != nil {
			return nil, s.fail(err, "source "+in.ID)
		}
		s.sourceChanged(src.ID)
		return &Out[Source]{Body: sourceOut(src, s.ingestURL(in.IngestOrigin, src.Token))}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "delete-source", Method: http.MethodDelete, Path: "/v1/tenants/{tenant}/sources/{id}", Tags: tags,
		Summary:       "Delete a source with its received requests",
		Description:   "Its ingest URL answers 404 at once. The events its requests became stay.",
		DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *SourcePath) (*struct{}, error) {
		src, err := s.st.GetSource(ctx, in.Tenant, in.ID)
		if err != nil {
			return nil, s.fail(err, "source "+in.ID)
		}
		err = s.st.DeleteSource(s.auditSource(ctx, "source.delete", src, nil), in.Tenant, in.ID)
		s.sourceChanged(in.ID)
		if err != nil {
			return nil, s.fail(err, "source "+in.ID)
		}
		return nil, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "rotate-source-token", Method: http.MethodPost, Path: "/v1/tenants/{tenant}/sources/{id}/rotate-token", Tags: tags,
		Summary: "Give a source a new ingest URL",
		Description: "The old URL stops working at once (404): update it at the sender right after. " +
			"Use it when the URL may have leaked.",
	}, func(ctx context.Context, in *sourceInput) (*Out[Source], error) {
		src, err := s.st.GetSource(ctx, in.Tenant, in.ID)
		if err != nil {
			return nil, s.fail(err, "source "+in.ID)
		}
		before := *src
		token, err := newToken()
		if err != nil {
			return nil, s.fail(err, "token")
		}
		src.Token = token
		src.UpdatedAt = s.auditTime()
		err = s.st.UpdateSource(s.auditSource(ctx, "source.token_rotate", &before, src), src)
		if err != nil {
			return nil, s.fail(err, "source "+in.ID)
		}
		s.sourceChanged(src.ID)
		return &Out[Source]{Body: sourceOut(src, s.ingestURL(in.IngestOrigin, src.Token))}, nil
	})
}

// validOrigin reports whether o is a DNS name as a CloudEvents sender sends it in
// WebHook-Request-Origin (eventemitter.example.com).
func validOrigin(o string) bool {
	if o == "" || len(o) > 253 {
		return false
	}
	for _, label := range strings.Split(o, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
