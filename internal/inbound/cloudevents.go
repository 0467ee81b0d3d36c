package inbound

import (
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/metrics"
)

// A source answers the CloudEvents abuse-protection handshake ("HTTP 1.1 Web Hooks for Event
// Delivery", section 4.2), so that a sender that validates its delivery target first (Azure
// Event Grid, Herald itself, the CloudEvents SDKs) can deliver to it: OPTIONS on the ingest URL
// with WebHook-Request-Origin is answered 200 with WebHook-Allowed-Origin and
// WebHook-Allowed-Rate (the source's rate limit in requests per minute, rounded down, at least
// 1; "*" when it has none) when the origin is one of the source's cloudevents_origins (or they
// hold "*"). Every other handshake is refused with 403: a source agrees to no sender it was not
// told of, since the handshake is the receiver's consent to be sent events. The source's
// address allowlist and client certificate requirement apply as to any request; nothing is
// stored. WebHook-Request-Callback is not followed (Herald would have to call out to a URL the
// sender chose): the answer is always the synchronous one.

// Handshake headers (the same names Herald sends as a sender, destination/webhook).
const (
	headerRequestOrigin = "WebHook-Request-Origin"
	headerAllowedOrigin = "WebHook-Allowed-Origin"
	headerAllowedRate   = "WebHook-Allowed-Rate"
)

// handshake answers an OPTIONS request on a source's URL.
func (s *Service) handshake(w http.ResponseWriter, r *http.Request, x *exchange, now time.Time) {
	src, ok := s.find(w, r, x, now)
	if !ok {
		return
	}
	w.Header().Set("Allow", "OPTIONS, POST, PUT, PATCH")
	origin := strings.TrimSpace(r.Header.Get(headerRequestOrigin))
	if origin == "" {
		x.outcome = metrics.InboundBadRequest
		writeProblem(w, http.StatusBadRequest, "handshake_without_origin", "OPTIONS on a source is the CloudEvents webhook handshake: it needs "+headerRequestOrigin)
		return
	}
	allowed := slices.Contains(src.settings.CloudEventsOrigins, "*")
	if !allowed {
		allowed = slices.ContainsFunc(src.settings.CloudEventsOrigins, func(o string) bool { return strings.EqualFold(o, origin) })
	}
	if !allowed {
		x.outcome = metrics.InboundForbidden
		s.log.Debug("inbound: cloudevents handshake refused", "tenant", src.tenantID, "source", src.id, "origin", origin)
		writeProblem(w, http.StatusForbidden, "origin_not_allowed", "this source does not accept events from this origin (its cloudevents_origins)")
		return
	}
	x.outcome = metrics.InboundChallenge
	w.Header().Set(headerAllowedOrigin, origin)
	w.Header().Set(headerAllowedRate, allowedRate(src.settings.RateLimit))
	w.WriteHeader(http.StatusOK)
}

// allowedRate is a source's rate limit (per second) as WebHook-Allowed-Rate says it: requests
// per minute, "*" for none.
func allowedRate(perSecond float64) string {
	if perSecond <= 0 {
		return "*"
	}
	return strconv.Itoa(max(1, int(math.Floor(perSecond*60))))
}
