// Package verify checks that a webhook received on a source really comes
// from the sender configured for it, exactly as each sender documents its
// signature: which headers carry it, which bytes are signed, the algorithm,
// the encoding, how the secret is turned into a key, and how old a signed
// timestamp may be.
//
// # Use
//
// A source's verification settings are a Config. Validate reports every
// invalid field by name, for the API to return as a 422 problem; New
// validates too and compiles the Config into a Verifier, which is immutable
// and safe for concurrent use. For each incoming request, build a Request from
// the raw body (never re-encoded JSON) and call Verify:
//
//	v, err := verify.New(verify.Config{Scheme: verify.SchemeGitHub, Secrets: []string{secret}})
//	...
//	res, err := v.Verify(verify.FromHTTP(r, body))
//	if err != nil {
//		// verify.ReasonOf(err) is missing_signature, bad_signature, stale_timestamp, ...
//	}
//	// res.SecretIndex says which of the configured secrets matched.
//	ev := v.Event(req) // provider's event type and delivery id, for routing and dedup
//
// # Schemes
//
//	scheme             header(s)                                   signed content                  MAC / encoding           key
//	standard_webhooks  webhook-id, webhook-timestamp, -signature   id.timestamp.body               v1 HMAC-SHA256 base64,   base64 of whsec_…
//	                                                                                               v1a Ed25519 base64       whpk_… public key
//	stripe             Stripe-Signature: t=…,v1=…                  t.body                          HMAC-SHA256 hex          whole whsec_… string
//	github             X-Hub-Signature-256: sha256=…               body                            HMAC-SHA256 hex          secret as typed
//	shopify            X-Shopify-Hmac-Sha256                       body                            HMAC-SHA256 base64       client secret as typed
//	slack              X-Slack-Signature: v0=…,                    v0:timestamp:body               HMAC-SHA256 hex          signing secret as typed
//	                   X-Slack-Request-Timestamp
//	twilio             X-Twilio-Signature                          URL + sorted form key+value     HMAC-SHA1 base64         auth token as typed
//	                                                               (JSON: URL with bodySHA256)
//	hmac               configurable                                configurable template           SHA-1/256/512 hex|base64 raw, base64 or hex
//	basic              Authorization: Basic                        -                               constant-time compare    user:password
//	bearer             Authorization: Bearer (or a named header)   -                               constant-time compare    token
//	none               -                                           -                               -                        -
//
// Every scheme accepts several secrets at once so that a sender's secret can
// be rotated without losing deliveries; the Result names the one that
// matched. Schemes with a signed timestamp reject it when it is further than
// the tolerance (default five minutes) from the clock, in the past or in the
// future. Schemes without one (GitHub, Shopify, Twilio) cannot stop a
// captured request from being replayed: only remembering delivery ids can
// (see Event).
//
// Errors never contain secrets, signatures or body bytes, so they are safe to
// log and to return to the sender.
package verify
