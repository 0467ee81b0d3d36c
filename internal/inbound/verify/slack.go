package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

const (
	slackSignatureHeader = "X-Slack-Signature"
	slackTimestampHeader = "X-Slack-Request-Timestamp"
)

// slackChecker verifies Slack requests
// (https://api.slack.com/authentication/verifying-requests-from-slack):
// "v0=" and the hex HMAC-SHA256, keyed with the app's signing secret, of
// "v0:" + X-Slack-Request-Timestamp + ":" + body. Slack's own libraries
// reject timestamps more than five minutes away.
type slackChecker struct {
	macs      macKeys
	tolerance time.Duration
}

func newSlackChecker(c *Config) *slackChecker {
	return &slackChecker{macs: newMACKeys(sha256.New, c.Secrets), tolerance: c.Tolerance()}
}

func (c *slackChecker) check(req *Request, now time.Time) (Result, *Error) {
	value := header(req.Header, slackSignatureHeader)
	if value == "" {
		return Result{}, reject(ReasonMissingSignature, slackSignatureHeader, "")
	}
	t := header(req.Header, slackTimestampHeader)
	if t == "" {
		return Result{}, reject(ReasonMissingHeader, slackTimestampHeader, "")
	}
	enc, ok := strings.CutPrefix(value, "v0=")
	if !ok {
		return Result{}, reject(ReasonMalformedHeader, slackSignatureHeader, `want "v0=" and hex`)
	}
	sig, err := hex.DecodeString(enc)
	if err != nil || len(sig) != sha256.Size {
		return Result{}, reject(ReasonMalformedHeader, slackSignatureHeader, "want %d bytes of hex", sha256.Size)
	}
	ts, rerr := checkTimestamp(t, slackTimestampHeader, now, c.tolerance)
	if rerr != nil {
		return Result{}, rerr
	}
	i := c.macs.match([][]byte{sig}, []byte("v0:"+t+":"), req.Body)
	if i < 0 {
		return Result{}, reject(ReasonBadSignature, slackSignatureHeader, "signature matches no secret")
	}
	return Result{SecretIndex: i, Timestamp: ts}, nil
}
