package webhook

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
)

// The CloudEvents abuse-protection handshake ("HTTP 1.1 Web Hooks for Event Delivery", section
// 4, https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/http-webhook.md#4-abuse-protection):
// before the first delivery to an endpoint whose format is a CloudEvents one, Herald sends
// OPTIONS to the endpoint's URL with WebHook-Request-Origin (the node's origin, see
// WithHandshakeOrigin). The receiver agrees by answering 2xx with WebHook-Allowed-Origin equal
// to that origin or "*", and may limit the rate with WebHook-Allowed-Rate (requests per minute,
// or "*" for no limit). Anything else fails the attempt (handshake_failed, retryable) and nothing
// is delivered; a handshake that could not reach the receiver keeps its connection kind (timeout,
// dns, connection_refused, …), its error saying it was the handshake.
//
// The answer is kept per sender, that is per endpoint URL (and settings and format: the
// dispatcher opens a new sender when any changes), for HandshakeTTL; after that the next
// attempt asks again. A failed handshake is not kept: the next attempt asks again. The allowed
// rate is the sender's destination.RateAdvisor: the dispatcher limits the endpoint to the lower
// of its own rate limit and that one.

// Handshake headers (CloudEvents webhook spec, section 4.1 and 4.2).
const (
	HeaderRequestOrigin   = "WebHook-Request-Origin"
	HeaderRequestRate     = "WebHook-Request-Rate"
	HeaderRequestCallback = "WebHook-Request-Callback"
	HeaderAllowedOrigin   = "WebHook-Allowed-Origin"
	HeaderAllowedRate     = "WebHook-Allowed-Rate"
)

// HandshakeTTL is how long a successful handshake is trusted before it is done again: long
// enough that a busy endpoint makes one OPTIONS request a day, short enough that a receiver
// that withdrew its consent stops receiving within a day.
const HandshakeTTL = 24 * time.Hour

// DefaultHandshakeOrigin is the origin sent when the node configures none.
const DefaultHandshakeOrigin = "herald"

// Option configures the webhook type.
type Option func(*Type)

// WithHandshakeOrigin sets the WebHook-Request-Origin the CloudEvents handshake sends: a DNS
// name identifying this Herald deployment (the node uses --webhook-origin, default the host of
// --public-url).
func WithHandshakeOrigin(origin string) Option {
	return func(t *Type) {
		if origin != "" {
			t.origin = origin
		}
	}
}

// WithHandshakeTTL sets how long a successful handshake is kept (HandshakeTTL by default).
func WithHandshakeTTL(ttl time.Duration) Option {
	return func(t *Type) {
		if ttl > 0 {
			t.handshakeTTL = ttl
		}
	}
}

// needsHandshake reports whether an endpoint of the format is sent only after the handshake: the
// CloudEvents formats (store.FormatCloudEventsStructured and FormatCloudEventsBinary; matched by
// their common prefix so that destination types stay below the store).
func needsHandshake(format string) bool {
	return strings.HasPrefix(format, "cloudevents-")
}

// handshake is one sender's handshake state.
type handshake struct {
	origin string
	ttl    time.Duration
	// turn lets one attempt at a time perform the handshake; the others wait for its answer (or
	// their own deadline) rather than each sending OPTIONS.
	turn chan struct{}

	mu      sync.Mutex
	until   time.Time // the handshake's answer is trusted until then
	allowed float64   // the rate the receiver allows, per second; 0 for no limit
}

func newHandshake(origin string, ttl time.Duration) *handshake {
	return &handshake{origin: origin, ttl: ttl, turn: make(chan struct{}, 1)}
}

// AllowedRate is the rate the receiver allowed in its last handshake, per second (0: no limit).
func (s *sender) AllowedRate() float64 {
	if s.handshake == nil {
		return 0
	}
	s.handshake.mu.Lock()
	defer s.handshake.mu.Unlock()
	return s.handshake.allowed
}

func (h *handshake) valid(now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return now.Before(h.until)
}

// ensure performs the handshake unless a recent one holds. It returns ok, or the failed
// attempt's outcome.
func (s *sender) ensureHandshake(ctx context.Context, timeout time.Duration) (destination.Outcome, bool) {
	h := s.handshake
	if h.valid(time.Now()) {
		return destination.Outcome{}, true
	}
	select {
	case h.turn <- struct{}{}:
	case <-ctx.Done():
		return destination.Outcome{Class: destination.Retryable, ErrorKind: destination.KindHandshake,
			Error: "cloudevents handshake: waited for another attempt's handshake: " + ctx.Err().Error()}, false
	}
	defer func() { <-h.turn }()
	if h.valid(time.Now()) { // the attempt that had the turn succeeded
		return destination.Outcome{}, true
	}
	var answer http.Header
	// With the endpoint's credentials, as its deliveries: a receiver's gateway may ask for them
	// on every request.
	out := s.send(ctx, httpsend.Request{
		URL: s.url, Method: http.MethodOptions, Timeout: timeout,
		Header:         http.Header{HeaderRequestOrigin: {h.origin}},
		ResponseHeader: func(hd http.Header) { answer = hd.Clone() },
	})
	if out.StatusCode == 0 {
		// Not answered: the connection's own kind says why (blocked stays permanent).
		out.Error = "cloudevents handshake: " + out.Error
		return out, false
	}
	if out.Class != destination.Success {
		return handshakeFailed(out, fmt.Sprintf("OPTIONS answered %d; the receiver must answer 200 with %s", out.StatusCode, HeaderAllowedOrigin)), false
	}
	allowedOrigin := strings.TrimSpace(answer.Get(HeaderAllowedOrigin))
	if allowedOrigin != "*" && !strings.EqualFold(allowedOrigin, h.origin) {
		if allowedOrigin == "" {
			return handshakeFailed(out, "the answer has no "+HeaderAllowedOrigin+" header"), false
		}
		return handshakeFailed(out, fmt.Sprintf("%s is %q, not %q or \"*\"", HeaderAllowedOrigin, allowedOrigin, h.origin)), false
	}
	allowed, err := parseAllowedRate(answer.Get(HeaderAllowedRate))
	if err != nil {
		return handshakeFailed(out, err.Error()), false
	}
	h.mu.Lock()
	h.until, h.allowed = time.Now().Add(h.ttl), allowed
	h.mu.Unlock()
	return destination.Outcome{}, true
}

// parseAllowedRate reads WebHook-Allowed-Rate: absent or "*" is no limit, otherwise a number of
// requests per minute, returned per second. "0" is no limit too: the official Go SDK's handler
// sends it when its user set no rate (a receiver that wants nothing refuses the handshake).
func parseAllowedRate(v string) (float64, error) {
	v = strings.TrimSpace(v)
	if v == "" || v == "*" || v == "0" {
		return 0, nil
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return 0, fmt.Errorf("%s %q is not a positive number of requests per minute or \"*\"", HeaderAllowedRate, v)
	}
	return n / 60, nil
}

// handshakeFailed is the outcome of a handshake the receiver refused: retryable (the receiver
// may be configured meanwhile; a Retry-After it sent with 429 or 503 is kept), nothing delivered.
func handshakeFailed(out destination.Outcome, reason string) destination.Outcome {
	out.Class, out.ErrorKind, out.Error = destination.Retryable, destination.KindHandshake, "cloudevents handshake: "+reason
	return out
}
