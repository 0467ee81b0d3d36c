// Package webhook signs and verifies webhooks according to the Standard
// Webhooks specification (https://www.standardwebhooks.com), so that Herald
// and the services receiving its deliveries agree on one wire format.
//
// # Wire format
//
// Every delivery carries three headers:
//
//	webhook-id:        msg_2KWPBgLlAfxdpx2AI54pPJ85f4W
//	webhook-timestamp: 1614265330
//	webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
//
// The timestamp is in Unix seconds. The signed content is the id, the
// timestamp and the raw request body joined by dots:
//
//	msg_2KWPBgLlAfxdpx2AI54pPJ85f4W.1614265330.{"type":"..."}
//
// The signature header holds one or more space-separated entries of the form
// "version,base64(signature)". Several entries appear while a secret is being
// rotated; a receiver accepts the delivery if any entry verifies with any key
// it holds and ignores versions it does not know. Two versions exist:
//
//   - v1: HMAC-SHA256 keyed with a symmetric secret written "whsec_" followed
//     by the standard base64 of 24 to 64 random bytes.
//   - v1a: Ed25519. The sender holds a signing key written "whsk_" followed by
//     the base64 of the 64-byte private key; receivers hold only the public
//     key, written "whpk_" followed by the base64 of its 32 bytes.
//
// Receivers also reject deliveries whose timestamp is more than a tolerance
// (DefaultTolerance) away from their clock, in either direction, which limits
// how long a captured request can be replayed.
//
// Verifier additionally understands the svix-id, svix-timestamp and
// svix-signature headers that Svix sends, since the format is otherwise the
// same.
package webhook
