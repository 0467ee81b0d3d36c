package verify

import (
	"sort"
	"strings"
)

// A preset is a provider whose webhooks one of the generic schemes verifies: the preset names
// the provider and fills in what its documentation fixes (the scheme, header, algorithm,
// encoding, prefix, and where the event's type and id are), so that a source needs only
// {"preset": "linear", "secrets": ["…"]}. Fields the Config sets itself are kept; a scheme,
// when given, must be the preset's. The preset's name is stored with the filled-in fields.
//
// Presets are for providers whose scheme Herald already verifies generically; a provider with
// a scheme of its own (Stripe, GitHub, Shopify, Slack, Twilio, Standard Webhooks) is a Scheme.

// The presets.
const (
	// PresetGitLab: the webhook's secret token, sent as it is in X-Gitlab-Token
	// (https://docs.gitlab.com/user/project/integrations/webhooks/#create-a-webhook).
	PresetGitLab = "gitlab"
	// PresetLinear: Linear-Signature, the hex HMAC-SHA256 of the body with the webhook's
	// signing secret (https://linear.app/developers/webhooks#securing-webhooks).
	PresetLinear = "linear"
	// PresetIntercom: X-Hub-Signature, "sha1=" and the hex HMAC-SHA1 of the body with the app's
	// client secret (https://developers.intercom.com/docs/references/webhooks/webhook-models#signed-notifications).
	PresetIntercom = "intercom"
	// PresetSquare: x-square-hmacsha256-signature, the base64 HMAC-SHA256 of the notification
	// URL followed by the body, with the subscription's signature key
	// (https://developer.squareup.com/docs/webhooks/step3validate). public_url is the
	// notification URL exactly as configured at Square; it becomes the template's prefix.
	PresetSquare = "square"
)

// preset is the Config a preset stands for.
func preset(name string) (Config, bool) {
	switch name {
	case PresetGitLab:
		return Config{Scheme: SchemeBearer, Header: "X-Gitlab-Token",
			EventTypePath: "object_kind", EventIDHeader: "X-Gitlab-Event-UUID"}, true
	case PresetLinear:
		return Config{Scheme: SchemeHMAC, Header: "Linear-Signature", Algorithm: AlgorithmSHA256, Encoding: EncodingHex,
			EventTypePath: "type", EventIDHeader: "Linear-Delivery"}, true
	case PresetIntercom:
		return Config{Scheme: SchemeHMAC, Header: "X-Hub-Signature", Algorithm: AlgorithmSHA1, Encoding: EncodingHex, Prefix: "sha1=",
			EventTypePath: "topic", EventIDPath: "id"}, true
	case PresetSquare:
		return Config{Scheme: SchemeHMAC, Header: "X-Square-Hmacsha256-Signature", Algorithm: AlgorithmSHA256, Encoding: EncodingBase64,
			EventTypePath: "type", EventIDPath: "event_id"}, true
	}
	return Config{}, false
}

// Presets lists the presets' names, sorted.
func Presets() []string {
	names := []string{PresetGitLab, PresetLinear, PresetIntercom, PresetSquare}
	sort.Strings(names)
	return names
}

// applyPreset fills c's empty fields from its preset. Square's public_url becomes the
// template "<public_url>{body}".
func (c *Config) applyPreset(v *validator) {
	p, ok := preset(c.Preset)
	if !ok {
		v.add("preset", "unknown preset %q; want one of %s", c.Preset, strings.Join(Presets(), ", "))
		return
	}
	if c.Scheme != "" && c.Scheme != p.Scheme {
		v.add("scheme", "the %s preset uses %s; leave scheme out or set it to %s", c.Preset, p.Scheme, p.Scheme)
		return
	}
	c.Scheme = p.Scheme
	for _, f := range []struct {
		dst *string
		val string
	}{
		{&c.Header, p.Header}, {&c.Algorithm, p.Algorithm}, {&c.Encoding, p.Encoding}, {&c.Prefix, p.Prefix},
		{&c.EventTypePath, p.EventTypePath}, {&c.EventIDPath, p.EventIDPath}, {&c.EventIDHeader, p.EventIDHeader},
	} {
		if *f.dst == "" {
			*f.dst = f.val
		}
	}
	if c.Preset == PresetSquare {
		switch {
		case c.PublicURL != "":
			validatePublicURL(v, c.PublicURL)
			c.Template, c.PublicURL = c.PublicURL+PlaceholderBody, ""
		case c.Template == "" || !strings.HasSuffix(c.Template, PlaceholderBody) || c.Template == PlaceholderBody:
			v.add("public_url", "required for square: the notification URL exactly as configured at Square (it is signed)")
		}
	}
}
