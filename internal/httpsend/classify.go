package httpsend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/heraldhq/herald/internal/destination"
)

const (
	maxRetryAfter         = 24 * time.Hour
	retryAfterHeaderLimit = 64 // longer values are not a date or a sane number of seconds
)

// classifyStatus fills Class, ErrorKind and Error from the status line and headers.
func classifyStatus(o *destination.Outcome, resp *http.Response, reqURL *url.URL, now time.Time) {
	code := resp.StatusCode
	switch {
	case code >= 200 && code <= 299:
		o.Class = destination.Success
		return
	case code >= 300 && code <= 399:
		o.Class, o.ErrorKind = destination.Permanent, destination.KindRedirect
		// Following redirects would let a tenant bounce us past the guard's registration check and
		// would silently change where signed payloads go; the tenant must register the new URL.
		if loc := resp.Header.Get("Location"); loc != "" {
			if u, err := reqURL.Parse(loc); err == nil {
				loc = u.String()
			}
			o.Error = "status " + strconv.Itoa(code) + ": redirect to " + loc + " (redirects are not followed)"
		} else {
			o.Error = "status " + strconv.Itoa(code) + " (redirects are not followed)"
		}
		return
	case code == http.StatusGone:
		o.Class, o.ErrorKind = destination.Gone, destination.KindHTTPStatus
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests,
		code >= 500 && code <= 599:
		o.Class, o.ErrorKind = destination.Retryable, destination.KindHTTPStatus
	case code >= 400 && code <= 499:
		o.Class, o.ErrorKind = destination.Permanent, destination.KindHTTPStatus
	default:
		// 1xx as a final answer or a code past 599 is not HTTP we understand: treat it like garbage,
		// which is most likely a broken proxy and worth another try.
		o.Class, o.ErrorKind = destination.Retryable, destination.KindInvalidResponse
	}
	o.Error = "status " + strconv.Itoa(code)
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		o.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
}

// parseRetryAfter reads delay-seconds or an HTTP date. Anything unparseable, negative or in the
// past is 0 (the dispatcher's own schedule applies); anything longer than a day is capped so that
// a receiver cannot park a delivery forever.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > retryAfterHeaderLimit {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			var ne *strconv.NumError
			if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
				return maxRetryAfter
			}
			return 0
		}
		if secs >= uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	switch {
	case d <= 0:
		return 0
	case d > maxRetryAfter:
		return maxRetryAfter
	}
	return d
}

// classifyError turns a failure with no usable response into a class and kind. The order matters:
// our own guard and DNS errors are recognised first, then timeouts (which can wrap anything), then
// TLS, then socket errors. What is left happened after the connection was made and is the peer
// saying something that is not HTTP.
func classifyError(err error) (destination.Class, string) {
	var be *BlockedError
	if errors.As(err, &be) {
		return destination.Permanent, destination.KindBlocked
	}
	var pe *ProxyError
	if errors.As(err, &pe) {
		// Whatever went wrong on the way through the proxy (unreachable, credentials refused,
		// CONNECT refused, no answer in time) is the proxy's failure to the tenant: Herald
		// cannot tell a dead receiver behind it from a broken proxy.
		if errors.Is(err, context.Canceled) {
			return destination.Retryable, destination.KindCanceled
		}
		return destination.Retryable, destination.KindProxy
	}
	var de *dnsError
	if errors.As(err, &de) {
		return destination.Retryable, destination.KindDNS
	}
	if errors.Is(err, context.Canceled) {
		return destination.Retryable, destination.KindCanceled
	}
	if isTimeout(err) {
		return destination.Retryable, destination.KindTimeout
	}
	if isTLSError(err) {
		// Certificate problems are usually an expired or misdeployed cert that the receiver's
		// operator will fix; retrying (with backoff) delivers once they do, and the endpoint's
		// failure streak still disables it if they never do.
		return destination.Retryable, destination.KindTLS
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return destination.Retryable, destination.KindConnRefused
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		// The transport's unexported errServerClosedIdle: the peer closed a kept-alive connection
		// as we reused it. Our POSTs are not replayed automatically, so it reaches us.
		err.Error() == "http: server closed idle connection" {
		return destination.Retryable, destination.KindConnReset
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		if oe.Op == "dial" {
			return destination.Retryable, destination.KindConnFailed
		}
		return destination.Retryable, destination.KindConnReset
	}
	return destination.Retryable, destination.KindInvalidResponse
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isTLSError(err error) bool {
	var (
		cve *tls.CertificateVerificationError
		rhe tls.RecordHeaderError
		ae  tls.AlertError
		ece *tls.ECHRejectionError
		uae x509.UnknownAuthorityError
		he  x509.HostnameError
		cie x509.CertificateInvalidError
		oe  *net.OpError
	)
	switch {
	case errors.As(err, &cve), errors.As(err, &rhe), errors.As(err, &ae), errors.As(err, &ece),
		errors.As(err, &uae), errors.As(err, &he), errors.As(err, &cie):
		return true
	case errors.As(err, &oe) && oe.Op == "remote error":
		return true // an alert from the peer during the handshake, e.g. "tls: handshake failure"
	case errors.Is(err, http.ErrSchemeMismatch):
		return true // https URL, plain-HTTP port: a TLS misconfiguration the operator must fix
	}
	// The handshake reports some failures (no shared cipher, bad version) only as plain errors.
	return strings.Contains(err.Error(), "tls: ")
}
