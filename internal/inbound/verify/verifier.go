package verify

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/httpheader"
)

// Request is what verification needs of an incoming HTTP request. Build it
// with FromHTTP, or by hand where the request did not come through net/http.
type Request struct {
	// Method is the HTTP method.
	Method string
	// URL is the full URL the sender called, with scheme, host, path and
	// query exactly as sent: Twilio signs it. Config.PublicURL replaces all
	// but the query when a proxy changes what Herald sees.
	URL string
	// Header holds the request headers. Names are matched without regard to
	// case even when the map's keys are not canonical.
	Header http.Header
	// Body is the raw body, byte for byte as received. Decoding and
	// re-encoding JSON changes it and breaks every body signature.
	Body []byte
	// Form holds the POST form parameters of a form-encoded request (Twilio
	// signs them): http.Request.PostForm, not Form, which mixes in the query
	// string. When nil, they are parsed from Body if the Content-Type is
	// application/x-www-form-urlencoded.
	Form url.Values
}

// FromHTTP builds a Request from a server request and its body, already read
// (bounded) by the caller. The URL is rebuilt from the Host header, the
// request target as received, and whether the connection used TLS; it never
// trusts X-Forwarded-* headers, which anyone can send: behind a proxy, set
// Config.PublicURL instead.
func FromHTTP(r *http.Request, body []byte) *Request {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return &Request{
		Method: r.Method,
		URL:    scheme + "://" + r.Host + requestTarget(r),
		Header: r.Header,
		Body:   body,
	}
}

// requestTarget returns the path and query of a request as the request line
// carried them, so that the bytes Twilio signed are not re-encoded.
func requestTarget(r *http.Request) string {
	target := r.RequestURI
	if strings.HasPrefix(target, "/") {
		return target
	}
	// The absolute form ("POST https://host/path HTTP/1.1"), which a server
	// must accept and httptest.NewRequest produces: drop scheme and authority.
	if _, rest, ok := strings.Cut(target, "://"); ok {
		if i := strings.IndexAny(rest, "/?"); i >= 0 {
			if rest[i] == '?' {
				return "/" + rest[i:]
			}
			return rest[i:]
		}
		return "/"
	}
	if r.URL != nil {
		return r.URL.RequestURI()
	}
	return "/"
}

// Result describes a request that verified.
type Result struct {
	Scheme Scheme
	// SecretIndex is the index in Config.Secrets of the secret that matched,
	// or -1 for SchemeNone. Once a rotated-out secret stops matching, it can
	// be removed.
	SecretIndex int
	// Timestamp is the signed timestamp, or the zero time when the scheme
	// signs none.
	Timestamp time.Time
}

// Reason is the machine-readable cause of a rejection; the API returns it and
// metrics count it.
type Reason string

// Reasons for rejecting a request.
const (
	// ReasonMissingSignature: the header carrying the signature or the
	// credentials is absent or empty.
	ReasonMissingSignature Reason = "missing_signature"
	// ReasonMissingHeader: another header the scheme needs (a timestamp or an
	// id) is absent.
	ReasonMissingHeader Reason = "missing_header"
	// ReasonMalformedHeader: a header is present but not in the sender's
	// format (bad encoding, wrong length, missing prefix, non-numeric
	// timestamp).
	ReasonMalformedHeader Reason = "malformed_header"
	// ReasonMalformedBody: the body cannot be read the way the scheme needs
	// (a form that does not parse).
	ReasonMalformedBody Reason = "malformed_body"
	// ReasonBadSignature: well formed, but no configured secret produces it,
	// or the credentials do not match.
	ReasonBadSignature Reason = "bad_signature"
	// ReasonStaleTimestamp: the signed timestamp is older than the tolerance.
	ReasonStaleTimestamp Reason = "stale_timestamp"
	// ReasonFutureTimestamp: the signed timestamp is further in the future
	// than the tolerance.
	ReasonFutureTimestamp Reason = "future_timestamp"
)

// Error is a rejected request. Its message never contains secrets,
// signatures or body bytes.
type Error struct {
	Scheme Scheme
	Reason Reason
	// Header is the header at fault, when there is one.
	Header string
	// Detail says more, for logs and for the sender.
	Detail string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("verify ")
	b.WriteString(string(e.Scheme))
	b.WriteString(": ")
	b.WriteString(string(e.Reason))
	if e.Header != "" {
		b.WriteString(": ")
		b.WriteString(e.Header)
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// ReasonOf returns the Reason of an error from Verify, or "" when err is nil
// or not a rejection.
func ReasonOf(err error) Reason {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Reason
	}
	return ""
}

// checker is one scheme's verification, compiled from a validated Config.
type checker interface {
	check(req *Request, now time.Time) (Result, *Error)
}

// Verifier verifies requests for one source. It is immutable and safe for
// concurrent use; build it with New.
type Verifier struct {
	cfg     Config // a copy, with its own Secrets slice
	checker checker
	now     func() time.Time
	clear   []string // the forms a secret would take sent in clear, for Reveals
	secret  []string // SecretHeaders, computed once
}

// Option configures a Verifier.
type Option func(*Verifier)

// WithClock makes the Verifier read the time from now instead of time.Now,
// for tests and for re-checking stored requests.
func WithClock(now func() time.Time) Option {
	return func(v *Verifier) { v.now = now }
}

// New validates cfg and compiles it into a Verifier. The error wraps a
// ValidationErrors when the Config is invalid.
func New(cfg Config, opts ...Option) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("verify: new verifier: %w", err)
	}
	cfg.Secrets = slices.Clone(cfg.Secrets)
	v := &Verifier{cfg: cfg, now: time.Now, clear: clearForms(&cfg), secret: cfg.SecretHeaders()}
	for _, o := range opts {
		o(v)
	}
	var err error
	v.checker, err = newChecker(&v.cfg)
	if err != nil {
		// Validate accepted the Config, so this is a bug in one of them.
		return nil, fmt.Errorf("verify: new verifier: %w", err)
	}
	return v, nil
}

