package verify

import (
	"errors"
	"fmt"
	"time"

	"github.com/heraldhq/herald/webhook"
)

// svixSignatureHeader is Svix's name of webhook-signature, which the webhook
// package accepts too.
const svixSignatureHeader = "svix-signature"

// standardChecker verifies Standard Webhooks (https://www.standardwebhooks.com)
// with Herald's own webhook package: v1 HMAC-SHA256 keyed with the
// base64-decoded whsec_ secret, v1a Ed25519 with a whpk_ public key, over
// "id.timestamp.body". It also accepts the svix-* header names, as the
// webhook package does.
type standardChecker struct {
	// One verifier per secret, so the Result can say which one matched.
	verifiers []*webhook.Verifier
	tolerance time.Duration
}

func newStandardChecker(c *Config) (*standardChecker, error) {
	sc := &standardChecker{tolerance: c.Tolerance()}
	for i, s := range c.Secrets {
		v, err := webhook.NewVerifier(s)
		if err != nil {
			return nil, fmt.Errorf("secret %d: %w", i, err)
		}
		sc.verifiers = append(sc.verifiers, v.WithTolerance(sc.tolerance))
	}
	return sc, nil
}

func (c *standardChecker) check(req *Request, now time.Time) (Result, *Error) {
	// The webhook-* names, unless none is present and the svix-* ones are:
	// the same rule as the webhook package, so both read the same headers.
	idName, tsName, sigName := webhook.HeaderID, webhook.HeaderTimestamp, webhook.HeaderSignature
	if headerValues(req.Header, idName) == nil && headerValues(req.Header, tsName) == nil &&
		headerValues(req.Header, sigName) == nil {
		idName, tsName, sigName = "svix-id", "svix-timestamp", svixSignatureHeader
	}
	switch {
	case header(req.Header, sigName) == "":
		return Result{}, reject(ReasonMissingSignature, sigName, "")
	case header(req.Header, idName) == "":
		return Result{}, reject(ReasonMissingHeader, idName, "")
	case header(req.Header, tsName) == "":
		return Result{}, reject(ReasonMissingHeader, tsName, "")
	}
	// Checked here, before the webhook package repeats it, to tell stale from
	// future from malformed, which its single ErrTimestamp does not.
	ts, rerr := checkTimestamp(header(req.Header, tsName), tsName, now, c.tolerance)
	if rerr != nil {
		return Result{}, rerr
	}
	for i, v := range c.verifiers {
		err := v.VerifyAt(req.Body, req.Header, now)
		switch {
		case err == nil:
			return Result{SecretIndex: i, Timestamp: ts}, nil
		case errors.Is(err, webhook.ErrNoMatchingSignature):
			continue
		case errors.Is(err, webhook.ErrMissingHeaders):
			return Result{}, reject(ReasonMissingHeader, "", "%v", err)
		default:
			return Result{}, reject(ReasonMalformedHeader, tsName, "%v", err)
		}
	}
	return Result{}, reject(ReasonBadSignature, sigName, "no signature matches any secret")
}
