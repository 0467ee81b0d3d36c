package webhook

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/heraldhq/herald/internal/destination"
)

// How Herald authenticates to a receiver, beside the signature: the checks of the auth fields
// (here), the headers they put on each request (auth_send.go) and the OAuth2 client credentials
// token cache (auth_oauth2.go).

// DefaultAPIKeyHeader carries the API key when api_key_header is unset.
const DefaultAPIKeyHeader = "X-API-Key"

// OAuth2 client authentication styles at the token URL (oauth2_auth_style).
const (
	OAuth2AuthBasic = "basic" // HTTP Basic with the client id and secret (RFC 6749 §2.3.1), the default
	OAuth2AuthBody  = "body"  // client_id and client_secret as form fields
)

// Limits of the auth fields' values: far above any real credential, low enough that a header
// stays well under a receiver's header limits.
const (
	maxCredential = 4096
	maxTokenURL   = 2048
	maxScopes     = 50
)

// headerToken is an RFC 9110 field name, as the API's custom headers accept.
var headerToken = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")

// reservedAuthHeaders are what Herald sets itself (the signature, content and hop headers, the
// trace context): an API key in one of them would replace or break the request.
var reservedAuthHeaders = []string{
	"webhook-id", "webhook-timestamp", "webhook-signature", "x-hub-signature-256", "stripe-signature",
	"x-herald-delivery", "content-type", "content-length", "content-encoding", "user-agent", "host",
	"transfer-encoding", "connection", "te", "trailer", "upgrade", "keep-alive", "proxy-authorization",
	"traceparent", "tracestate", "cookie",
}

// authFields names each scheme's fields, to refuse those of another scheme.
var authFields = []struct {
	scheme string
	fields []string
}{
	{AuthBasic, []string{"basic_username", "basic_password"}},
	{AuthBearer, []string{"bearer_token"}},
	{AuthAPIKey, []string{"api_key_header", "api_key"}},
	{AuthOAuth2, []string{"oauth2_token_url", "oauth2_client_id", "oauth2_client_secret", "oauth2_scopes", "oauth2_audience", "oauth2_auth_style"}},
}

// authValue reports whether the Settings field of that JSON name is set.
func authValue(s *Settings, field string) bool {
	switch field {
	case "basic_username":
		return s.BasicUsername != ""
	case "basic_password":
		return s.BasicPassword != ""
	case "bearer_token":
		return s.BearerToken != ""
	case "api_key_header":
		return s.APIKeyHeader != ""
	case "api_key":
		return s.APIKey != ""
	case "oauth2_token_url":
		return s.OAuth2TokenURL != ""
	case "oauth2_client_id":
		return s.OAuth2ClientID != ""
	case "oauth2_client_secret":
		return s.OAuth2ClientSecret != ""
	case "oauth2_scopes":
		return len(s.OAuth2Scopes) > 0
	case "oauth2_audience":
		return s.OAuth2Audience != ""
	case "oauth2_auth_style":
		return s.OAuth2AuthStyle != ""
	}
	return false
}

