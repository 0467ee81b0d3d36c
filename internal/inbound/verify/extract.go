package verify

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// Event is what a provider says about a request beyond its signature: the
// event type, for routing, and the delivery id, for dropping duplicates.
// Either is "" when the request does not carry it.
type Event struct {
	// Type is the provider's event type, such as "pull_request.opened",
	// "invoice.paid" or "orders/create".
	Type string
	// ID identifies the delivery or the event at the provider, stable across
	// the provider's retries, such as GitHub's X-GitHub-Delivery or Stripe's
	// evt_… id. It is the dedup key: for GitHub, Shopify and Twilio, which
	// sign no timestamp, remembering it is the only defence against a
	// replayed request.
	ID string
}

// Event extracts the event type and delivery id of a request by the
// provider's conventions, overridden by the Config's event_* fields. Call it
// after Verify: before, every value is attacker-controlled. A body that is not
// JSON simply yields no payload fields.
//
//	standard_webhooks  type: payload "type"             id: webhook-id (or svix-id)
//	stripe             type: payload "type"             id: payload "id" (evt_…)
//	github             type: X-GitHub-Event + "." + payload "action" when present ("pull_request.opened")
//	                                                    id: X-GitHub-Delivery
//	shopify            type: X-Shopify-Topic            id: X-Shopify-Event-Id, else X-Shopify-Webhook-Id
//	slack              type: payload "event.type", else "type"
//	                                                    id: payload "event_id"
//	twilio             type: -                          id: I-Twilio-Idempotency-Token
//	hmac, basic, bearer, none: only what the Config names.
//
// A form-encoded body with a "payload" field (GitHub's form content type,
// Slack's interactivity) is read as that field's JSON; any other form body
// as an object of its fields' first values, so a path "MessageStatus" reads
// a Twilio status callback's field.
func (v *Verifier) Event(req *Request) Event {
	c := &v.cfg
	p := &payload{req: req}
	var ev Event
	switch c.Scheme {
	case SchemeStandardWebhooks:
		ev.Type = p.str("type")
		ev.ID = header(req.Header, "webhook-id")
		if ev.ID == "" {
			ev.ID = header(req.Header, "svix-id")
		}
	case SchemeStripe:
		ev.Type = p.str("type")
		ev.ID = p.str("id")
	case SchemeGitHub:
		if ev.Type = header(req.Header, "X-GitHub-Event"); ev.Type != "" {
			if action := p.str("action"); action != "" {
				ev.Type += "." + action
			}
		}
		ev.ID = header(req.Header, "X-GitHub-Delivery")
	case SchemeShopify:
		ev.Type = header(req.Header, "X-Shopify-Topic")
		// Shopify names X-Shopify-Event-Id as the duplicate detector
		// (https://shopify.dev/docs/apps/build/webhooks/ignore-duplicates).
		ev.ID = header(req.Header, "X-Shopify-Event-Id")
		if ev.ID == "" {
			ev.ID = header(req.Header, "X-Shopify-Webhook-Id")
		}
	case SchemeSlack:
		if ev.Type = p.str("event.type"); ev.Type == "" {
			ev.Type = p.str("type")
		}
		ev.ID = p.str("event_id")
	case SchemeTwilio:
		ev.ID = header(req.Header, "I-Twilio-Idempotency-Token")
	}
	if c.EventTypeHeader != "" || c.EventTypePath != "" {
		ev.Type = pick(req, p, c.EventTypeHeader, c.EventTypePath)
	}
	if c.EventIDHeader != "" || c.EventIDPath != "" {
		ev.ID = pick(req, p, c.EventIDHeader, c.EventIDPath)
	}
	// Headers are bounded like payload fields: the values reach the store
	// and the logs.
	if len(ev.Type) > maxEventField {
		ev.Type = ""
	}
	if len(ev.ID) > maxEventField {
		ev.ID = ""
	}
	return ev
}

// pick reads a configured header, else a configured path: the header wins
// when both are set and it is present.
func pick(req *Request, p *payload, headerName, path string) string {
	if headerName != "" {
		if s := header(req.Header, headerName); s != "" {
			return s
		}
	}
	if path != "" {
		return p.str(path)
	}
	return ""
}

// maxEventField bounds an extracted value: ids and types are short, and the
// values end up in the store and in logs.
const maxEventField = 256

// payload decodes a request's body at most once, on first use.
type payload struct {
	req    *Request
	parsed bool
	doc    any
}

func (p *payload) document() any {
	if p.parsed {
		return p.doc
	}
	p.parsed = true
	body := p.req.Body
	if isForm(p.req.Header) || p.req.Form != nil {
		form, err := p.req.form()
		if err != nil || form == nil {
			return nil
		}
		if js, ok := form["payload"]; ok && len(js) > 0 {
			body = []byte(js[0])
		} else {
			obj := make(map[string]any, len(form))
			for k, vs := range form {
				if len(vs) > 0 {
					obj[k] = vs[0]
				}
			}
			p.doc = obj
			return p.doc
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if dec.Decode(&doc) == nil {
		p.doc = doc
	}
	return p.doc
}

// str follows a dotted path ("data.object.id"; numeric segments index
// arrays) and returns the string or number there, or "".
func (p *payload) str(path string) string {
	cur := p.document()
	for seg := range strings.SplitSeq(path, ".") {
		switch node := cur.(type) {
		case map[string]any:
			cur = node[seg]
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(node) {
				return ""
			}
			cur = node[i]
		default:
			return ""
		}
	}
	var s string
	switch v := cur.(type) {
	case string:
		s = v
	case json.Number:
		s = v.String()
	default:
		return ""
	}
	if len(s) > maxEventField {
		return ""
	}
	return s
}

// PayloadValue reads a dotted path ("data.object.id"; numeric segments index
// arrays) in a request's payload, by the same rules as the Config's
// event_*_path fields: a JSON body, a form body's "payload" field as JSON, or
// any other form body as an object of its fields' first values. It returns the
// string or number found there, or "" when there is none or it is longer than
// 256 bytes. Like Event, its answer means something only after Verify.
func PayloadValue(req *Request, path string) string {
	p := &payload{req: req}
	return p.str(path)
}
