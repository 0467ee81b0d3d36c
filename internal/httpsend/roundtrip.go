package httpsend

import (
	"errors"
	"net/http"

	"github.com/heraldhq/herald/internal/destination"
)

// The guarded client for requests Herald makes on an endpoint's behalf besides the delivery
// itself, such as fetching an OAuth2 token: they must not reach what the endpoint's URL may not.

// HTTPClient returns an http.Client that sends through c: every URL passes the same checks as an
// endpoint's (https unless AllowHTTP, no credentials, no blocked literal), every dial passes the
// guard, and redirects are never followed (the 3xx comes back as the answer), since a redirect
// could lead past the URL that was checked. Its timeout is the request context's.
func (c *Client) HTTPClient() *http.Client {
	return &http.Client{
		Transport: guardedTransport{c},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// guardedTransport checks the URL, sets Herald's User-Agent when the caller set none, and uses
// the transport of c's route (the endpoint's proxy and client certificate, if any), whose dialer is guarded.
type guardedTransport struct{ c *Client }

func (t guardedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.c.checkURL(req.URL); err != nil {
		if req.Body != nil {
			_ = req.Body.Close() // a RoundTripper must close the body, even on error
		}
		return nil, &RefusedURLError{Err: err}
	}
	if req.Header.Get("User-Agent") == "" {
		req = req.Clone(req.Context()) // a RoundTripper must not modify the caller's request
		req.Header.Set("User-Agent", t.c.userAgent[0])
	}
	return t.c.roundTripper().RoundTrip(req)
}

// RefusedURLError is a URL HTTPClient refused before connecting (its Err says why: scheme,
// credentials, or a *BlockedError).
type RefusedURLError struct{ Err error }

func (e *RefusedURLError) Error() string { return e.Err.Error() }
func (e *RefusedURLError) Unwrap() error { return e.Err }

// Classify tells what a failure of an HTTPClient request means, as Send would for a delivery:
// a blocked destination or a refused URL is Permanent, everything else (DNS, timeouts, refused
// or reset connections, TLS) Retryable, with the ErrorKind Send would record.
func Classify(err error) (destination.Class, string) {
	var re *RefusedURLError
	if errors.As(err, &re) {
		var be *BlockedError
		if errors.As(err, &be) {
			return destination.Permanent, destination.KindBlocked
		}
		return destination.Permanent, destination.KindInvalidURL
	}
	return classifyError(err)
}
