// Herald's TypeScript SDK: the API's types (generated from its OpenAPI document), a small client
// (idempotent publish with retries, problem documents as HeraldProblem, pagination) and webhook
// verification (v1 by the official standardwebhooks library, v1a Ed25519 here).
export { Herald, newEventId } from "./client.js";
export type { HeraldOptions, RequestOptions, Query, ListPath, ListItem, ListQuery, Schemas, EventInput, Published } from "./client.js";
export { HeraldProblem, isRetryableStatus } from "./problem.js";
export type { ProblemError } from "./problem.js";
export { Webhook, WebhookVerificationError, Ed25519Verifier, verifyWebhook, TIMESTAMP_TOLERANCE_SECONDS } from "./webhooks.js";
export type { WebhookHeaders } from "./webhooks.js";
export type { paths, components, operations } from "./generated/openapi.js";
