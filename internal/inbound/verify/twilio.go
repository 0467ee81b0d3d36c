package verify

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"
)

const (
	twilioSignatureHeader = "X-Twilio-Signature"
	// twilioBodyHashParam is the query parameter Twilio adds to the URL of
	// requests with a JSON body: the hex SHA-256 of the body.
	twilioBodyHashParam = "bodySHA256"
)

// twilioChecker verifies Twilio requests as Twilio documents them
// (https://www.twilio.com/docs/usage/webhooks/webhooks-security): the base64
// HMAC-SHA1, keyed with the account's auth token, of the full URL Twilio
// called followed, for a form POST, by every POST parameter sorted by name,
// each name immediately followed by its value. Requests with a JSON body sign
// the URL alone, which carries the body's hex SHA-256 in its bodySHA256 query
// parameter. Twilio signs no timestamp.
//
// Twilio computes the signature sometimes with and sometimes without the
// default port in the URL; like Twilio's libraries, the checker accepts
// either.
type twilioChecker struct {
	macs      macKeys
	publicURL string
}

func newTwilioChecker(c *Config) *twilioChecker {
	// The primary and the secondary auth token are both valid while Twilio
	// rotates them: hence several secrets.
	return &twilioChecker{macs: newMACKeys(sha1.New, c.Secrets), publicURL: c.PublicURL}
}

func (c *twilioChecker) check(req *Request, _ time.Time) (Result, *Error) {
	value := header(req.Header, twilioSignatureHeader)
	if value == "" {
		return Result{}, reject(ReasonMissingSignature, twilioSignatureHeader, "")
	}
	sig, err := base64.StdEncoding.DecodeString(value)
	if err != nil || len(sig) != sha1.Size {
		return Result{}, reject(ReasonMalformedHeader, twilioSignatureHeader, "want the base64 of %d bytes", sha1.Size)
	}
	signedURL := c.signedURL(req.URL)
	sigs := [][]byte{sig}

	if bodyHash, ok := bodyHashParam(signedURL); ok {
		// A JSON body: the URL alone is signed, and it carries the body's hash.
		i := c.matchURL(sigs, signedURL, nil)
		if i < 0 {
			return Result{}, reject(ReasonBadSignature, twilioSignatureHeader, "signature matches no secret")
		}
		sum := sha256.Sum256(req.Body)
		want, err := hex.DecodeString(bodyHash)
		if err != nil || subtle.ConstantTimeCompare(sum[:], want) != 1 {
			return Result{}, reject(ReasonBadSignature, twilioBodyHashParam, "the body does not match the signed %s", twilioBodyHashParam)
		}
		return Result{SecretIndex: i}, nil
	}

	form, rerr := req.form()
	if rerr != nil {
		return Result{}, rerr
	}
	if form == nil && len(req.Body) > 0 {
		// Neither form parameters nor a body hash: the signature would not
		// cover the body, which anyone could then replace.
		return Result{}, reject(ReasonBadSignature, twilioSignatureHeader,
			"the body is neither form-encoded nor covered by %s", twilioBodyHashParam)
	}
	i := c.matchURL(sigs, signedURL, sortedParams(form))
	if i < 0 {
		return Result{}, reject(ReasonBadSignature, twilioSignatureHeader, "signature matches no secret")
	}
	return Result{SecretIndex: i}, nil
}

// matchURL tries the URL with and without its default port.
func (c *twilioChecker) matchURL(sigs [][]byte, signedURL string, params []byte) int {
	for _, u := range urlPortVariants(signedURL) {
		if i := c.macs.match(sigs, []byte(u), params); i >= 0 {
			return i
		}
	}
	return -1
}

// signedURL is the URL Twilio signed: the request's, or the configured public
// URL followed by the request's query string.
func (c *twilioChecker) signedURL(requestURL string) string {
	if c.publicURL == "" {
		return requestURL
	}
	if _, query, ok := strings.Cut(requestURL, "?"); ok {
		query, _, _ = strings.Cut(query, "#")
		return c.publicURL + "?" + query
	}
	return c.publicURL
}

// bodyHashParam returns the bodySHA256 query parameter of a URL.
func bodyHashParam(u string) (string, bool) {
	_, query, ok := strings.Cut(u, "?")
	if !ok {
		return "", false
	}
	query, _, _ = strings.Cut(query, "#")
	// A query that does not fully parse still yields the pairs that do.
	vs, _ := url.ParseQuery(query)
	h, ok := vs[twilioBodyHashParam]
	if !ok || len(h) == 0 {
		return "", false
	}
	return h[0], true
}

// sortedParams concatenates the parameters sorted by name (byte order), each
// name followed by its value; a repeated name's values are sorted too, as
// Twilio's Python and Node libraries do.
func sortedParams(form url.Values) []byte {
	if len(form) == 0 {
		return nil
	}
	var b []byte
	for _, k := range slices.Sorted(maps.Keys(form)) {
		vs := slices.Clone(form[k])
		slices.Sort(vs)
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, v...)
		}
	}
	return b
}

// urlPortVariants returns the URL with the default port of its scheme
// written out and without any port, editing the text rather than
// re-serialising a parsed URL, which could change other bytes of what was
// signed.
func urlPortVariants(u string) []string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return []string{u}
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	userinfo := ""
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		userinfo, authority = authority[:i+1], authority[i+1:]
	}
	host, port := authority, ""
	if i := strings.LastIndexByte(authority, ':'); i >= 0 && !strings.Contains(authority[i:], "]") {
		host, port = authority[:i], authority[i+1:]
	}
	if port == "" {
		switch strings.ToLower(scheme) {
		case "https":
			port = "443"
		case "http":
			port = "80"
		default:
			return []string{u}
		}
	}
	prefix := scheme + "://" + userinfo + host
	return []string{prefix + ":" + port + tail, prefix + tail}
}
