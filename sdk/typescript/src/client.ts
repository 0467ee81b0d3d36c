import { randomUUID } from "node:crypto";
import type { components, paths } from "./generated/openapi.js";
import { HeraldProblem, isRetryableStatus } from "./problem.js";

export type Schemas = components["schemas"];
export type EventInput = Schemas["EventInput"];
export type Published = Schemas["Published"];

/** Options of a Herald client. */
export interface HeraldOptions {
  /** The server, e.g. "http://127.0.0.1:8080" (no trailing /v1). */
  baseUrl: string;
  /** An API key: hk_admin_… or hk_tenant_…, or a portal token. */
  apiKey: string;
  /** Attempts after the first for a retryable failure (network error, 408, 429, 502, 503, 504); default 4. */
  retries?: number;
  /** First backoff delay in ms, doubled each retry (with jitter) unless Retry-After says; default 250. */
  backoffMs?: number;
  /** Longest wait between two attempts in ms, Retry-After included; default 10 000. */
  maxBackoffMs?: number;
  /** The fetch to use (default: the global fetch). */
  fetch?: typeof fetch;
}

/** Query parameters of a request; arrays repeat the parameter (state=dead&state=pending). */
export type Query = Record<string, string | number | boolean | Date | readonly (string | number)[] | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  /** Retry retryable failures (default: only for GET, and for publishes, which carry an id). */
  retry?: boolean;
  signal?: AbortSignal;
}

/** The paths with a GET that answers a page ({data, next_cursor}). */
export type ListPath = {
  [P in keyof paths]: paths[P] extends { get: { responses: { 200: { content: { "application/json": { data: unknown[] } } } } } } ? P : never;
}[keyof paths];

type ListGet<P extends ListPath> = paths[P] extends { get: infer G } ? G : never;
/** The item type of a list path. */
export type ListItem<P extends ListPath> = ListGet<P> extends {
  responses: { 200: { content: { "application/json": { data: (infer T)[] } } } };
}
  ? T
  : never;
/** The query parameters of a list path, without cursor (the iterator follows it). */
export type ListQuery<P extends ListPath> = ListGet<P> extends { parameters: { query?: infer Q } }
  ? Omit<NonNullable<Q>, "cursor">
  : never;

/** A client of the Herald API. Every error answer is thrown as a HeraldProblem. */
export class Herald {
  readonly baseUrl: string;
  private readonly apiKey: string;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly fetchFn: typeof fetch;

  constructor(opts: HeraldOptions) {
    if (!opts.baseUrl) throw new TypeError("baseUrl is required");
    if (!opts.apiKey) throw new TypeError("apiKey is required");
    this.baseUrl = opts.baseUrl.replace(/\/+$/, "");
    this.apiKey = opts.apiKey;
    this.retries = opts.retries ?? 4;
    this.backoffMs = opts.backoffMs ?? 250;
    this.maxBackoffMs = opts.maxBackoffMs ?? 10_000;
    this.fetchFn = opts.fetch ?? globalThis.fetch;
  }

  /**
   * Publishes one event to a tenant. The event gets an id here if it has none, and every retry
   * sends that same id: Herald stores an id once, so a retry after a lost answer returns the
   * original event (duplicate: true) and delivers nothing twice.
   */
  async publish(tenant: string, event: EventInput, opts: { signal?: AbortSignal } = {}): Promise<Published> {
    const body: EventInput = { ...event, id: event.id ?? newEventId() };
    return this.request<Published>("POST", `/v1/tenants/${enc(tenant)}/events`, { body, retry: true, signal: opts.signal });
  }

  /** Publishes up to 1000 events at once (all or nothing), each with an id kept across retries. */
  async publishBatch(tenant: string, events: EventInput[], opts: { signal?: AbortSignal } = {}): Promise<Published[]> {
    const body = { events: events.map((e) => ({ ...e, id: e.id ?? newEventId() })) };
    const out = await this.request<Schemas["PublishedBatch"]>("POST", `/v1/tenants/${enc(tenant)}/events/batch`, {
      body,
      retry: true,
      signal: opts.signal,
    });
    return out.events;
  }

  /**
   * Iterates over every item of a list, following next_cursor page by page:
   *
   *   for await (const d of herald.paginate("/v1/tenants/{tenant}/deliveries", { tenant: "acme" }, { state: ["dead"] })) …
   */
  async *paginate<P extends ListPath>(
    path: P,
    pathParams: Record<string, string> = {},
    query: ListQuery<P> = {} as ListQuery<P>,
    opts: { signal?: AbortSignal } = {},
  ): AsyncGenerator<ListItem<P>, void, undefined> {
    const url = fillPath(path, pathParams);
    let cursor: string | undefined;
    do {
      const page = await this.request<{ data: ListItem<P>[]; next_cursor?: string }>("GET", url, {
        query: { ...(query as Query), cursor },
        signal: opts.signal,
      });
      yield* page.data;
      cursor = page.next_cursor || undefined;
    } while (cursor);
  }

  /**
   * Makes one API request and decodes its JSON answer (undefined for 204). Retries retryable
   * failures when opts.retry (default: GET only), waiting as Retry-After says or backing off.
   */
  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      if (v === undefined) continue;
      for (const x of Array.isArray(v) ? v : [v]) url.searchParams.append(k, x instanceof Date ? x.toISOString() : String(x));
    }
    const retry = opts.retry ?? method === "GET";
    const headers: Record<string, string> = { Authorization: `Bearer ${this.apiKey}`, Accept: "application/json" };
    let payload: string | undefined;
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(opts.body);
    }
    for (let attempt = 0; ; attempt++) {
      let resp: Response;
      try {
        resp = await this.fetchFn(url, { method, headers, body: payload, signal: opts.signal });
      } catch (err) {
        // The request may have reached the server: only a request that is safe to repeat is.
        if (!retry || attempt >= this.retries || opts.signal?.aborted) throw err;
        await sleep(this.backoff(attempt), opts.signal);
        continue;
      }
      if (resp.ok) {
        if (resp.status === 204) return undefined as T;
        const text = await resp.text();
        return (text ? JSON.parse(text) : undefined) as T;
      }
      const problem = await toProblem(resp);
      if (!retry || attempt >= this.retries || !isRetryableStatus(resp.status)) throw problem;
      await sleep(this.backoff(attempt, problem.retryAfter), opts.signal);
    }
  }

  private backoff(attempt: number, retryAfter?: number): number {
    if (retryAfter !== undefined) return Math.min(retryAfter * 1000, this.maxBackoffMs);
    const d = this.backoffMs * 2 ** attempt;
    return Math.min(d / 2 + Math.random() * (d / 2), this.maxBackoffMs);
  }
}

/** A new event id: what publish gives an event without one. */
export function newEventId(): string {
  return "evt_" + randomUUID().replaceAll("-", "");
}

async function toProblem(resp: Response): Promise<HeraldProblem> {
  const ra = resp.headers.get("Retry-After");
  const retryAfter = ra !== null && /^\d+$/.test(ra.trim()) ? Number(ra) : undefined;
  const text = await resp.text().catch(() => "");
  let doc: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === "object") doc = parsed as Record<string, unknown>;
  } catch {
    // Not JSON (a proxy's page): the status says what happened.
    doc = { title: resp.statusText || `HTTP ${resp.status}`, detail: text.slice(0, 200) || undefined };
  }
  return new HeraldProblem(resp.status, doc, retryAfter);
}

function fillPath(path: string, params: Record<string, string>): string {
  return path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const v = params[name];
    if (v === undefined) throw new TypeError(`path parameter ${name} is missing for ${path}`);
    return enc(v);
  });
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}
