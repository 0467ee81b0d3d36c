package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
)

// OAuth2 client credentials (RFC 6749 §4.4): the sender fetches an access token from the token
// URL, through the same SSRF guard as deliveries, and sends it as Authorization: Bearer.
//
// One token serves every concurrent attempt of the endpoint until shortly before it expires;
// one fetch at a time: attempts that need a token while a fetch is in flight wait for it rather
// than asking the authorization server themselves. A 401 from the receiver drops the token it
// answered (revoked, or the receiver's clock disagrees), and the attempt is sent once more with a
// new one.
//
// A failed fetch is the attempt's outcome, with ErrorKind auth_failed. It is Retryable, even when
// the token URL refused the client (invalid_client, a 4xx): the usual cause is a credential
// rotated at the authorization server before the endpoint was updated, and retrying on the
// endpoint's schedule delivers once it is; an endpoint that never recovers trips its breaker
// and is disabled like one whose receiver fails. Only a token URL the guard refuses (a blocked
// address, http on a node sending https only) is Permanent, as the same endpoint URL would be.

// Margins before a token's expiry at which a new one is fetched: a fifth of its lifetime, at
// most maxRefreshMargin, so that a token is never sent so close to its expiry that it expires on
// the way (clocks and queues differ), and short-lived tokens are still reused.
const maxRefreshMargin = 30 * time.Second

// minRedactedSecret is the shortest client secret removed from error texts: shorter ones would
// match ordinary words (and are not worth stealing).
const minRedactedSecret = 6

// tokenCache holds an endpoint's current token and fetches new ones, one at a time.
type tokenCache struct {
	cfg    clientcredentials.Config
	client *http.Client // the guarded client of httpsend, never following redirects
	secret string       // removed from every error text

	mu        sync.Mutex
	tok       *oauth2.Token
	refreshAt time.Time   // zero: the token has no expiry and serves until a 401
	flight    *tokenFetch // the fetch in progress, if any
}

// tokenFetch is one fetch that concurrent attempts wait for; tok and err are set before done
// is closed.
type tokenFetch struct {
	done chan struct{}
	tok  *oauth2.Token
	err  error
}

func newTokenCache(c *httpsend.Client, s Settings) *tokenCache {
	cfg := clientcredentials.Config{
		ClientID:     s.OAuth2ClientID,
		ClientSecret: s.OAuth2ClientSecret,
		TokenURL:     s.OAuth2TokenURL,
		Scopes:       s.OAuth2Scopes,
		AuthStyle:    oauth2.AuthStyleInHeader,
	}
	if s.OAuth2AuthStyle == OAuth2AuthBody {
		cfg.AuthStyle = oauth2.AuthStyleInParams
	}
	if s.OAuth2Audience != "" {
		cfg.EndpointParams = url.Values{"audience": {s.OAuth2Audience}}
	}
	return &tokenCache{cfg: cfg, client: c.HTTPClient(), secret: s.OAuth2ClientSecret}
}

// token returns a token that is not stale and not near its expiry, fetching one if needed, or
// waiting for the fetch another attempt started. stale, if not nil, is a token the receiver
// refused: it is not returned again.
func (c *tokenCache) token(ctx context.Context, stale *oauth2.Token) (*oauth2.Token, error) {
	for {
		c.mu.Lock()
		if c.tok != nil && c.tok == stale {
			c.tok = nil
		}
		if c.tok != nil && (c.refreshAt.IsZero() || time.Now().Before(c.refreshAt)) {
			tok := c.tok
			c.mu.Unlock()
			return tok, nil
		}
		f := c.flight
		if f == nil {
			f = &tokenFetch{done: make(chan struct{})}
			c.flight = f
			c.mu.Unlock()
			c.fetch(ctx, f)
			return f.tok, f.err
		}
		c.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if f.err == nil {
			return f.tok, nil
		}
		// The fetcher's own attempt ran out of time or was canceled: that says nothing about the
		// token URL, so this attempt, which still has time, fetches itself.
		if ctx.Err() == nil && (errors.Is(f.err, context.DeadlineExceeded) || errors.Is(f.err, context.Canceled)) {
			continue
		}
		return nil, f.err
	}
}

