package verify

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"time"
)

const authorizationHeader = "Authorization"

// credentialChecker compares a presented credential with each configured one.
// It compares SHA-256 digests rather than the credentials themselves:
// subtle.ConstantTimeCompare returns at once when lengths differ, which
// would reveal a credential's length, whereas digests are always 32 bytes.
type credentialChecker struct {
	digests [][sha256.Size]byte
}

func newCredentialChecker(secrets []string) credentialChecker {
	d := make([][sha256.Size]byte, len(secrets))
	for i, s := range secrets {
		d[i] = sha256.Sum256([]byte(s))
	}
	return credentialChecker{digests: d}
}

// match returns the index of the credential equal to presented, or -1. It
// examines every configured credential whatever the outcome.
func (c credentialChecker) match(presented string) int {
	got := sha256.Sum256([]byte(presented))
	found := -1
	for i, want := range c.digests {
		if subtle.ConstantTimeCompare(got[:], want[:]) == 1 && found < 0 {
			found = i
		}
	}
	return found
}

// basicChecker verifies HTTP Basic credentials (RFC 7617) against
// "user:password" secrets.
type basicChecker struct{ creds credentialChecker }

func newBasicChecker(c *Config) *basicChecker {
	return &basicChecker{creds: newCredentialChecker(c.Secrets)}
}

func (c *basicChecker) check(req *Request, _ time.Time) (Result, *Error) {
	value := header(req.Header, authorizationHeader)
	if value == "" {
		return Result{}, reject(ReasonMissingSignature, authorizationHeader, "")
	}
	scheme, enc, ok := strings.Cut(value, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return Result{}, reject(ReasonMalformedHeader, authorizationHeader, `want "Basic" credentials`)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil || !strings.Contains(string(raw), ":") {
		return Result{}, reject(ReasonMalformedHeader, authorizationHeader, `want the base64 of "user:password"`)
	}
	i := c.creds.match(string(raw))
	if i < 0 {
		return Result{}, reject(ReasonBadSignature, authorizationHeader, "credentials match none configured")
	}
	return Result{SecretIndex: i}, nil
}

// bearerChecker verifies a static token, in "Authorization: Bearer" (RFC
// 6750) or as the whole value of a configured header.
type bearerChecker struct {
	creds  credentialChecker
	header string // "" for Authorization: Bearer
}

func newBearerChecker(c *Config) *bearerChecker {
	return &bearerChecker{creds: newCredentialChecker(c.Secrets), header: c.Header}
}

func (c *bearerChecker) check(req *Request, _ time.Time) (Result, *Error) {
	name := c.header
	if name == "" {
		name = authorizationHeader
	}
	value := header(req.Header, name)
	if value == "" {
		return Result{}, reject(ReasonMissingSignature, name, "")
	}
	token := value
	if c.header == "" {
		scheme, t, ok := strings.Cut(value, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return Result{}, reject(ReasonMalformedHeader, name, `want "Bearer" and a token`)
		}
		token = strings.TrimSpace(t)
	}
	i := c.creds.match(token)
	if i < 0 {
		return Result{}, reject(ReasonBadSignature, name, "token matches none configured")
	}
	return Result{SecretIndex: i}, nil
}

// noneChecker accepts every request: for senders that sign nothing, where the
// unguessable source URL is the only protection.
type noneChecker struct{}

func (noneChecker) check(*Request, time.Time) (Result, *Error) {
	return Result{SecretIndex: -1}, nil
}

// minRevealLen is the shortest secret Reveals looks for: a shorter one would match ordinary
// header values.
const minRevealLen = 8

// clearForms lists what the secrets of c look like when a sender puts one in a request in clear:
// the secret as configured, and for basic also the password alone and the base64 of
// "user:password" that an Authorization header carries.
func clearForms(c *Config) []string {
	var forms []string
	add := func(s string) {
		if len(s) >= minRevealLen {
			forms = append(forms, s)
		}
	}
	for _, s := range c.Secrets {
		add(s)
		if c.Scheme == SchemeBasic {
			_, pass, _ := strings.Cut(s, ":")
			add(pass)
			add(base64.StdEncoding.EncodeToString([]byte(s)))
		}
	}
	return forms
}

// Reveals reports whether s holds one of the Verifier's secrets in clear, such as a token sent
// in a header other than the configured one, or in the query string: whatever carries it must
// not be stored. Secrets shorter than 8 bytes are not looked for.
func (v *Verifier) Reveals(s string) bool {
	for _, f := range v.clear {
		if strings.Contains(s, f) {
			return true
		}
	}
	return false
}
