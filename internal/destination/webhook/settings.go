package webhook

import (
	"encoding/json"
	"reflect"

	"github.com/heraldhq/herald/internal/destination"
)

// Settings are a webhook endpoint's settings (the endpoint's "config"): how Herald authenticates
// to the receiver (beside the signature), the client certificate it presents, and the proxy it
// sends through. All are optional; an endpoint without config is a plain signed POST.
//
// The fields are flat (one JSON object, prefixed by concern) because the store seals credentials
// by top-level field name (Secrets) and the API's update rule works per field: an update that
// omits a credential keeps it, null removes it.
type Settings struct {
	// Auth is the authentication scheme: "" (none), AuthBasic, AuthBearer, AuthAPIKey, AuthOAuth2.
	Auth string `json:"auth,omitempty"`

	BasicUsername string `json:"basic_username,omitempty"`
	BasicPassword string `json:"basic_password,omitempty"` // secret

	BearerToken string `json:"bearer_token,omitempty"` // secret

	// APIKeyHeader names the header carrying APIKey ("X-API-Key" when unset).
	APIKeyHeader string `json:"api_key_header,omitempty"`
	APIKey       string `json:"api_key,omitempty"` // secret

	// OAuth2 client credentials (RFC 6749 §4.4). OAuth2AuthStyle is how the client
	// authenticates to the token URL: "basic" (HTTP Basic, the default) or "body" (form fields).
	OAuth2TokenURL     string   `json:"oauth2_token_url,omitempty"`
	OAuth2ClientID     string   `json:"oauth2_client_id,omitempty"`
	OAuth2ClientSecret string   `json:"oauth2_client_secret,omitempty"` // secret
	OAuth2Scopes       []string `json:"oauth2_scopes,omitempty"`
	OAuth2Audience     string   `json:"oauth2_audience,omitempty"`
	OAuth2AuthStyle    string   `json:"oauth2_auth_style,omitempty"`

	// Mutual TLS: the client certificate (PEM, leaf first, then intermediates) and its private
	// key (PEM), presented when the receiver asks; TLSCABundle (PEM) replaces the system roots
	// for checking the receiver's certificate.
	TLSClientCertificate string `json:"tls_client_certificate,omitempty"`
	TLSClientKey         string `json:"tls_client_key,omitempty"` // secret
	TLSCABundle          string `json:"tls_ca_bundle,omitempty"`

	// Proxy overrides the node's outbound proxy for this endpoint: "" uses the node's
	// (--egress-proxy), ProxyNone sends directly, otherwise the proxy's URL (http://, https://
	// or socks5://, userinfo allowed): a secret, since it may hold the proxy's credentials.
	Proxy string `json:"proxy,omitempty"` // secret
}

// Authentication schemes.
const (
	AuthNone   = ""
	AuthBasic  = "basic"
	AuthBearer = "bearer"
	AuthAPIKey = "api_key"
	AuthOAuth2 = "oauth2"
)

// ProxyNone in Settings.Proxy sends directly even when the node has a proxy.
const ProxyNone = "none"

// Check validates a webhook endpoint's settings field by field and returns them normalised
// (nil for none). Each concern checks its own fields (checkAuth, checkTLS, checkProxy); an
// unknown field is refused.
func (t *Type) Check(settings json.RawMessage) (json.RawMessage, []*destination.FieldError) {
	if len(settings) == 0 || string(settings) == "null" {
		return nil, nil
	}
	var s Settings
	if fe := destination.DecodeSettings(settings, &s, decoding()); fe != nil {
		return nil, []*destination.FieldError{fe}
	}
	var errs []*destination.FieldError
	errs = append(errs, t.checkAuth(&s)...)
	errs = append(errs, checkTLS(&s)...)
	errs = append(errs, checkProxy(&s)...)
	if len(errs) > 0 {
		return nil, errs
	}
	if reflect.ValueOf(s).IsZero() {
		return nil, nil
	}
	b, err := json.Marshal(&s)
	if err != nil {
		return nil, []*destination.FieldError{{Message: "cannot encode: " + err.Error()}}
	}
	return b, nil
}

// decoding words DecodeSettings's errors for webhook settings.
func decoding() destination.Decoding {
	return destination.Decoding{
		Known: "auth, basic_username, basic_password, bearer_token, api_key_header, api_key, oauth2_token_url, oauth2_client_id, oauth2_client_secret, oauth2_scopes, oauth2_audience, oauth2_auth_style, tls_client_certificate, tls_client_key, tls_ca_bundle, proxy",
	}
}

// Secrets names the credentials among the settings.
func (t *Type) Secrets() []string {
	return []string{"basic_password", "bearer_token", "api_key", "oauth2_client_secret", "tls_client_key", "proxy"}
}

// Settings describes the settings, in the order a form shows them.
func (t *Type) Settings() []destination.Setting {
	var out []destination.Setting
	out = append(out, authSettings()...)
	out = append(out, tlsSettings()...)
	out = append(out, proxySettings()...)
	return out
}

// settingsOf decodes a target's settings (which Check produced).
func settingsOf(raw json.RawMessage) (Settings, error) {
	var s Settings
	if len(raw) == 0 || string(raw) == "null" {
		return s, nil
	}
	err := json.Unmarshal(raw, &s)
	return s, err
}
