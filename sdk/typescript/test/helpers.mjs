// Test helpers: a receiver of webhooks (a real node http server) and polling with a deadline.
import http from "node:http";

/** Starts an http server on 127.0.0.1 that records every request (raw body and headers) and answers 204. */
export async function startReceiver() {
  const received = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      received.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(204).end();
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () => new Promise((r) => server.close(r)),
  };
}

/** Polls check until it returns a value other than undefined, or fails after withinMs. */
export async function eventually(what, check, withinMs = 20_000) {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts a forwarding proxy to target that, for the first request matching drop, forwards it,
 * reads the whole answer and then cuts the client's connection: the request took effect, the
 * client never learns it (a lost acknowledgement). Records the bodies of the matching requests.
 */
export async function startLossyProxy(target, drop) {
  const seen = [];
  let dropped = false;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks);
      const matches = drop(req);
      if (matches) seen.push(body.toString("utf8"));
      const headers = { ...req.headers };
      delete headers.host;
      delete headers["content-length"];
      const resp = await fetch(target + req.url, { method: req.method, headers, body: body.length ? body : undefined });
      const answer = Buffer.from(await resp.arrayBuffer());
      if (matches && !dropped) {
        dropped = true;
        req.socket.destroy();
        return;
      }
      res.writeHead(resp.status, { "content-type": resp.headers.get("content-type") ?? "application/json" }).end(answer);
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    seen,
    close: () => new Promise((r) => server.close(r)),
  };
}
