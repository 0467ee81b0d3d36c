package verify

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/webhook"
)

// SignInput is a request to sign as a sender would: herald send-test builds one for a source, and
// herald listen --source signs forwarded requests again with the provider's secret.
type SignInput struct {
	// URL is where the request goes. Twilio signs it; for a body that is not form-encoded Sign
	// adds the bodySHA256 parameter Twilio adds, so the request must be sent to URL as Sign leaves it.
	URL string
	// Header receives the signature headers. Its Content-Type tells Twilio's form and JSON
	// variants apart.
	Header http.Header
	Body   []byte
	// ID is the delivery id of the schemes that sign one (standard_webhooks' webhook-id, the
	// hmac scheme's id_header).
	ID string
	// At is the signed timestamp.
	At time.Time
}

// Sign sets on in.Header the headers with which in verifies under c, signed with secret: the
// request a sender holding secret would send. The secret has the form the scheme takes (see
// Config.Secrets; a whsk_ signing key for standard_webhooks v1a); c's own Secrets are ignored, so
// a source's settings as the API shows them (without secrets) will do. A preset is applied as
// Validate applies it. Errors never contain the secret.
func Sign(c Config, secret string, in *SignInput) error {
	c.Secrets = nil
	if c.Scheme != SchemeNone {
		c.Secrets = []string{secret}
	}
	if strings.HasPrefix(secret, webhook.SigningKeyPrefix) {
		// A whsk_ signing key signs; the source holds its whpk_ public key, which Validate checks.
		pub, err := webhook.PublicKey(secret)
		if err != nil {
			return fmt.Errorf("the signing key: %w", err)
		}
		c.Secrets = []string{pub}
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("the %s settings with this secret: %w", c.Scheme, err)
	}
	if in.Header == nil {
		in.Header = http.Header{}
	}
	h, at := in.Header, in.At
	ts := strconv.FormatInt(at.Unix(), 10)
	switch c.Scheme {
	case SchemeStandardWebhooks:
		s, err := webhook.NewSigner(secret)
		if err != nil {
			return fmt.Errorf("standard_webhooks secret: %w", err)
		}
		s.SetHeaders(h, in.ID, at, in.Body)
	case SchemeStripe:
		mac := macOf(sha256.New, []byte(secret), []byte(ts), []byte{'.'}, in.Body)
		h.Set(stripeSignatureHeader, "t="+ts+",v1="+hex.EncodeToString(mac))
	case SchemeGitHub:
		h.Set(githubSignatureHeader, "sha256="+hex.EncodeToString(macOf(sha256.New, []byte(secret), in.Body)))
	case SchemeShopify:
		h.Set(shopifySignatureHeader, base64.StdEncoding.EncodeToString(macOf(sha256.New, []byte(secret), in.Body)))
	case SchemeSlack:
		h.Set(slackTimestampHeader, ts)
		h.Set(slackSignatureHeader, "v0="+hex.EncodeToString(macOf(sha256.New, []byte(secret), []byte("v0:"+ts+":"), in.Body)))
	case SchemeTwilio:
		return signTwilio(&c, secret, in)
	case SchemeHMAC:
		return signHMAC(&c, secret, in, ts)
	case SchemeBasic:
		h.Set(authorizationHeader, "Basic "+base64.StdEncoding.EncodeToString([]byte(secret)))
	case SchemeBearer:
		if c.Header != "" {
			h.Set(c.Header, secret)
		} else {
			h.Set(authorizationHeader, "Bearer "+secret)
		}
	case SchemeNone:
	default:
		return fmt.Errorf("cannot sign for scheme %q", c.Scheme)
	}
	return nil
}

func macOf(newHash func() hash.Hash, key []byte, parts ...[]byte) []byte {
	m := hmac.New(newHash, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

func signTwilio(c *Config, token string, in *SignInput) error {
	var params []byte
	if isForm(in.Header) {
		form, err := url.ParseQuery(string(in.Body))
		if err != nil {
			return fmt.Errorf("twilio: the form body does not parse: %w", err)
		}
		params = sortedParams(form)
	} else {
		// Twilio signs a JSON body through a bodySHA256 parameter of the URL.
		sum := sha256.Sum256(in.Body)
		sep := "?"
		if strings.Contains(in.URL, "?") {
			sep = "&"
		}
		in.URL += sep + twilioBodyHashParam + "=" + hex.EncodeToString(sum[:])
	}
	signed := (&twilioChecker{publicURL: c.PublicURL}).signedURL(in.URL)
	in.Header.Set(twilioSignatureHeader, base64.StdEncoding.EncodeToString(macOf(sha1.New, []byte(token), []byte(signed), params)))
	return nil
}

func signHMAC(c *Config, secret string, in *SignInput, ts string) error {
	tmpl, err := parseTemplate(c.templateText())
	if err != nil {
		return fmt.Errorf("template: %w", err)
	}
	newHash, err := hashOf(c.Algorithm)
	if err != nil {
		return err
	}
	key, err := decodeSecret(secret, c.SecretEncoding)
	if err != nil {
		return fmt.Errorf("secret: %w", err)
	}
	var values [numParts]string
	if c.TimestampHeader != "" {
		in.Header.Set(c.TimestampHeader, ts)
		values[partTimestamp] = ts
	}
	if c.IDHeader != "" {
		in.Header.Set(c.IDHeader, in.ID)
		values[partID] = in.ID
	}
	mac := macOf(newHash, key, tmpl.content(values, in.Body)...)
	enc := hex.EncodeToString(mac)
	if c.Encoding == EncodingBase64 {
		enc = base64.StdEncoding.EncodeToString(mac)
	}
	in.Header.Set(c.Header, c.Prefix+enc)
	return nil
}
