// The SDK against a real Herald (herald serve --dev on a free port): publish, problems,
// pagination, and the signatures of real deliveries to a real receiver.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startHerald } from "../scripts/herald.mjs";
import { startReceiver, startLossyProxy, eventually } from "./helpers.mjs";
import { Herald, HeraldProblem, Webhook, WebhookVerificationError, Ed25519Verifier, verifyWebhook, newEventId } from "../dist/src/index.js";

let server, admin, receiver;
const tenant = "acme";

before(async () => {
  server = await startHerald();
  admin = new Herald({ baseUrl: server.url, apiKey: server.adminKey, backoffMs: 20 });
  receiver = await startReceiver();
  await admin.request("POST", "/v1/tenants", { body: { id: tenant, name: "Acme" } });
  await admin.request("POST", "/v1/event-types", { body: { name: "order.created" } });
  await admin.request("POST", "/v1/event-types", { body: { name: "page.item" } });
});

after(async () => {
  await receiver?.close();
  await server?.stop();
});

test("publish retries a lost answer with the same event id, and the event is stored once", async () => {
  const proxy = await startLossyProxy(server.url, (req) => req.method === "POST" && req.url.endsWith("/events"));
  try {
    const herald = new Herald({ baseUrl: proxy.url, apiKey: server.adminKey, backoffMs: 20 });
    const out = await herald.publish(tenant, { type: "order.created", data: { order: 1 } });
    assert.equal(proxy.seen.length, 2, "one request whose answer was lost, one retry");
    const ids = proxy.seen.map((b) => JSON.parse(b).id);
    assert.equal(ids[0], ids[1], "the retry carries the first attempt's id");
    assert.equal(out.id, ids[0]);
    assert.equal(out.duplicate, true, "the retry found the event the first attempt stored");
    const stored = [];
    for await (const e of admin.paginate("/v1/tenants/{tenant}/events", { tenant })) if (e.id === out.id) stored.push(e);
    assert.equal(stored.length, 1);
  } finally {
    await proxy.close();
  }
});

test("publish keeps an id the caller gives, and a second publish of it is a duplicate", async () => {
  const id = newEventId();
  const first = await admin.publish(tenant, { id, type: "order.created", data: { order: 2 } });
  const again = await admin.publish(tenant, { id, type: "order.created", data: { order: 2 } });
  assert.equal(first.id, id);
  assert.equal(first.duplicate, false);
  assert.equal(again.duplicate, true);
});

test("publishBatch gives each event an id, and publishing the batch again stores nothing twice", async () => {
  const given = newEventId();
  const out = await admin.publishBatch(tenant, [
    { type: "order.created", data: { order: 10 } },
    { id: given, type: "order.created", data: { order: 11 } },
  ]);
  assert.equal(out.length, 2);
  assert.match(out[0].id, /^evt_/);
  assert.equal(out[1].id, given);
  assert.deepEqual(out.map((p) => p.duplicate), [false, false]);
  const again = await admin.publishBatch(tenant, out.map((p, i) => ({ id: p.id, type: "order.created", data: { order: 10 + i } })));
  assert.deepEqual(again.map((p) => [p.id, p.duplicate]), out.map((p) => [p.id, true]));
});

test("an error answer is a HeraldProblem naming the field", async () => {
  await assert.rejects(admin.publish(tenant, { type: "no.such.type", data: {} }), (err) => {
    assert.ok(err instanceof HeraldProblem);
    assert.equal(err.status, 422);
    assert.equal(err.type, "about:blank");
    assert.equal(err.title, "Unprocessable Entity");
    assert.match(err.at("body.type")?.message ?? "", /unknown event type/);
    assert.equal(err.retryable, false);
    return true;
  });
  // An unknown query parameter is refused, not ignored.
  await assert.rejects(admin.request("GET", `/v1/tenants/${tenant}/deliveries`, { query: { status: "dead" } }), (err) => {
    assert.ok(err instanceof HeraldProblem);
    assert.equal(err.status, 422);
    assert.match(err.at("query.status")?.message ?? "", /unknown query parameter/);
    return true;
  });
  await assert.rejects(admin.request("GET", "/v1/tenants/nobody"), (err) => err instanceof HeraldProblem && err.status === 404);
  const bad = new Herald({ baseUrl: server.url, apiKey: "hk_admin_wrong" });
  await assert.rejects(bad.request("GET", "/v1/tenants"), (err) => err instanceof HeraldProblem && err.status === 401);
});

test("paginate follows next_cursor to the last page", async () => {
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push((await admin.publish(tenant, { type: "page.item", data: { i } })).id);
  const seen = [];
  let requests = 0;
  const counting = new Herald({
    baseUrl: server.url,
    apiKey: server.adminKey,
    fetch: (...args) => {
      requests++;
      return fetch(...args);
    },
  });
  for await (const e of counting.paginate("/v1/tenants/{tenant}/events", { tenant }, { event_type: "page.item", limit: 2 })) {
    seen.push(e.id);
  }
  assert.deepEqual(seen.sort(), ids.sort());
  assert.equal(requests, 3, "pages of 2, 2 and 1");
});

