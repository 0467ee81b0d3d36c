package dispatch

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/expr"
	"github.com/heraldhq/herald/internal/store"
)

// transformFunc turns an event's envelope into the body an endpoint receives; nil sends the
// envelope as published.
type transformFunc func(ctx context.Context, payload []byte) ([]byte, error)

// transformFor compiles the endpoint's transformation, if it has one.
func (d *Dispatcher) transformFor(ep *store.Endpoint) (transformFunc, error) {
	if ep.Options.Transform == "" {
		return nil, nil
	}
	t, err := d.exprs.Transform(ep.Options.Transform)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, payload []byte) ([]byte, error) {
		in, err := expr.NewInput(payload)
		if err != nil {
			return nil, err
		}
		return t.Apply(ctx, in)
	}, nil
}

// body is what one event's attempt sends: its envelope, or the endpoint's transformation of it.
func (s laneSnapshot) body(ctx context.Context, c store.Claimed) ([]byte, error) {
	if s.transform == nil {
		return c.Payload, nil
	}
	return s.transform(ctx, c.Payload)
}

// transformFailed is the outcome of an attempt whose transformation failed: nothing was sent.
// It is permanent: a few tries (the transformation may be corrected meanwhile), then the
// delivery is dead and can be replayed.
func transformFailed(err error) destination.Outcome {
	return destination.Outcome{Class: destination.Permanent, ErrorKind: destination.KindTransform, Error: "transformation failed: " + err.Error()}
}

// header is an attempt's headers: the endpoint's own, then the signature of body in the
// endpoint's scheme, with msgID as the message id (an event's id, or a batch's), and
// Content-Type: application/json (the body is an envelope, a transformation's JSON or a batch's
// array; endpoints cannot set it), which a broker type carries as its content-type header.
// format holds the headers the endpoint's format sets (render): they replace those above.
func (s laneSnapshot) header(msgID string, body []byte, format http.Header, now time.Time) http.Header {
	h := make(http.Header, len(s.ep.Headers)+5+len(format))
	for k, v := range s.ep.Headers {
		h.Set(k, v)
	}
	h.Set("Content-Type", contentTypeJSON)
	for k, v := range format {
		h[k] = v
	}
	switch s.ep.Options.Signature {
	case store.SignatureGitHub:
		// GitHub's X-Hub-Signature-256: HMAC-SHA256 of the body, hex, keyed with the secret
		// string as it is. No timestamp is signed, so the delivery id is what a receiver
		// remembers to refuse replays.
		h.Set("X-Herald-Delivery", msgID)
		for _, key := range s.keys {
			h.Add("X-Hub-Signature-256", "sha256="+hmacHex(key, body))
		}
	case store.SignatureStripe:
		// Stripe's Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">, one v1 per
		// active secret, keyed with the whole secret string (whsec_ included), as Stripe does.
		ts := strconv.FormatInt(now.Unix(), 10)
		var b strings.Builder
		b.WriteString("t=" + ts)
		signed := make([]byte, 0, len(ts)+1+len(body))
		signed = append(append(append(signed, ts...), '.'), body...)
		for _, key := range s.keys {
			b.WriteString(",v1=" + hmacHex(key, signed))
		}
		h.Set("Stripe-Signature", b.String())
		h.Set("X-Herald-Delivery", msgID)
	default:
		s.signer.SetHeaders(h, msgID, now, body)
	}
	return h
}

func hmacHex(key string, msg []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(msg)
	return hex.EncodeToString(m.Sum(nil))
}
