package destination

import "time"

// Class tells the dispatcher what to do next with a delivery.
type Class string

const (
	Success   Class = "success"   // delivered: 2xx, or the broker acknowledged the message
	Retryable Class = "retryable" // network errors, timeouts, 408, 425, 429, 5xx, broker busy or unreachable
	Permanent Class = "permanent" // other 4xx, 3xx (not followed), blocked destination, invalid URL, no such stream/topic, too large, denied
	Gone      Class = "gone"      // 410: the caller disables the endpoint
)

// Stable ErrorKind values. They are stored with attempts and shown to tenants, so never rename one.
const (
	KindTimeout         = "timeout"
	KindConnRefused     = "connection_refused"
	KindConnFailed      = "connection_failed" // dial failed some other way: unreachable network or host
	KindConnReset       = "connection_reset"
	KindDNS             = "dns"
	KindTLS             = "tls"
	KindBlocked         = "blocked_destination"
	KindInvalidURL      = "invalid_url"
	KindRedirect        = "redirect"
	KindHTTPStatus      = "http_status"
	KindInvalidResponse = "invalid_response"
	KindBodyTimeout     = "body_timeout"
	KindCanceled        = "canceled" // the caller's context was canceled (shutdown), not the receiver's fault
	// KindTransform: the endpoint's transformation failed on the event, so nothing was sent.
	KindTransform = "transform_failed"

	// KindAuth: Herald could not authenticate to the receiver: the OAuth2 token URL refused
	// the client or failed, or the receiver answered 401 again with a fresh token. Counted by
	// the breaker like any failure.
	KindAuth = "auth_failed"
	// KindProxy: the outbound proxy refused the connection or failed (CONNECT answered non-2xx,
	// SOCKS5 error), or could not be reached.
	KindProxy = "proxy_failed"
	// KindHandshake: the CloudEvents abuse-protection handshake (OPTIONS with
	// WebHook-Request-Origin) was refused or failed, so nothing was delivered.
	KindHandshake = "handshake_failed"

	// Broker destinations' kinds, beside the connection kinds above (which they share).

	// KindNoRoute: the broker has no such stream, subject, exchange, queue or topic, or it could
	// route the message nowhere (RabbitMQ's mandatory flag). Permanent.
	KindNoRoute = "no_route"
	// KindTooLarge: the broker refuses the message for its size. Permanent.
	KindTooLarge = "message_too_large"
	// KindDenied: the broker refused the credentials or the operation. Permanent.
	KindDenied = "access_denied"
	// KindBrokerBusy: the broker is alive but did not take the message now (flow control, a full
	// stream, a negative acknowledgement, no leader). Retryable.
	KindBrokerBusy = "broker_busy"
	// KindBrokerError: the broker answered with an error not covered above. Retryable unless the
	// broker says it is permanent.
	KindBrokerError = "broker_error"
)

// Outcome is the record of one attempt.
type Outcome struct {
	Class      Class
	StatusCode int           // HTTP status; 0 when no response, and for brokers
	Latency    time.Duration // from Send's start until the answer was read (or the attempt failed)
	Response   []byte        // first MaxResponseBytes of the body; for a broker, what its acknowledgement said (e.g. the stream sequence), if anything
	// ErrorKind is "" on a clean success, otherwise one of the Kind constants. A Success can carry
	// "body_timeout" (headers said 2xx, then the body stalled); see httpsend.Send.
	ErrorKind  string
	Error      string        // human-readable reason, e.g. "status 503" or "stream \"orders\" not found"
	RetryAfter time.Duration // from Retry-After on 429/503, capped at 24h; 0 if absent
}