func newChecker(c *Config) (checker, error) {
	switch c.Scheme {
	case SchemeStandardWebhooks:
		return newStandardChecker(c)
	case SchemeStripe:
		return newStripeChecker(c), nil
	case SchemeGitHub:
		return newGitHubChecker(c), nil
	case SchemeShopify:
		return newShopifyChecker(c), nil
	case SchemeSlack:
		return newSlackChecker(c), nil
	case SchemeTwilio:
		return newTwilioChecker(c), nil
	case SchemeHMAC:
		return newHMACChecker(c)
	case SchemeBasic:
		return newBasicChecker(c), nil
	case SchemeBearer:
		return newBearerChecker(c), nil
	case SchemeNone:
		return noneChecker{}, nil
	}
	return nil, fmt.Errorf("unknown scheme %q", c.Scheme)
}

// Scheme returns the scheme the Verifier checks.
func (v *Verifier) Scheme() Scheme { return v.cfg.Scheme }

// SecretHeaders is Config.SecretHeaders of the Verifier's Config. The slice is shared: do not
// change it.
func (v *Verifier) SecretHeaders() []string { return v.secret }

// String describes v without its secrets.
func (v *Verifier) String() string {
	return fmt.Sprintf("verify.Verifier{Scheme: %q, Secrets: %d redacted}", v.cfg.Scheme, len(v.cfg.Secrets))
}

// Verify checks req against the Verifier's clock. It returns the Result of a
// genuine request, or an *Error whose Reason says why it was rejected.
func (v *Verifier) Verify(req *Request) (Result, error) {
	return v.VerifyAt(req, v.now())
}

// VerifyAt is Verify with an explicit current time.
func (v *Verifier) VerifyAt(req *Request, now time.Time) (Result, error) {
	res, err := v.checker.check(req, now)
	if err != nil {
		err.Scheme = v.cfg.Scheme
		return Result{}, err
	}
	res.Scheme = v.cfg.Scheme
	return res, nil
}

// reject builds an *Error; the scheme is filled in by VerifyAt.
func reject(reason Reason, header, format string, args ...any) *Error {
	return &Error{Reason: reason, Header: header, Detail: fmt.Sprintf(format, args...)}
}

// headerValues finds a header's values whatever the case of its stored name.
func headerValues(h http.Header, name string) []string { return httpheader.Values(h, name) }

// header returns the first value of a header, trimmed of surrounding white
// space, or "".
func header(h http.Header, name string) string {
	vs := headerValues(h, name)
	if len(vs) == 0 {
		return ""
	}
	return strings.TrimSpace(vs[0])
}

// checkTimestamp parses a Unix timestamp in seconds and checks that it is
// within tol of now, both ways: a timestamp in the future is as suspect as a
// stale one, since it would extend how long a captured request replays.
func checkTimestamp(value, headerName string, now time.Time, tol time.Duration) (time.Time, *Error) {
	// Only plain digits: ParseInt would also accept a sign, and the signed
	// content uses the text verbatim, so there must be one way to write a
	// given time.
	if value == "" || len(value) > 19 || strings.ContainsFunc(value, func(r rune) bool { return r < '0' || r > '9' }) {
		return time.Time{}, reject(ReasonMalformedHeader, headerName, "timestamp is not a decimal Unix time in seconds")
	}
	sec, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		return time.Time{}, reject(ReasonMalformedHeader, headerName, "timestamp out of range")
	}
	// Whole seconds rather than time.Unix arithmetic: sec may be anything up
	// to MaxInt64, and these differences stay in range for any real clock.
	tolSec := int64(tol / time.Second)
	switch nowSec := now.Unix(); {
	case sec < nowSec-tolSec:
		return time.Time{}, reject(ReasonStaleTimestamp, headerName, "%ds old, tolerance %s", nowSec-sec, tol)
	case sec > nowSec+tolSec:
		return time.Time{}, reject(ReasonFutureTimestamp, headerName, "%ds in the future, tolerance %s", sec-nowSec, tol)
	}
	return time.Unix(sec, 0), nil
}

// isForm reports whether a request's body is form-encoded.
func isForm(h http.Header) bool {
	ct := header(h, "Content-Type")
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// form returns the request's form parameters: Form when set, else the body
// parsed when it is form-encoded, else nil.
func (r *Request) form() (url.Values, *Error) {
	if r.Form != nil {
		return r.Form, nil
	}
	if !isForm(r.Header) {
		return nil, nil
	}
	vs, err := url.ParseQuery(string(r.Body))
	if err != nil {
		return nil, reject(ReasonMalformedBody, "", "form body does not parse")
	}
	return vs, nil
}
