package inbound

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/httpheader"
	"github.com/heraldhq/herald/internal/inbound/verify"
	"github.com/heraldhq/herald/internal/redact"
	"github.com/heraldhq/herald/internal/store"
)

// DefaultEventType is the type of an event whose request names none and whose source sets no
// default.
const DefaultEventType = "webhook.received"

// eventType names the event a request becomes.
func eventType(set *store.SourceSettings, providerType string) string {
	t := providerType
	if t == "" {
		t = set.DefaultEventType
	}
	if t == "" {
		t = DefaultEventType
	}
	return set.EventTypePrefix + t
}

// Origin is what a forwarded event says of the request it came from, in its envelope's
// "inbound" object (see event.Origin).
type Origin = event.Origin

// buildEvent makes the event a verified request becomes: a fresh id, and the event package's
// envelope, the one the API builds for published events, so that an endpoint cannot tell
// forwarded events from published ones; data is the sender's body byte for byte.
func buildEvent(tenantID, sourceID, typ string, data []byte, now time.Time, origin Origin) (*store.Event, error) {
	id := event.NewID(now)
	env := event.Envelope{ID: id, Type: typ, Timestamp: now, Data: data, Source: sourceID}
	if origin != (Origin{}) {
		env.Inbound = &origin
	}
	payload, err := env.EncodeVerbatim()
	if err != nil {
		return nil, err
	}
	return &store.Event{ID: id, TenantID: tenantID, Type: typ, Timestamp: now, Source: sourceID, Payload: payload, CreatedAt: now}, nil
}

// eventData is the event's data for a request body: the body itself when it is JSON; a
// form-encoded body as an object of its fields (a string, or an array of strings for a repeated
// field); anything else as {"content_type", "body"}, or "body_base64" when the body is not UTF-8
// text.
func eventData(header http.Header, body []byte) []byte {
	trimmed := bytes.TrimSpace(body)
	// Valid UTF-8 too: json.Valid lets invalid bytes through inside strings, which a JSON column
	// would refuse and a receiver could not decode.
	if len(trimmed) > 0 && utf8.Valid(trimmed) && json.Valid(trimmed) {
		return trimmed
	}
	var ct string
	if vs := httpheader.Values(header, "Content-Type"); len(vs) > 0 {
		ct = vs[0]
	}
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "application/x-www-form-urlencoded" && utf8.Valid(body) {
		if form, err := url.ParseQuery(string(body)); err == nil {
			obj := make(map[string]any, len(form))
			for k, vs := range form {
				if len(vs) == 1 {
					obj[k] = vs[0]
				} else {
					obj[k] = vs
				}
			}
			if doc, err := event.Marshal(obj); err == nil {
				return doc
			}
		}
	}
	doc := map[string]string{"content_type": ct}
	if utf8.Valid(body) {
		doc["body"] = string(body)
	} else {
		doc["body_base64"] = base64.StdEncoding.EncodeToString(body)
	}
	out, err := event.Marshal(doc)
	if err != nil {
		// A map of strings always encodes; keep the event well formed regardless.
		return []byte(`{}`)
	}
	return out
}

// maxDedupKey bounds a stored dedup key; longer values are stored as their hash.
const maxDedupKey = 256

// DedupBy is the key a source deduplicates on: its dedup.by, or when it sets none, the default of
// its verification: body_hash for a scheme that signs the body but no timestamp (github, shopify,
// twilio, hmac without timestamp_header), whose delivery id is an unsigned header that a
// replayed request can change, and provider_id for the others.
func DedupBy(set *store.SourceSettings) string {
	if set.Dedup.By != "" {
		return set.Dedup.By
	}
	var vc verify.Config
	if err := json.Unmarshal(set.Verification, &vc); err != nil {
		return store.DedupProviderID
	}
	return defaultDedupBy(&vc)
}

func defaultDedupBy(vc *verify.Config) string {
	if vc.SignsBodyOnly() {
		return store.DedupBodyHash
	}
	return store.DedupProviderID
}

// dedupKey is the value a request is deduplicated on by the source's rule (its By resolved, see
// DedupBy), or "" for none. A header that carries a credential or a signature (secret) is keyed
// by its hash: the key is stored and shown in clear.
func dedupKey(d store.Dedup, req *verify.Request, ev verify.Event, secret []string) string {
	var key string
	switch d.By {
	case "", store.DedupProviderID:
		key = ev.ID
	case store.DedupHeader:
		if vs := httpheader.Values(req.Header, d.Header); len(vs) > 0 {
			key = strings.TrimSpace(vs[0])
		}
		if key != "" && isSecret(d.Header, secret) {
			sum := sha256.Sum256([]byte(key))
			return "sha256:" + hex.EncodeToString(sum[:])
		}
	case store.DedupJSONPath:
		key = verify.PayloadValue(req, d.Path)
	case store.DedupBodyHash:
		sum := sha256.Sum256(req.Body)
		return hex.EncodeToString(sum[:])
	case store.DedupNone:
		return ""
	}
	if len(key) > maxDedupKey || !utf8.ValidString(key) {
		sum := sha256.Sum256([]byte(key))
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	return key
}

// isCredential reports whether a header's value is replaced before any request is stored: these
// carry credentials, never needed to understand a delivery. The headers a source's verification
// reads a credential or signature from (verify.Config.SecretHeaders) are replaced too.
func isCredential(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Authorization", "Proxy-Authorization", "Cookie":
		return true
	}
	return false
}

// isSecret reports whether a header's value is never stored: a credential header, or one named in
// secret (matched without regard to case).
func isSecret(name string, secret []string) bool {
	return isCredential(name) || slices.ContainsFunc(secret, func(s string) bool { return strings.EqualFold(s, name) })
}

// Redacted is what a credential header's value becomes in a stored request.
const Redacted = redact.Marker

// storedHeaders copies h with the values of its secret headers (isSecret) replaced, and any other
// value that reveals one of the source's secrets in clear (a token sent in another header than the
// one configured).
func storedHeaders(h http.Header, secret []string, reveals func(string) bool) http.Header {
	out := h.Clone()
	if out == nil {
		out = http.Header{}
	}
	for name, vs := range out {
		all := isSecret(name, secret)
		for i, v := range vs {
			if all || reveals(v) {
				vs[i] = Redacted
			}
		}
	}
	return out
}

// storedQuery is a request's query string with each parameter that reveals one of the source's
// secrets in clear replaced: no scheme reads one there, but a sender may put it there anyway.
func storedQuery(raw string, reveals func(string) bool) string {
	if !revealsEscaped(raw, reveals) {
		return raw
	}
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		if !revealsEscaped(p, reveals) {
			continue
		}
		key, _, _ := strings.Cut(p, "=")
		if revealsEscaped(key, reveals) {
			key = url.QueryEscape(Redacted)
		}
		parts[i] = key + "=" + url.QueryEscape(Redacted)
	}
	return strings.Join(parts, "&")
}

// revealsEscaped applies reveals to s as sent and URL-decoded.
func revealsEscaped(s string, reveals func(string) bool) bool {
	if reveals(s) {
		return true
	}
	u, err := url.QueryUnescape(s)
	return err == nil && u != s && reveals(u)
}
