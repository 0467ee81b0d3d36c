import { createPublicKey, verify as cryptoVerify, type KeyObject } from "node:crypto";
import { Webhook, WebhookVerificationError } from "standardwebhooks";

// v1 (HMAC-SHA256, whsec_ secrets) is verified by the official Standard Webhooks library,
// re-exported as it is. It does not verify v1a (Ed25519, whpk_ public keys), which Herald signs
// for endpoints with signature_scheme "ed25519": Ed25519Verifier does, with node:crypto, by the
// same rules (signed content id.timestamp.body, ±5 minutes, any matching entry of the header).
export { Webhook, WebhookVerificationError };

/** Seconds a webhook-timestamp may be away from now, as in the Standard Webhooks libraries. */
export const TIMESTAMP_TOLERANCE_SECONDS = 5 * 60;

/** Request headers as Node (IncomingHttpHeaders), fetch (Headers) or a plain object give them. */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

const publicKeyPrefix = "whpk_";

/** Verifies Herald's v1a (Ed25519) signatures with an endpoint's whpk_ public key. */
export class Ed25519Verifier {
  private readonly key: KeyObject;

  /** publicKey is the endpoint's whpk_… key (GET …/endpoints/{id}/secret, or the endpoint's public_key). */
  constructor(publicKey: string) {
    if (!publicKey.startsWith(publicKeyPrefix)) {
      throw new TypeError("not an Ed25519 public key: expected whpk_ followed by base64");
    }
    const raw = Buffer.from(publicKey.slice(publicKeyPrefix.length), "base64");
    if (raw.length !== 32) throw new TypeError(`an Ed25519 public key has 32 bytes, this one ${raw.length}`);
    this.key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" });
  }

  /**
   * Checks the webhook's v1a signature and timestamp; returns the parsed JSON payload, or
   * throws WebhookVerificationError. payload must be the raw body, byte for byte.
   */
  verify(payload: string | Uint8Array, headers: WebhookHeaders, now: Date = new Date()): unknown {
    const { id, timestamp, signature } = requiredHeaders(headers);
    const ts = Number(timestamp);
    if (!/^\d+$/.test(timestamp) || !Number.isSafeInteger(ts)) throw new WebhookVerificationError("Invalid Signature Headers");
    const nowSec = Math.floor(now.getTime() / 1000);
    if (ts < nowSec - TIMESTAMP_TOLERANCE_SECONDS) throw new WebhookVerificationError("Message timestamp too old");
    if (ts > nowSec + TIMESTAMP_TOLERANCE_SECONDS) throw new WebhookVerificationError("Message timestamp too new");
    const body = typeof payload === "string" ? Buffer.from(payload, "utf8") : Buffer.from(payload);
    const signed = Buffer.concat([Buffer.from(`${id}.${timestamp}.`, "utf8"), body]);
    for (const entry of signature.split(" ")) {
      const [version, sig] = entry.split(",", 2);
      if (version !== "v1a" || !sig) continue;
      const raw = Buffer.from(sig, "base64");
      if (raw.length === 64 && cryptoVerify(null, signed, this.key, raw)) {
        return JSON.parse(body.toString("utf8"));
      }
    }
    throw new WebhookVerificationError("No matching signature found");
  }
}

/**
 * Verifies a webhook from Herald with the endpoint's key, whichever its scheme: a whsec_ secret
 * (v1, by the official library) or a whpk_ public key (v1a). Returns the parsed payload.
 */
export function verifyWebhook(key: string, payload: string | Uint8Array, headers: WebhookHeaders): unknown {
  if (key.startsWith(publicKeyPrefix)) return new Ed25519Verifier(key).verify(payload, headers);
  const h = requiredHeaders(headers);
  return new Webhook(key).verify(payload, {
    "webhook-id": h.id,
    "webhook-timestamp": h.timestamp,
    "webhook-signature": h.signature,
  });
}

function requiredHeaders(headers: WebhookHeaders): { id: string; timestamp: string; signature: string } {
  const get = (name: string): string | undefined => {
    if (typeof (headers as Headers).get === "function") return (headers as Headers).get(name) ?? undefined;
    const rec = headers as Record<string, string | string[] | undefined>;
    for (const [k, v] of Object.entries(rec)) {
      if (k.toLowerCase() === name) return Array.isArray(v) ? v.join(" ") : v;
    }
    return undefined;
  };
  const id = get("webhook-id");
  const timestamp = get("webhook-timestamp");
  const signature = get("webhook-signature");
  if (!id || !timestamp || !signature) throw new WebhookVerificationError("Missing required headers");
  return { id, timestamp, signature };
}
