package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// stripeSignatureHeader carries "t=<unix>,v1=<hex>[,v1=<hex>…][,v0=…]".
const stripeSignatureHeader = "Stripe-Signature"

// stripeChecker verifies Stripe webhooks as Stripe documents them
// (https://docs.stripe.com/webhooks#verify-manually): HMAC-SHA256, keyed with
// the whole whsec_… string (not base64-decoded, unlike Standard Webhooks),
// over "t.body", hex in each v1= entry. Stripe sends several v1 entries while
// an endpoint's secret is rolled; any may match.
type stripeChecker struct {
	macs      macKeys
	tolerance time.Duration
}

func newStripeChecker(c *Config) *stripeChecker {
	return &stripeChecker{macs: newMACKeys(sha256.New, c.Secrets), tolerance: c.Tolerance()}
}

func (c *stripeChecker) check(req *Request, now time.Time) (Result, *Error) {
	value := header(req.Header, stripeSignatureHeader)
	if value == "" {
		return Result{}, reject(ReasonMissingSignature, stripeSignatureHeader, "")
	}
	t, sigs, rerr := parseStripeHeader(value)
	if rerr != nil {
		return Result{}, rerr
	}
	ts, rerr := checkTimestamp(t, stripeSignatureHeader, now, c.tolerance)
	if rerr != nil {
		return Result{}, rerr
	}
	i := c.macs.match(sigs, []byte(t), []byte{'.'}, req.Body)
	if i < 0 {
		return Result{}, reject(ReasonBadSignature, stripeSignatureHeader, "no v1 signature matches any secret")
	}
	return Result{SecretIndex: i, Timestamp: ts}, nil
}

// parseStripeHeader returns the t= value and the decoded v1= signatures.
// Entries of other schemes (v0, test-mode signatures) are ignored, and so are
// v1 entries that are not 32 bytes of hex, as Stripe's libraries do.
func parseStripeHeader(value string) (t string, sigs [][]byte, rerr *Error) {
	seenT := false
	for item := range strings.SplitSeq(value, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			if seenT {
				return "", nil, reject(ReasonMalformedHeader, stripeSignatureHeader, "more than one t= timestamp")
			}
			seenT, t = true, v
		case "v1":
			if len(sigs) == maxSignatures {
				return "", nil, reject(ReasonMalformedHeader, stripeSignatureHeader, "more than %d v1 signatures", maxSignatures)
			}
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				continue
			}
			sigs = append(sigs, sig)
		}
	}
	switch {
	case !seenT:
		return "", nil, reject(ReasonMalformedHeader, stripeSignatureHeader, "no t= timestamp")
	case len(sigs) == 0:
		return "", nil, reject(ReasonMalformedHeader, stripeSignatureHeader, "no well-formed v1= signature")
	}
	return t, sigs, nil
}