// checkAuthFields validates the authentication fields (auth, basic_*, bearer_token, api_key*,
// oauth2_*): the scheme's required fields, no field of another scheme, and values that fit in a
// header. It fills in the defaults (api_key_header, oauth2_auth_style). The token URL's shape is
// checked here; whether the node may reach it, by Type.checkAuth and, at every fetch, the guard.
func checkAuthFields(s *Settings) []*destination.FieldError {
	var errs []*destination.FieldError
	bad := func(field, msg string, value any) {
		errs = append(errs, &destination.FieldError{Field: field, Message: msg, Value: value})
	}
	switch s.Auth {
	case AuthNone, AuthBasic, AuthBearer, AuthAPIKey, AuthOAuth2:
	default:
		bad("auth", "unknown scheme; one of: basic, bearer, api_key, oauth2 (or none)", s.Auth)
		return errs
	}
	for _, scheme := range authFields {
		if scheme.scheme == s.Auth {
			continue
		}
		for _, f := range scheme.fields {
			if !authValue(s, f) {
				continue
			}
			if s.Auth == AuthNone {
				bad("auth", fmt.Sprintf("required with %s: set auth to %q", f, scheme.scheme), nil)
				return errs
			}
			bad(f, fmt.Sprintf("only for auth %q, and this endpoint's auth is %q; remove it (null removes a stored credential)", scheme.scheme, s.Auth), nil)
		}
	}
	required := func(field, value string) bool {
		if value == "" {
			bad(field, fmt.Sprintf("required with auth %q", s.Auth), nil)
			return false
		}
		return true
	}
	// checkValue refuses what cannot go into a header or form field unchanged.
	checkValue := func(field, value string, limit int, secret bool) {
		var shown any = value
		if secret {
			shown = nil
		}
		switch {
		case len(value) > limit:
			bad(field, fmt.Sprintf("longer than %d bytes", limit), nil)
		case strings.ContainsFunc(value, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			bad(field, "has control characters (a line break, tab or NUL)", shown)
		case strings.TrimSpace(value) != value:
			bad(field, "has leading or trailing white space", shown)
		}
	}
	switch s.Auth {
	case AuthBasic:
		if required("basic_username", s.BasicUsername) {
			checkValue("basic_username", s.BasicUsername, maxCredential, false)
			if strings.Contains(s.BasicUsername, ":") {
				bad("basic_username", "must not contain ':' (RFC 7617: it ends the user name)", s.BasicUsername)
			}
		}
		checkValue("basic_password", s.BasicPassword, maxCredential, true) // may be empty, as some APIs use a key as user name
	case AuthBearer:
		if required("bearer_token", s.BearerToken) {
			checkValue("bearer_token", s.BearerToken, maxCredential, true)
			if strings.Contains(s.BearerToken, " ") {
				bad("bearer_token", "must not contain spaces; give the token alone, without \"Bearer \"", nil)
			}
		}
	case AuthAPIKey:
		if s.APIKeyHeader == "" {
			s.APIKeyHeader = DefaultAPIKeyHeader
		}
		switch {
		case !headerToken.MatchString(s.APIKeyHeader):
			bad("api_key_header", "not a valid header name", s.APIKeyHeader)
		case isReservedAuthHeader(s.APIKeyHeader):
			bad("api_key_header", "set by Herald (signature, content or connection header); choose another name", s.APIKeyHeader)
		}
		if required("api_key", s.APIKey) {
			checkValue("api_key", s.APIKey, maxCredential, true)
		}
	case AuthOAuth2:
		errs = append(errs, checkOAuth2(s)...)
	}
	return errs
}

// checkOAuth2 validates the client credentials fields.
func checkOAuth2(s *Settings) []*destination.FieldError {
	var errs []*destination.FieldError
	bad := func(field, msg string, value any) {
		errs = append(errs, &destination.FieldError{Field: field, Message: msg, Value: value})
	}
	if s.OAuth2AuthStyle == "" {
		s.OAuth2AuthStyle = OAuth2AuthBasic
	}
	if s.OAuth2AuthStyle != OAuth2AuthBasic && s.OAuth2AuthStyle != OAuth2AuthBody {
		bad("oauth2_auth_style", `one of "basic" (HTTP Basic, the default) or "body" (form fields)`, s.OAuth2AuthStyle)
	}
	switch u := s.OAuth2TokenURL; {
	case u == "":
		bad("oauth2_token_url", `required with auth "oauth2"`, nil)
	case len(u) > maxTokenURL:
		bad("oauth2_token_url", fmt.Sprintf("longer than %d bytes", maxTokenURL), nil)
	case !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://"):
		bad("oauth2_token_url", "must be an absolute https URL, like https://auth.example.com/oauth2/token", u)
	}
	for _, f := range []struct{ name, value string }{{"oauth2_client_id", s.OAuth2ClientID}, {"oauth2_client_secret", s.OAuth2ClientSecret}} {
		secret := f.name == "oauth2_client_secret"
		var shown any = f.value
		if secret {
			shown = nil
		}
		switch {
		case f.value == "":
			bad(f.name, `required with auth "oauth2"`, nil)
		case len(f.value) > maxCredential:
			bad(f.name, fmt.Sprintf("longer than %d bytes", maxCredential), nil)
		case strings.ContainsFunc(f.value, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			bad(f.name, "has control characters (a line break, tab or NUL)", shown)
		}
	}
	if len(s.OAuth2Scopes) > maxScopes {
		bad("oauth2_scopes", fmt.Sprintf("at most %d scopes", maxScopes), nil)
	}
	for i, sc := range s.OAuth2Scopes {
		// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
		if sc == "" || len(sc) > 256 || strings.ContainsFunc(sc, func(r rune) bool { return r <= 0x20 || r == '"' || r == '\\' || r >= 0x7f }) {
			bad(fmt.Sprintf("oauth2_scopes[%d]", i), "not a scope: printable ASCII without spaces, quotes or backslashes (give each scope as its own item)", sc)
		}
	}
	if len(s.OAuth2Audience) > maxTokenURL || strings.ContainsFunc(s.OAuth2Audience, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		bad("oauth2_audience", "too long or has control characters", nil)
	}
	return errs
}

// checkAuth validates the authentication fields (checkAuthFields) and refuses a token URL the
// node could never reach, as the API refuses such an endpoint URL: http where the node sends
// https only, credentials in it, a blocked address literal. The internal client's rules are used
// (the wider ones, for endpoints an admin marked internal); the guard of the endpoint's own
// client still checks every fetch.
func (t *Type) checkAuth(s *Settings) []*destination.FieldError {
	errs := checkAuthFields(s)
	if len(errs) > 0 || s.Auth != AuthOAuth2 {
		return errs
	}
	if err := t.internal.ValidateURL(s.OAuth2TokenURL); err != nil {
		return []*destination.FieldError{{Field: "oauth2_token_url", Message: err.Error(), Value: s.OAuth2TokenURL}}
	}
	return nil
}

func isReservedAuthHeader(name string) bool {
	lower := strings.ToLower(name)
	for _, r := range reservedAuthHeaders {
		if lower == r {
			return true
		}
	}
	return strings.HasPrefix(lower, "ce-") // CloudEvents binary mode's attributes
}

// authSettings describes the authentication fields for forms.
func authSettings() []destination.Setting {
	return []destination.Setting{
		{Name: "auth", Kind: destination.SettingString, Choices: []string{AuthBasic, AuthBearer, AuthAPIKey, AuthOAuth2},
			Help: "How Herald authenticates to the receiver, beside the signature: basic, bearer, api_key or oauth2 (client credentials). Empty: the signature alone."},
		{Name: "basic_username", Kind: destination.SettingString,
			Help: "With auth basic: the user name of the Authorization: Basic header (required, no ':')."},
		{Name: "basic_password", Kind: destination.SettingString, Secret: true,
			Help: "With auth basic: the password (may be empty)."},
		{Name: "bearer_token", Kind: destination.SettingString, Secret: true,
			Help: "With auth bearer: the token sent as Authorization: Bearer <token> (required)."},
		{Name: "api_key_header", Kind: destination.SettingString, Default: DefaultAPIKeyHeader, Placeholder: DefaultAPIKeyHeader,
			Help: "With auth api_key: the header carrying the key; not a signature, content or connection header."},
		{Name: "api_key", Kind: destination.SettingString, Secret: true,
			Help: "With auth api_key: the key (required)."},
		{Name: "oauth2_token_url", Kind: destination.SettingString, Placeholder: "https://auth.example.com/oauth2/token",
			Help: "With auth oauth2: the authorization server's token URL (required; https, checked like the endpoint's URL)."},
		{Name: "oauth2_client_id", Kind: destination.SettingString,
			Help: "With auth oauth2: the client id (required)."},
		{Name: "oauth2_client_secret", Kind: destination.SettingString, Secret: true,
			Help: "With auth oauth2: the client secret (required)."},
		{Name: "oauth2_scopes", Kind: destination.SettingList,
			Help: "With auth oauth2: the scopes to ask for, one per item."},
		{Name: "oauth2_audience", Kind: destination.SettingString,
			Help: "With auth oauth2: sent as the audience form field, for authorization servers that need one (Auth0, Okta)."},
		{Name: "oauth2_auth_style", Kind: destination.SettingString, Choices: []string{OAuth2AuthBasic, OAuth2AuthBody}, Default: OAuth2AuthBasic,
			Help: "With auth oauth2: how the client authenticates to the token URL: basic (HTTP Basic) or body (client_id and client_secret form fields)."},
	}
}