// Waits for the delivery of event id at the receiver, under path.
async function deliveryOf(path, id) {
  return eventually(`the delivery of ${id} to ${path}`, () =>
    receiver.received.find((r) => r.path === path && JSON.parse(r.body.toString("utf8")).id === id),
  );
}

test("v1 (HMAC) deliveries verify with the official standardwebhooks library re-exported", async () => {
  const ep = await admin.request("POST", `/v1/tenants/${tenant}/endpoints`, {
    body: { url: receiver.url + "/hmac", event_types: ["order.created"] },
  });
  const secret = await admin.request("GET", `/v1/tenants/${tenant}/endpoints/${ep.id}/secret`);
  assert.match(secret.key, /^whsec_/);
  const pub = await admin.publish(tenant, { type: "order.created", data: { order: 3 } });
  const got = await deliveryOf("/hmac", pub.id);
  assert.match(got.headers["webhook-signature"], /^v1,/);
  const payload = new Webhook(secret.key).verify(got.body, got.headers);
  assert.equal(payload.id, pub.id);
  assert.deepEqual(verifyWebhook(secret.key, got.body, got.headers), payload);
  const tampered = Buffer.from(got.body.toString("utf8").replace('"order":3', '"order":4'));
  assert.throws(() => verifyWebhook(secret.key, tampered, got.headers), WebhookVerificationError);
});

test("v1a (Ed25519) deliveries verify with the SDK's Ed25519Verifier", async () => {
  const ep = await admin.request("POST", `/v1/tenants/${tenant}/endpoints`, {
    body: { url: receiver.url + "/ed25519", event_types: ["order.created"], signature_scheme: "ed25519" },
  });
  const secret = await admin.request("GET", `/v1/tenants/${tenant}/endpoints/${ep.id}/secret`);
  assert.match(secret.key, /^whpk_/);
  assert.equal(secret.key, ep.public_key);
  const pub = await admin.publish(tenant, { type: "order.created", data: { order: 5 } });
  const got = await deliveryOf("/ed25519", pub.id);
  assert.match(got.headers["webhook-signature"], /^v1a,/);
  const v = new Ed25519Verifier(secret.key);
  assert.equal(v.verify(got.body, got.headers).id, pub.id);
  assert.equal(verifyWebhook(secret.key, got.body.toString("utf8"), new Headers(got.headers)).id, pub.id);
  // A changed body, another endpoint's key, an old timestamp: refused.
  const tampered = Buffer.from(got.body.toString("utf8").replace('"order":5', '"order":6'));
  assert.throws(() => v.verify(tampered, got.headers), WebhookVerificationError);
  const other = await admin.request("POST", `/v1/tenants/${tenant}/endpoints`, {
    body: { url: receiver.url + "/other", event_types: ["order.created"], signature_scheme: "ed25519" },
  });
  assert.throws(() => new Ed25519Verifier(other.public_key).verify(got.body, got.headers), WebhookVerificationError);
  const later = new Date((Number(got.headers["webhook-timestamp"]) + 6 * 60) * 1000);
  assert.throws(() => v.verify(got.body, got.headers, later), /too old/);
  // The official JavaScript library has no v1a: it cannot take the key.
  assert.throws(() => new Webhook(secret.key).verify(got.body, got.headers));
});

test("a 429 is retried after its Retry-After, and without retries it is a retryable HeraldProblem", async () => {
  // One publish every 2 s to a tenant, one at once: back-to-back publishes meet the limit.
  const limited = await startHerald({ args: ["--publish-rate", "0.5", "--publish-burst", "1"] });
  try {
    const statuses = [];
    const recording = (...args) =>
      fetch(...args).then((resp) => {
        statuses.push(resp.status);
        return resp;
      });
    const herald = new Herald({ baseUrl: limited.url, apiKey: limited.adminKey, fetch: recording });
    await herald.request("POST", "/v1/tenants", { body: { id: "rl", name: "Rate limited" } });
    await herald.request("POST", "/v1/event-types", { body: { name: "order.created" } });
    const noRetry = new Herald({ baseUrl: limited.url, apiKey: limited.adminKey, retries: 0 });
    let refused;
    for (let i = 0; i < 20 && !refused; i++) {
      await noRetry.publish("rl", { type: "order.created", data: { i } }).catch((err) => {
        refused = err;
      });
    }
    assert.ok(refused instanceof HeraldProblem, "back-to-back publishes meet the limit");
    assert.equal(refused.status, 429);
    assert.equal(refused.retryable, true);
    assert.ok(refused.retryAfter >= 1, `Retry-After ${refused.retryAfter}`);
    statuses.length = 0;
    const ids = [];
    for (let i = 0; i < 2; i++) ids.push((await herald.publish("rl", { type: "order.created", data: { n: i } })).id);
    assert.ok(statuses.includes(429), `statuses ${statuses}: the limit was met`);
    assert.equal(statuses.filter((s) => s === 202).length, 2);
    assert.equal(new Set(ids).size, 2);
  } finally {
    await limited.stop();
  }
});