// fetch asks the token URL for a token within ctx and publishes the result to f's waiters.
func (c *tokenCache) fetch(ctx context.Context, f *tokenFetch) {
	start := time.Now()
	tok, err := c.cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, c.client))
	if err == nil && tok.AccessToken == "" {
		err = errors.New("the token URL answered without an access_token")
	}
	c.mu.Lock()
	if err == nil {
		c.tok, c.refreshAt = tok, time.Time{}
		if !tok.Expiry.IsZero() {
			life := tok.Expiry.Sub(start)
			c.refreshAt = tok.Expiry.Add(-min(maxRefreshMargin, life/5))
		}
	}
	c.flight = nil
	c.mu.Unlock()
	f.tok, f.err = tok, err
	close(f.done)
}

// failure is the Outcome of an attempt that got no token: nothing was sent to the receiver.
func (c *tokenCache) failure(err error, start time.Time) destination.Outcome {
	class, kind := httpsend.Classify(err)
	o := destination.Outcome{Class: destination.Retryable, ErrorKind: destination.KindAuth, Latency: time.Since(start)}
	switch {
	case kind == destination.KindCanceled:
		o.ErrorKind = kind // shutdown, not the token URL's fault
	case class == destination.Permanent:
		o.Class = destination.Permanent
	}
	o.Error = c.redact("OAuth2 token: " + describeTokenError(err))
	return o
}

// describeTokenError words a failed fetch without the body the token URL answered (which could
// echo anything) beyond its standard error fields.
func describeTokenError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		msg := "the token URL refused the request"
		if re.Response != nil {
			msg = fmt.Sprintf("the token URL answered %d", re.Response.StatusCode)
		}
		if re.ErrorCode != "" {
			msg += " " + printable(re.ErrorCode, 64)
		}
		if re.ErrorDescription != "" {
			msg += ": " + printable(re.ErrorDescription, 200)
		}
		return msg
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its text repeats the method and the token URL
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out fetching a token: " + err.Error()
	}
	return "fetching a token: " + strings.TrimPrefix(err.Error(), "oauth2: ")
}

// printable cuts s to n bytes and drops control characters.
func printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// redact removes the client secret from an error text.
func (c *tokenCache) redact(s string) string {
	if len(c.secret) < minRedactedSecret {
		return s
	}
	return strings.ReplaceAll(s, c.secret, "[redacted]")
}

// oauth2Auth sends each request with the cached token, and once more with a new one on a 401.
type oauth2Auth struct {
	tokens *tokenCache
}

func (a *oauth2Auth) send(ctx context.Context, c *httpsend.Client, r httpsend.Request) destination.Outcome {
	start := time.Now()
	// The token fetch and both sends share the attempt's time.
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = httpsend.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tok, err := a.tokens.token(ctx, nil)
	if err != nil {
		return a.tokens.failure(err, start)
	}
	header := r.Header
	r.Header = withHeader(header, "Authorization", []string{tok.Type() + " " + tok.AccessToken})
	o := c.Send(ctx, r)
	if o.StatusCode != http.StatusUnauthorized {
		o.Latency = time.Since(start) // the attempt's, a token fetch included
		return o
	}
	tok, err = a.tokens.token(ctx, tok)
	if err != nil {
		return a.tokens.failure(err, start)
	}
	r.Header = withHeader(header, "Authorization", []string{tok.Type() + " " + tok.AccessToken})
	if dl, ok := ctx.Deadline(); ok {
		r.Timeout = max(time.Until(dl), time.Nanosecond)
	}
	o = c.Send(ctx, r)
	if o.StatusCode == http.StatusUnauthorized {
		o.ErrorKind = destination.KindAuth
		o.Error = "the receiver answered 401 to a newly fetched OAuth2 token too: " + o.Error
	}
	o.Latency = time.Since(start)
	return o
}
