package verify

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"
)

// Headers of the senders that sign the body alone.
const (
	githubSignatureHeader  = "X-Hub-Signature-256"
	githubLegacyHeader     = "X-Hub-Signature" // SHA-1, not accepted
	shopifySignatureHeader = "X-Shopify-Hmac-Sha256"
)

// githubChecker verifies GitHub webhooks
// (https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries):
// "sha256=" followed by the hex HMAC-SHA256 of the body, keyed with the
// webhook secret as typed. GitHub signs no timestamp.
type githubChecker struct{ macs macKeys }

func newGitHubChecker(c *Config) *githubChecker {
	return &githubChecker{macs: newMACKeys(sha256.New, c.Secrets)}
}

func (c *githubChecker) check(req *Request, _ time.Time) (Result, *Error) {
	value := header(req.Header, githubSignatureHeader)
	if value == "" {
		if header(req.Header, githubLegacyHeader) != "" {
			// Only a hook without a secret sends neither; one with only the
			// SHA-1 header is not from GitHub today, which always sends both.
			return Result{}, reject(ReasonMissingSignature, githubSignatureHeader, "only the SHA-1 "+githubLegacyHeader+" is present, which is not accepted")
		}
		return Result{}, reject(ReasonMissingSignature, githubSignatureHeader, "")
	}
	enc, ok := strings.CutPrefix(value, "sha256=")
	if !ok {
		return Result{}, reject(ReasonMalformedHeader, githubSignatureHeader, `want "sha256=" and hex`)
	}
	sig, err := hex.DecodeString(enc)
	if err != nil || len(sig) != sha256.Size {
		return Result{}, reject(ReasonMalformedHeader, githubSignatureHeader, "want %d bytes of hex", sha256.Size)
	}
	i := c.macs.match([][]byte{sig}, req.Body)
	if i < 0 {
		return Result{}, reject(ReasonBadSignature, githubSignatureHeader, "signature matches no secret")
	}
	return Result{SecretIndex: i}, nil
}

// shopifyChecker verifies Shopify webhooks
// (https://shopify.dev/docs/apps/build/webhooks/subscribe/https):
// the standard base64 of HMAC-SHA256 of the body, keyed with the app's client
// secret as typed (or, for webhooks made in the shop admin, the secret shown
// under Settings → Notifications). Shopify signs no timestamp.
type shopifyChecker struct{ macs macKeys }

func newShopifyChecker(c *Config) *shopifyChecker {
	return &shopifyChecker{macs: newMACKeys(sha256.New, c.Secrets)}
}

func (c *shopifyChecker) check(req *Request, _ time.Time) (Result, *Error) {
	value := header(req.Header, shopifySignatureHeader)
	if value == "" {
		return Result{}, reject(ReasonMissingSignature, shopifySignatureHeader, "")
	}
	sig, err := base64.StdEncoding.DecodeString(value)
	if err != nil || len(sig) != sha256.Size {
		return Result{}, reject(ReasonMalformedHeader, shopifySignatureHeader, "want the base64 of %d bytes", sha256.Size)
	}
	i := c.macs.match([][]byte{sig}, req.Body)
	if i < 0 {
		return Result{}, reject(ReasonBadSignature, shopifySignatureHeader, "signature matches no secret")
	}
	return Result{SecretIndex: i}, nil
}
