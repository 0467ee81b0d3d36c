// Herald dashboard. Plain JavaScript, no framework and no build step: the Go binary embeds this
// file as it is. Every page is built from the REST API (/v1) with the caller's credential, kept in
// this tab's sessionStorage and sent as a Bearer token. The DOM is built with createElement and
// textContent only, never from HTML strings, so data from the API (payloads, responses, names) is
// never parsed as markup; the Content-Security-Policy forbids inline scripts as a second line.
"use strict";

(function () {
  const KEY = "herald.key";
  const TENANT = "herald.tenant";
  const $ = (sel) => document.querySelector(sel);

  // ---------- small DOM helpers ----------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    append(el, children);
    return el;
  }
  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const SVG = "http://www.w3.org/2000/svg";
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    append(el, children);
    return el;
  }
  function page(title, ...children) {
    const main = $("#main");
    main.replaceChildren(h("h1", {}, title));
    append(main, children);
    document.title = title + " · Herald";
  }
  function flash(msg, kind) {
    const f = $("#flash");
    f.textContent = msg;
    f.className = "flash " + (kind || "ok");
    f.hidden = false;
    clearTimeout(flash.t);
    flash.t = setTimeout(() => { f.hidden = true; }, 6000);
  }
  // confirmDialog shows a modal <dialog> and resolves true when confirmed.
  function confirmDialog(text, okLabel) {
    const d = $("#confirm");
    $("#confirm-text").textContent = text;
    $("#confirm-ok").textContent = okLabel || "Confirm";
    return new Promise((resolve) => {
      const done = (v) => () => { d.close(); cleanup(); resolve(v); };
      const ok = done(true), cancel = done(false);
      function cleanup() {
        $("#confirm-ok").removeEventListener("click", ok);
        $("#confirm-cancel").removeEventListener("click", cancel);
      }
      $("#confirm-ok").addEventListener("click", ok);
      $("#confirm-cancel").addEventListener("click", cancel);
      d.showModal();
    });
  }

  // ---------- formatting ----------
  function ago(iso) {
    if (!iso) return "";
    const d = (Date.now() - Date.parse(iso)) / 1000;
    const f = (n, u) => Math.round(n) + " " + u + (Math.round(n) === 1 ? "" : "s");
    const abs = Math.abs(d);
    let t;
    if (abs < 5) return "just now";
    if (abs < 60) t = f(abs, "second");
    else if (abs < 3600) t = f(abs / 60, "minute");
    else if (abs < 86400) t = f(abs / 3600, "hour");
    else t = f(abs / 86400, "day");
    return d >= 0 ? t + " ago" : "in " + t;
  }
  function when(iso) {
    if (!iso) return "—";
    return h("time", { datetime: iso, title: iso }, ago(iso));
  }
  function dur(sec) {
    if (sec < 60) return sec + "s";
    if (sec < 3600) return Math.round(sec / 60) + "m";
    if (sec < 86400) return +(sec / 3600).toFixed(1) + "h";
    return +(sec / 86400).toFixed(1) + "d";
  }
  function plural(n, one, many) { return n + " " + (n === 1 ? one : (many || one + "s")); }
  function pct(n, d) { return d ? (100 * n / d).toFixed(1) + "%" : "—"; }
  function stateBadge(state) { return h("span", { class: "badge state-" + state }, state); }
  function code(text) { return h("code", {}, text); }
  function pretty(v) {
    try { return JSON.stringify(v, null, 2); } catch (e) { return String(v); }
  }
  function fieldRows(pairs) {
    return h("dl", { class: "fields" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  }
  // table lays out rows under headers; numeric lists the columns to align right.
  function table(headers, rows, empty, numeric) {
    if (!rows.length) return h("p", { class: "empty" }, empty || "Nothing here.");
    const num = new Set(numeric || []);
    return h("table", {}, h("thead", {}, h("tr", {}, headers.map((x, i) => h("th", { class: num.has(i) ? "num" : null }, x)))),
      h("tbody", {}, rows));
  }
  // isoFromLocal turns a datetime-local input value into RFC 3339 (UTC).
  function isoFromLocal(v) { return v ? new Date(v).toISOString() : ""; }

  // ---------- API ----------
  const state = { key: sessionStorage.getItem(KEY), me: null, tenant: sessionStorage.getItem(TENANT) };

  class APIError extends Error {
    constructor(status, problem) {
      const extra = (problem.errors || []).map((e) => (e.location ? e.location + ": " : "") + e.message).join("; ");
      super((problem.detail || problem.title || "HTTP " + status) + (extra ? " (" + extra + ")" : ""));
      this.status = status;
      this.errors = problem.errors || [];
    }
  }
  async function api(method, path, body) {
    const opts = { method, headers: { Authorization: "Bearer " + state.key }, credentials: "omit", cache: "no-store" };
    // Reads belong to the page being shown: moving to another page cancels them, so a slow
    // answer for the previous page cannot replace the new one. Changes are never cancelled.
    if (method === "GET" && state.reads) opts.signal = state.reads.signal;
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const resp = await fetch(path, opts);
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text }; }
    if (!resp.ok) {
      if (resp.status === 401 && state.me) {
        signOut("Your credential is no longer valid (revoked, or the portal link expired). Sign in again.");
      }
      throw new APIError(resp.status, data || {});
    }
    return data;
  }
  const t = () => "/v1/tenants/" + encodeURIComponent(state.tenant);
  function qs(params) {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (Array.isArray(v)) v.forEach((x) => x && u.append(k, x));
      else if (v !== undefined && v !== null && v !== "") u.append(k, v);
    }
    const q = u.toString();
    return q ? "?" + q : "";
  }
  // pages fetches up to max items of a list, following next_cursor.
  async function pages(path, params, max) {
    let out = [], cursor = "";
    do {
      const r = await api("GET", path + qs({ ...params, limit: 250, cursor }));
      out = out.concat(r.data);
      cursor = r.next_cursor || "";
    } while (cursor && out.length < max);
    return { items: out.slice(0, max), more: !!cursor || out.length > max };
  }

  // ---------- sign-in, portal links, tenant choice ----------
  function signOut(msg) {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(TENANT);
    state.key = null; state.me = null; state.tenant = null; state.destTypes = null; state.srcTypes = null;
    $("#nav").hidden = true; $("#who").hidden = true;
    location.hash = "#/";
    renderSignIn(msg);
  }
  function renderSignIn(msg) {
    const input = h("input", { type: "password", id: "api-key", name: "key", autocomplete: "off", required: true, placeholder: "hk_admin_… or hk_tenant_…", size: 60 });
    const err = h("p", { class: "error", id: "sign-in-error" }, msg || "");
    const form = h("form", { id: "sign-in", class: "card narrow", onsubmit: async (e) => {
      e.preventDefault();
      state.key = input.value.trim();
      try {
        await start();
      } catch (ex) {
        state.key = null;
        err.textContent = ex.status === 401 ? "That key is not valid (unknown or revoked)." : "Sign-in failed: " + ex.message;
      }
    } },
    h("label", { for: "api-key" }, "API key"), input,
    h("p", { class: "hint" }, "The key stays in this browser tab (sessionStorage) and is sent only to this server's API. An admin key sees every tenant; a tenant key sees its own tenant."),
    h("button", { type: "submit", id: "sign-in-submit" }, "Sign in"), err);
    page("Sign in", form);
    input.focus();
  }
  // start checks the credential and sets up the header for the caller.
  async function start() {
    const me = await api("GET", "/v1/me");
    state.me = me;
    state.destTypes = null;
    state.srcTypes = null;
    // The destination types name endpoints' destinations on every page; a failure here only
    // means the pages that need them ask again.
    try { await destinationTypes(); } catch (e) { /* asked again by the endpoint pages */ }
    sessionStorage.setItem(KEY, state.key);
    $("#nav").hidden = false; $("#who").hidden = false;
    $("#role").textContent = me.portal ? "portal · expires " + ago(me.expires_at) : me.role;
    if (me.role === "tenant") {
      state.tenant = me.tenant_id;
      $("#tenant-pick-label").hidden = true;
      $("#tenant-name").textContent = me.tenant_id;
      $("#portal-link").hidden = true;
    } else {
      const { items } = await pages("/v1/tenants", {}, 1000);
      const sel = $("#tenant-pick");
      sel.replaceChildren(...items.map((x) => h("option", { value: x.id }, x.name + " (" + x.id + ")")));
      if (!items.some((x) => x.id === state.tenant)) state.tenant = items.length ? items[0].id : null;
      sel.value = state.tenant || "";
      $("#tenant-pick-label").hidden = false;
      $("#tenant-name").textContent = "";
      $("#portal-link").hidden = !state.tenant;
      if (!items.length) {
        page("No tenants", h("p", {}, "Create a tenant with POST /v1/tenants first (see docs/api.md)."));
        return;
      }
    }
    sessionStorage.setItem(TENANT, state.tenant);
    if (!location.hash || location.hash === "#/" || location.hash.startsWith("#portal=")) history.replaceState(null, "", location.pathname + "#/home");
    await route();
  }
  $("#sign-out").addEventListener("click", () => signOut());
  $("#tenant-pick").addEventListener("change", (e) => {
    state.tenant = e.target.value;
    sessionStorage.setItem(TENANT, state.tenant);
    route();
  });
  $("#portal-link").addEventListener("click", async () => {
    try {
      const link = await api("POST", t() + "/portal-links", { expires_in_seconds: 3600 });
      const box = h("input", { type: "text", readonly: true, value: link.url, size: 80, id: "portal-url" });
      page("Portal link for " + state.tenant,
        h("p", {}, "Give this link to the tenant. It opens this dashboard limited to the tenant, with a tenant key's powers, until ", when(link.expires_at), ". Treat it as a secret."),
        box, h("p", { class: "hint" }, "Link id " + link.id + " (in the audit log)."));
      box.select();
    } catch (e) { flash(e.message, "error"); }
  });

  // ---------- router ----------
  const routes = [
    [/^\/home$/, home],
    [/^\/endpoints$/, endpoints],
    [/^\/endpoints\/([^/]+)$/, endpointDetail],
    [/^\/events$/, events],
    [/^\/events\/([^/]+)$/, eventDetail],
    [/^\/deliveries$/, deliveries],
    [/^\/deliveries\/([^/]+)$/, deliveryDetail],
    [/^\/dead$/, dead],
    [/^\/event-types$/, eventTypes],
    [/^\/sources$/, sources],
    [/^\/sources\/([^/]+)$/, sourceDetail],
    [/^\/received\/([^/]+)$/, receivedDetail],
    [/^\/broker-sources$/, brokerSources],
    [/^\/broker-sources\/([^/]+)$/, brokerSourceDetail],
  ];
  function parseHash() {
    const raw = location.hash.replace(/^#/, "");
    const [path, query] = raw.split("?");
    return { path: path || "/home", params: new URLSearchParams(query || "") };
  }
  function go(path, params) { location.hash = "#" + path + (params ? qs(params) : ""); }
  // refreshSoon shows the page again in a few seconds while it shows work in progress (pending
  // deliveries), unless the user has moved on.
  let refreshTimer = 0;
  function refreshSoon() {
    const at = location.hash;
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => { if (location.hash === at) route(); }, 2000);
  }
  async function route() {
    clearTimeout(refreshTimer);
    if (!state.me) return;
    if (!state.tenant) return;
    if (state.reads) state.reads.abort();
    const reads = new AbortController();
    state.reads = reads;
    const { path, params } = parseHash();
    for (const a of document.querySelectorAll("[data-nav]")) {
      a.classList.toggle("active", path === "/" + a.dataset.nav || path.startsWith("/" + a.dataset.nav + "/"));
    }
    for (const [re, fn] of routes) {
      const m = path.match(re);
      if (m) {
        $("#main").classList.add("loading");
        try {
          await fn(params, ...m.slice(1).map(decodeURIComponent));
        } catch (e) {
          if (!reads.signal.aborted) page("Error", h("p", { class: "error" }, e.message));
        } finally {
          if (state.reads === reads) $("#main").classList.remove("loading");
        }
        return;
      }
    }
    page("Not found", h("p", {}, "No such page."));
  }
  window.addEventListener("hashchange", route);

  // ---------- home ----------
  const PERIODS = [["1h", "Last hour"], ["24h", "Last 24 hours"], ["7d", "Last 7 days"], ["30d", "Last 30 days"]];
  async function home(params) {
    const period = params.get("period") || "24h";
    const [hour, st, series, att, eps] = await Promise.all([
      api("GET", t() + "/stats?since=1h"),
      api("GET", t() + "/stats" + qs({ since: period })),
      api("GET", t() + "/stats/timeseries" + qs({ since: period, buckets: period === "1h" ? 12 : period === "24h" ? 24 : period === "7d" ? 28 : 30 })),
      pages(t() + "/attempts", { since: new Date(Date.now() - periodMs(period)).toISOString() }, 1000),
      pages(t() + "/endpoints", {}, 1000),
    ]);
    // Broker sources that cannot read their broker are named here too: an outage of the bus
    // is seen from the first page. A failure to list them leaves the overview as it is.
    let bsrc = [];
    try { bsrc = (await pages(t() + "/broker-sources", {}, 1000)).items; } catch (e) { if (e.name === "AbortError") throw e; }
    const bad = unhealthyBanner(bsrc);
    const periodSel = h("select", { id: "period", onchange: (e) => go("/home", { period: e.target.value }) },
      PERIODS.map(([v, l]) => h("option", { value: v, selected: v === period }, l)));
    const num = (id, label, value, cls, href) => h("a", { class: "stat " + (cls || ""), id, href: href || null },
      h("span", { class: "value" }, String(value)), h("span", { class: "label" }, label));
    page("Overview of " + state.tenant,
      bad ? h("a", { href: "#/broker-sources", class: "alert-link" }, bad) : null,
      h("section", { class: "hero" },
        num("failed-last-hour", "deliveries failed in the last hour", hour.failed_deliveries, hour.failed_deliveries ? "bad" : "good", "#/deliveries?since=1h&failed=1"),
        h("p", { class: "hint" }, plural(hour.failed_attempts, "failed attempt") + " of " + hour.attempts + " in the last hour; " +
          plural(hour.dead, "of the hour's deliveries is dead", "of the hour's deliveries are dead") + ".")),
      h("div", { class: "toolbar" }, h("label", {}, "Period ", periodSel)),
      h("section", { class: "stats" },
        num("stat-events", "events published", st.events, "", "#/events"),
        num("stat-succeeded", "deliveries succeeded", st.succeeded, "good", "#/deliveries?state=succeeded"),
        num("stat-failed", "deliveries with a failed attempt", st.failed_deliveries, st.failed_deliveries ? "warn" : "", "#/deliveries"),
        num("stat-pending", "pending", st.pending, "", "#/deliveries?state=pending"),
        num("stat-dead", "dead", st.dead, st.dead ? "bad" : "", "#/dead")),
      h("h2", {}, "Attempts and failures over time"),
      chart(series),
      h("h2", {}, "Endpoints failing most"),
      failingMost(att, new Map(eps.items.map((e) => [e.id, e]))),
      limitsPanel());
  }

  // ---------- limits (plans) ----------
  // limitsPanel shows the tenant's effective limits (GET …/limits) with where each comes from;
  // it fills in on its own, so that the overview does not wait for it.
  const LIMITS = [["events_per_second", "Events per second"], ["max_endpoints", "Endpoints"], ["max_sources", "Sources"],
    ["max_event_bytes", "Event size (bytes)"], ["retention_hours", "Retention (hours)"], ["max_attempts", "Attempts per delivery"],
    ["max_retry_seconds", "Retry span (seconds)"], ["max_endpoint_rate", "Endpoint rate (requests/s)"],
    ["batching", "Batching"], ["transformations", "Transformations"], ["filters", "Filters"]];
  function limitsPanel() {
    const body = h("div", {}, h("p", { class: "hint" }, "Loading…"));
    const show = (v) => v === null || v === undefined ? "no limit" : v === true ? "allowed" : v === false ? "not allowed" : String(v);
    api("GET", t() + "/limits").then((l) => {
      body.replaceChildren(
        h("p", { class: "hint", id: "limits-plan" }, l.plan ? "Plan: " + l.plan : "No plan: the node's defaults, unless set for the tenant."),
        table(["limit", "value", "from"], LIMITS.map(([k, label]) => {
          const x = l.limits[k] || {};
          return h("tr", { "data-limit": k }, h("td", {}, label), h("td", { class: "value" }, show(x.value)), h("td", {}, h("span", { class: "badge from-" + x.from }, x.from)));
        })));
    }).catch((e) => {
      if (e.name !== "AbortError") body.replaceChildren(h("p", { class: "error" }, "Limits: " + e.message));
    });
    return h("section", { id: "limits", class: "limits" }, h("h2", {}, "Limits"), body);
  }
  function periodMs(p) {
    const n = parseInt(p, 10);
    return n * (p.endsWith("d") ? 86400e3 : p.endsWith("h") ? 3600e3 : 60e3);
  }
  // chart draws attempts (successful and failed, stacked) per bucket as an inline SVG.
  function chart(series) {
    const W = 900, H = 220, P = { l: 40, r: 10, t: 10, b: 30 };
    const b = series.buckets;
    const maxV = Math.max(1, ...b.map((x) => x.attempts));
    const bw = (W - P.l - P.r) / b.length;
    const y = (v) => H - P.b - (v / maxV) * (H - P.t - P.b);
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", id: "chart", role: "img", "aria-label": "attempts and failures over time" });
    for (const f of [0, 0.5, 1]) {
      const v = Math.round(maxV * f);
      svg.append(s("line", { x1: P.l, x2: W - P.r, y1: y(v), y2: y(v), class: "grid" }),
        s("text", { x: P.l - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, v));
    }
    b.forEach((x, i) => {
      const ok = x.attempts - x.failed_attempts;
      const x0 = P.l + i * bw + 1;
      const g = s("g", {}, s("title", {}, `${new Date(x.start).toLocaleString()}: ${x.attempts} attempts, ${x.failed_attempts} failed, ${x.events} events, ${x.dead} now dead`));
      if (ok > 0) g.append(s("rect", { x: x0, width: Math.max(1, bw - 2), y: y(x.attempts), height: y(x.failed_attempts) - y(x.attempts), class: "ok" }));
      if (x.failed_attempts > 0) g.append(s("rect", { x: x0, width: Math.max(1, bw - 2), y: y(x.failed_attempts), height: y(0) - y(x.failed_attempts), class: "fail" }));
      svg.append(g);
      if (i % Math.ceil(b.length / 6) === 0) {
        const d = new Date(x.start);
        const label = series.bucket_seconds >= 86400 ? d.toLocaleDateString() : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
        svg.append(s("text", { x: x0, y: H - 10, class: "axis" }, label));
      }
    });
    return h("figure", {}, svg, h("figcaption", {}, h("span", { class: "key ok" }), " successful attempts ", h("span", { class: "key fail" }), " failed attempts, per " + dur(Math.round(series.bucket_seconds))));
  }
  // health aggregates attempts by endpoint: count, failures, latency p50 and p95.
  function health(attempts) {
    const by = new Map();
    for (const a of attempts) {
      const e = by.get(a.endpoint_id) || { id: a.endpoint_id, n: 0, failed: 0, latency: 0, lat: [] };
      e.n++; if (!a.success) e.failed++; e.latency += a.latency_ms || 0; e.lat.push(a.latency_ms || 0);
      by.set(a.endpoint_id, e);
    }
    for (const e of by.values()) {
      e.lat.sort((x, y) => x - y);
      const q = (p) => e.lat[Math.min(e.lat.length - 1, Math.floor(p * e.lat.length))];
      e.p50 = q(0.5); e.p95 = q(0.95);
    }
    return by;
  }
  function latencies(x) { return x ? x.p50.toFixed(1) + " / " + x.p95.toFixed(1) + " ms" : "—"; }
  function failingMost(att, byID) {
    const rows = [...health(att.items).values()].filter((e) => e.failed > 0).sort((a, b) => b.failed - a.failed).slice(0, 5)
      .map((e) => h("tr", {}, h("td", {}, h("a", { href: "#/endpoints/" + e.id }, byID.has(e.id) ? endpointLabel(byID.get(e.id)) : e.id),
        h("div", { class: "hint" }, byID.has(e.id) ? [endpointState(byID.get(e.id))] : "deleted")), h("td", { class: "num" }, e.failed),
        h("td", { class: "num" }, e.n), h("td", { class: "num" }, pct(e.n - e.failed, e.n)), h("td", { class: "num" }, latencies(e))));
    return [table(["endpoint", "failed attempts", "attempts", "success rate", "latency p50 / p95"], rows, "No endpoint failed in this period.", [1, 2, 3, 4]),
      att.more ? h("p", { class: "hint" }, "Based on the newest " + att.items.length + " attempts of the period.") : null];
  }

  // ---------- endpoints ----------
  function endpointState(e) {
    if (!e.enabled) return [h("span", { class: "badge state-dead" }, "disabled"), " ", e.disabled_reason || ""];
    if (e.breaker_state === "open" || e.breaker_state === "half-open")
      return [h("span", { class: "badge state-dead" }, "breaker " + e.breaker_state), e.failing_since ? [" failing since ", when(e.failing_since)] : ""];
    if (e.failing_since) return [h("span", { class: "badge state-pending" }, "failing"), " since ", when(e.failing_since)];
    return h("span", { class: "badge state-succeeded" }, "healthy");
  }
  async function endpoints() {
    const [eps, att, types] = await Promise.all([
      pages(t() + "/endpoints", {}, 1000),
      pages(t() + "/attempts", { since: new Date(Date.now() - 86400e3).toISOString() }, 2000),
      destinationTypes(),
    ]);
    const hl = health(att.items);
    const rows = eps.items.map((e) => {
      const x = hl.get(e.id);
      return h("tr", { "data-endpoint": e.id }, h("td", {}, h("a", { href: "#/endpoints/" + e.id }, destinationText(e, types)), h("div", { class: "hint" }, e.description || e.id)),
        h("td", {}, typeBadge(e), credentialsHint(e)),
        h("td", {}, endpointState(e)),
        h("td", { class: "num" }, x ? pct(x.n - x.failed, x.n) : "—"), h("td", { class: "num" }, latencies(x)),
        h("td", { class: "num" }, x ? x.n : 0), h("td", {}, e.event_types.join(", ")));
    });
    page("Endpoints", table(["destination", "type", "state", "success (24 h)", "latency p50 / p95", "attempts", "subscriptions"], rows, "No endpoints yet.", [3, 4, 5]),
      h("p", { class: "hint" }, "Health is computed from the attempts of the last 24 hours" + (att.more ? " (the newest " + att.items.length + ")" : "") +
        ". A disabled endpoint shows why; a failing one, since when (its circuit breaker pauses it for 30 s after 20 retryable failures in a row)."),
      h("h2", {}, "Add an endpoint"), newEndpointForm(types));
  }
  // ---------- destination types and the endpoint forms ----------
  // destinationTypes are the server's destination types with their settings, as the types
  // describe them (GET /v1/destination-types): the forms are built from them, never from a copy
  // of each type's settings here. Fetched once per sign-in; a server without the route offers
  // webhooks only.
  async function destinationTypes() {
    if (state.destTypes) return state.destTypes;
    try {
      const r = await api("GET", "/v1/destination-types");
      state.destTypes = r.data;
      return r.data;
    } catch (ex) {
      if (ex.name === "AbortError" || ex.status === 401) throw ex;
      return [{ name: "webhook", url: true, described: true, settings: [] }];
    }
  }
  function typeOf(types, name) { return (types || []).find((x) => x.name === name); }
  function isWebhook(e) { return !e.type || e.type === "webhook"; }
  function typeBadge(e) { return h("span", { class: "badge type", "data-type": e.type || "webhook" }, e.type || "webhook"); }
  function settingValue(v) {
    if (v === "") return '""';
    if (Array.isArray(v)) return v.join(", ");
    return typeof v === "object" ? JSON.stringify(v) : String(v);
  }
  // destinationText says where an endpoint delivers: a webhook's url, or the settings its type
  // marks as naming where messages go (a subject, an exchange and routing key, a stream, a topic,
  // a queue).
  function destinationText(e, types) {
    if (isWebhook(e)) return e.url;
    const ty = typeOf(types || state.destTypes, e.type), c = e.config || {};
    const parts = ((ty && ty.settings) || []).filter((x) => x.destination && c[x.name] !== undefined && c[x.name] !== null)
      .map((x) => x.name + " " + settingValue(c[x.name]));
    return parts.length ? parts.join(" · ") : e.type + " endpoint";
  }
  function endpointLabel(e, types) { return isWebhook(e) ? e.url : e.type + " · " + destinationText(e, types); }
  function credentialsHint(e) {
    const set = e.config_secrets || [];
    return set.length ? h("div", { class: "hint" }, "credentials set: " + set.join(", ")) : null;
  }
  function fieldError(field) { return h("div", { class: "field-error error", "data-field": field, role: "alert" }); }
  // settingsFields builds the inputs of a type's settings. current is the config of the endpoint
  // being edited (null for a new one) and secretsSet the credentials it has: a credential's input
  // is always empty (the API never shows its value), and left empty it keeps the stored value.
  function settingsFields(ty, current, secretsSet, prefix) {
    const box = h("div", { class: "settings", "data-type": ty.name });
    if (!ty.described) {
      // A type that does not describe itself: its config as JSON (see its page in docs).
      const ta = h("textarea", { id: prefix + "cfg-json", rows: 6, cols: 60 }, current ? JSON.stringify(current, null, 2) : "{}");
      box.append(h("div", { class: "field" }, h("label", { for: ta.id }, "config (JSON)"), ta, fieldError("config")));
      return { box, collect: () => JSON.parse(ta.value || "{}") };
    }
    const fields = [];
    for (const st of ty.settings) {
      const id = prefix + "cfg-" + st.name;
      const name = "config." + st.name;
      const cur = current ? current[st.name] : undefined;
      const isSet = (secretsSet || []).includes(st.name);
      let input, clear = null, list = null;
      if (st.kind === "bool") {
        input = h("input", { type: "checkbox", id, name, checked: current ? !!cur : !!st.default });
      } else if (st.choices && st.choices.length && !st.open) {
        const want = current ? (cur === undefined || cur === null ? "" : String(cur)) : (st.default === undefined ? "" : String(st.default));
        const opts = st.choices.includes("") || st.required || st.default !== undefined ? [] : [h("option", { value: "" }, "(not set)")];
        input = h("select", { id, name }, opts, st.choices.map((c) => h("option", { value: c, selected: c === want }, c === "" ? "(none)" : c)));
      } else {
        const attrs = { id, name, size: 44, autocomplete: "off", type: "text",
          placeholder: st.placeholder || (st.default !== undefined && st.default !== null && st.default !== "" ? "default: " + st.default : null) };
        if (st.secret) {
          attrs.type = "password";
          attrs.autocomplete = "new-password";
          if (isSet) attrs.placeholder = "set: leave blank to keep it";
        } else {
          if (st.kind === "int") { attrs.type = "number"; attrs.step = 1; }
          if (current && cur !== undefined && cur !== null) attrs.value = Array.isArray(cur) ? cur.join(", ") : String(cur);
        }
        if (st.choices && st.open) {
          attrs.list = id + "-choices";
          list = h("datalist", { id: attrs.list }, st.choices.map((c) => h("option", { value: c })));
        }
        if (st.multiline) {
          // A PEM certificate or key: a text area (a credential's is never filled in).
          input = h("textarea", { id, name, rows: 4, cols: 64, autocomplete: "off", spellcheck: "false", placeholder: attrs.placeholder },
            !st.secret && current && cur ? String(cur) : "");
        } else {
          input = h("input", attrs);
        }
        if (st.secret && isSet) clear = h("label", { class: "clear" }, h("input", { type: "checkbox", id: id + "-clear" }), " remove it");
      }
      fields.push({ st, input, clear });
      box.append(h("div", { class: "field", "data-setting": st.name },
        h("label", { for: id }, st.name, st.required ? " *" : "", st.secret ? [" ", h("span", { class: "badge secret" }, isSet ? "secret · set" : "secret")] : null),
        input, list, clear,
        h("div", { class: "hint" }, st.help + (st.kind === "list" ? " Comma-separated." : "") + (st.kind === "duration" ? " A duration, e.g. 5s." : "")),
        fieldError(name)));
    }
    function collect() {
      const cfg = {};
      for (const { st, input, clear } of fields) {
        if (clear && clear.querySelector("input").checked) { cfg[st.name] = null; continue; }
        if (st.kind === "bool") { cfg[st.name] = input.checked; continue; }
        const raw = st.secret ? input.value : input.value.trim();
        if (st.default !== undefined && st.default !== null && raw === String(st.default) && (!current || current[st.name] === undefined)) {
          continue; // the default, not chosen: omitted means the same, and fits any other setting
        }
        if (raw === "") {
          // Omitted: the default applies, or (a credential of an endpoint) the stored value is
          // kept. A required field is sent empty (RabbitMQ's default exchange is "", and
          // otherwise the API says it is required, next to the field).
          if (st.required && !st.secret) cfg[st.name] = st.kind === "list" ? [] : "";
          continue;
        }
        if (st.kind === "int") {
          const n = Number(raw);
          cfg[st.name] = Number.isInteger(n) ? n : raw;
        } else if (st.kind === "list") cfg[st.name] = raw.split(",").map((x) => x.trim()).filter(Boolean);
        else cfg[st.name] = raw;
      }
      return cfg;
    }
    return { box, collect };
  }
  // showFieldErrors puts each problem of an answer next to its field (body.config.<field>,
  // body.url, body.event_types…) and returns those that have no field on the form.
  function showFieldErrors(form, ex) {
    const slots = [...form.querySelectorAll(".field-error")];
    slots.forEach((x) => { x.textContent = ""; });
    const rest = [];
    for (const e of ex.errors || []) {
      // The most precise slot: body.mapping.event_type.name goes to the slot of
      // mapping.event_type.name, else mapping.event_type, else mapping; body.config.topics[1] to
      // config.topics.
      const parts = (e.location || "").replace(/^body\./, "").split("[")[0].split(".");
      let slot = null;
      for (let n = parts.length; n > 0 && !slot; n--) {
        const key = parts.slice(0, n).join(".");
        slot = slots.find((x) => x.dataset.field === key);
      }
      if (slot) slot.textContent = (slot.textContent ? slot.textContent + "; " : "") + e.message;
      else rest.push(e);
    }
    return rest;
  }
  // ENDPOINT_FORMATS are the body formats an endpoint may have (the API's format).
  const ENDPOINT_FORMATS = [["herald", "herald (envelope)"], ["cloudevents-structured", "CloudEvents, structured"], ["cloudevents-binary", "CloudEvents, binary"]];
  // destinationForm creates an endpoint (e undefined) or changes where one delivers: its type,
  // its url (webhook), its settings and its body format.
  function destinationForm(types, e) {
    const editing = !!e, prefix = editing ? "edit-" : "new-";
    const curType = editing ? (e.type || "webhook") : "webhook";
    if (!typeOf(types, curType)) types = types.concat([{ name: curType, url: curType === "webhook", described: false, settings: [] }]);
    const sel = h("select", { id: prefix + "endpoint-type", name: "type" }, types.map((x) => h("option", { value: x.name, selected: x.name === curType }, x.name)));
    const url = h("input", { type: "url", id: prefix + "endpoint-url", name: "url", placeholder: "https://example.com/webhooks", size: 50, value: editing && e.url ? e.url : null });
    const urlRow = h("div", { class: "field" }, h("label", { for: url.id }, "url *"), url, fieldError("url"));
    const evTypes = editing ? null : h("input", { type: "text", id: "new-endpoint-event-types", name: "event_types", value: "*", size: 30 });
    const curFormat = editing ? (e.format || "herald") : "herald";
    const format = h("select", { id: prefix + "endpoint-format", name: "format" }, ENDPOINT_FORMATS.map(([v, l]) => h("option", { value: v, selected: v === curFormat }, l)));
    const settingsBox = h("div", { class: "settings-box" });
    let fields = null;
    function show() {
      const ty = typeOf(types, sel.value);
      urlRow.hidden = !ty.url;
      fields = null;
      settingsBox.replaceChildren();
      if (ty.url && !(ty.described && (ty.settings || []).length)) return;
      const same = editing && ty.name === curType;
      fields = settingsFields(ty, same ? (e.config || {}) : null, same ? (e.config_secrets || []) : [], prefix);
      if (ty.url) {
        // A webhook's settings are optional (authentication, mutual TLS, proxy): folded away
        // unless the endpoint has some.
        const has = same && (Object.keys(e.config || {}).length || (e.config_secrets || []).length);
        const det = h("details", { id: prefix + "endpoint-settings" },
          h("summary", {}, "authentication, client certificate, proxy"), fields.box);
        det.open = !!has; // not through h: it takes attributes starting "on" for handlers
        settingsBox.append(det);
      } else {
        settingsBox.append(fields.box);
      }
    }
    sel.addEventListener("change", show);
    show();
    const form = h("form", { class: "card endpoint-form", id: prefix + "endpoint-form", novalidate: true, onsubmit: async (ev) => {
      ev.preventDefault();
      const ty = typeOf(types, sel.value), body = {};
      if (!editing || ty.name !== curType) body.type = ty.name;
      if (ty.url) {
        if (!editing || ty.name !== curType || url.value.trim() !== e.url) body.url = url.value.trim();
        if (fields) {
          const cfg = fields.collect();
          const had = editing && ty.name === curType && (Object.keys(e.config || {}).length || (e.config_secrets || []).length);
          // The update's config replaces the stored one (credentials it omits are kept): sent
          // when the endpoint has settings or the form sets some.
          if (Object.keys(cfg).length || had) body.config = cfg;
        }
      } else {
        try {
          body.config = fields.collect();
        } catch (ex) { showFieldErrors(form, { errors: [{ location: "body.config", message: "not valid JSON: " + ex.message }] }); return; }
      }
      if (!editing) body.event_types = evTypes.value.split(",").map((x) => x.trim()).filter(Boolean);
      if (format.value !== curFormat) body.format = format.value;
      if (editing && !Object.keys(body).length) { flash("Nothing changed."); return; }
      try {
        if (editing) {
          await api("PATCH", t() + "/endpoints/" + encodeURIComponent(e.id), body);
          flash("Destination saved.");
          route();
        } else {
          const ep = await api("POST", t() + "/endpoints", body);
          flash("Endpoint created. Its signing secret is on its page.");
          go("/endpoints/" + ep.id);
        }
      } catch (ex) {
        const rest = showFieldErrors(form, ex);
        flash(rest.length || !(ex.errors || []).length ? ex.message : "The endpoint was not saved: see the messages next to the fields.", "error");
      }
    } },
    h("div", { class: "field" }, h("label", { for: sel.id }, "type"), sel, fieldError("type")),
    urlRow, settingsBox,
    h("div", { class: "field" }, h("label", { for: format.id }, "format"), format,
      h("div", { class: "hint" }, "CloudEvents endpoints (webhooks) are asked to agree first: an OPTIONS handshake."), fieldError("format")),
    editing ? null : h("div", { class: "field" }, h("label", { for: evTypes.id }, "event types *"), evTypes,
      h("div", { class: "hint" }, "Comma-separated: exact names, prefixes (invoice.*) or * for everything."), fieldError("event_types")),
    h("div", { class: "actions" }, h("button", { type: "submit", id: prefix + "endpoint-submit" }, editing ? "Save destination" : "Add")));
    return form;
  }
  function newEndpointForm(types) { return destinationForm(types); }
  // destinationRows are the detail page's rows about where an endpoint delivers: its type, its
  // url or its settings (never a credential's value), and which credentials are set.
  function destinationRows(e, types) {
    if (isWebhook(e)) {
      const rows = [["type", typeBadge(e)], ["url", code(e.url)]];
      if (e.client_certificate) rows.push(["client certificate", clientCertificate(e.client_certificate)]);
      if ((e.config_secrets || []).length) rows.push(["credentials", h("span", { id: "credentials" }, e.config_secrets.map((n) => n + ": set").join(", "))]);
      return rows;
    }
    const ty = typeOf(types, e.type), c = e.config || {};
    const described = ty && ty.described ? ty.settings : [];
    const rows = [["type", typeBadge(e)]];
    for (const st of described) {
      if (st.secret) continue;
      if (c[st.name] === undefined || c[st.name] === null) continue;
      rows.push([st.name, h("span", { "data-setting": st.name }, code(settingValue(c[st.name])))]);
    }
    for (const [k, v] of Object.entries(c)) {
      if (!described.some((st) => st.name === k)) rows.push([k, code(settingValue(v))]);
    }
    const secret = described.filter((st) => st.secret).map((st) => st.name);
    const set = e.config_secrets || [];
    rows.push(["credentials", h("span", { id: "credentials" }, secret.length || set.length
      ? [...new Set([...secret, ...set])].map((n) => n + (set.includes(n) ? ": set" : ": not set")).join(", ")
      : "none")]);
    return rows;
  }
  // clientCertificate describes a webhook endpoint's mutual TLS certificate: who it names, who
  // issued it, and when it expires, flagged within the 14 days before (when Herald's operational
  // webhook endpoint.certificate_expiring warns).
  function clientCertificate(c) {
    const days = Math.floor((Date.parse(c.not_after) - Date.now()) / 86400000);
    const left = days < 0 ? h("span", { class: "badge state-dead" }, "expired") :
      h("span", { class: "badge " + (days <= 14 ? "state-dead" : "state-succeeded") }, days + (days === 1 ? " day left" : " days left"));
    return h("span", { id: "client-certificate", "data-days-left": String(days) },
      code(c.subject), " issued by ", code(c.issuer), h("br"), "expires ", code(c.not_after.slice(0, 10)), " (", when(c.not_after), ") ", left,
      h("br"), h("span", { class: "hint" }, "SHA-256 ", code(c.fingerprint_sha256)));
  }
  async function endpointDetail(params, id) {
    const base = t() + "/endpoints/" + encodeURIComponent(id);
    const [e, att, pend, catalog, types] = await Promise.all([
      api("GET", base),
      api("GET", t() + "/attempts" + qs({ endpoint_id: id, limit: 25 })),
      api("GET", t() + "/deliveries" + qs({ endpoint_id: id, state: ["pending", "dead"], limit: 25 })),
      pages("/v1/event-types", {}, 1000),
      destinationTypes(),
    ]);
    const label = endpointLabel(e, types);
    const secretBox = h("div", { id: "secret" }, h("button", { type: "button", class: "secondary", id: "reveal-secret", onclick: async () => {
      try {
        const sec = await api("GET", base + "/secret");
        secretBox.replaceChildren(code(sec.key), sec.previous && sec.previous.length ? h("p", { class: "hint" }, sec.previous.length + " previous secret(s) still valid until they expire.") : "");
      } catch (ex) { flash(ex.message, "error"); }
    } }, "Reveal secret"), " ", h("button", { type: "button", class: "secondary", id: "rotate-secret", onclick: async () => {
      if (!await confirmDialog("Rotate the signing secret of " + label + "? The old secret stays valid for 24 hours, so receivers can switch.", "Rotate")) return;
      try {
        const sec = await api("POST", base + "/secret/rotate", {});
        secretBox.replaceChildren(code(sec.key), h("p", { class: "hint" }, "New secret; the old one expires in 24 hours."));
        flash("Secret rotated.");
      } catch (ex) { flash(ex.message, "error"); }
    } }, "Rotate secret"));
    const toggle = h("button", { type: "button", id: "toggle-endpoint", class: e.enabled ? "danger" : "", onclick: async () => {
      if (e.enabled && !await confirmDialog("Disable " + label + "? New events will create no deliveries for it until you enable it again.", "Disable")) return;
      try {
        await api("PATCH", base, { enabled: !e.enabled });
        flash(e.enabled ? "Endpoint disabled." : "Endpoint enabled; its pending deliveries resume.");
        route();
      } catch (ex) { flash(ex.message, "error"); }
    } }, e.enabled ? "Disable" : "Enable");
    // A test event is of a type the endpoint subscribes to: an exact name, or a catalogued type
    // that one of its patterns matches.
    const matches = (name) => e.event_types.some((p) => p === "*" || p === name || (p.endsWith(".*") && name.startsWith(p.slice(0, -1))));
    const testTypes = catalog.items.map((x) => x.name).filter(matches);
    const testSel = h("select", { id: "test-type" }, testTypes.map((n) => h("option", { value: n }, n)));
    const test = testTypes.length ? h("form", { class: "inline", onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const r = await api("POST", t() + "/events", { type: testSel.value, data: { test: true, sent_from: "herald dashboard", endpoint_id: id }, source: "dashboard-test" });
        flash("Test event " + r.id + " published (" + r.deliveries + " deliveries).");
        go("/events/" + r.id);
      } catch (ex) { flash(ex.message, "error"); }
    } }, h("label", {}, "Send a test event of type ", testSel), h("button", { type: "submit", id: "send-test" }, "Send")) :
      h("p", { class: "hint" }, "No catalogued event type matches this endpoint's subscriptions.");
    const sched = e.retry_schedule || [];
    page("Endpoint " + label,
      fieldRows([["id", code(e.id)], ...destinationRows(e, types), ["state", endpointState(e)], ["subscriptions", e.event_types.join(", ")],
        ["description", e.description || "—"], ["format", h("span", { id: "endpoint-format" }, e.format || "herald")], ["signature", e.signature_scheme + " · " + (e.signature_format || "standard-webhooks")],
        ["filter", e.filter ? code(e.filter) : "none"], ["transformation", e.transform ? code(e.transform) : "none"],
        ["batching", e.batch && e.batch.enabled ? "up to " + e.batch.max_events + " events or " + dur(e.batch.max_wait_ms / 1000) : "off"],
        ["ordered", e.ordered ? "yes: one at a time, in publish order" : "no"],
        ["timeout", e.timeout_seconds + " s"], ["concurrency", e.max_concurrency], ["rate limit", e.rate_limit ? e.rate_limit + "/s" : "none"],
        ["retry schedule", plural(sched.length, "attempt") + ": " + sched.map(dur).join(", ") + " (±20 % jitter)"],
        ["signing secret", secretBox]]),
      h("div", { class: "toolbar" }, toggle, " ", h("a", { href: "#/deliveries?endpoint_id=" + encodeURIComponent(id) }, "All deliveries"), " · ",
        h("a", { href: "#/dead?endpoint_id=" + encodeURIComponent(id) }, "Dead letters")),
      test,
      h("details", { class: "edit-destination", id: "edit-destination" }, h("summary", {}, "Change the destination"),
        h("p", { class: "hint" }, "Credentials are never shown: leave one blank to keep it."), destinationForm(types, e)),
      h("h2", {}, "Pending and dead deliveries"), deliveryTable(pend.data),
      h("h2", {}, "Latency and status of recent attempts"), attemptChart(att.data),
      h("h2", {}, "Recent attempts"), attemptTable(att.data, true));
  }
  // attemptChart plots recent attempts as points: time across, latency up (log scale), blue for
  // a success and red for a failure, each with its status or error in a tooltip.
  function attemptChart(list) {
    if (!list.length) return h("p", { class: "hint" }, "No attempts yet.");
    const W = 900, H = 200, P = { l: 50, r: 10, t: 10, b: 30 };
    const times = list.map((a) => Date.parse(a.at));
    const t0 = Math.min(...times), t1 = Math.max(t0 + 1, ...times);
    const lat = list.map((a) => Math.max(0.1, a.latency_ms || 0));
    const top = Math.pow(10, Math.ceil(Math.log10(Math.max(1, ...lat))));
    const x = (t) => P.l + ((t - t0) / (t1 - t0)) * (W - P.l - P.r);
    const y = (v) => H - P.b - (Math.log10(v / 0.1) / Math.log10(top / 0.1)) * (H - P.t - P.b);
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", id: "attempt-chart", role: "img", "aria-label": "latency and status of recent attempts" });
    for (let e = -1; Math.pow(10, e) <= top; e++) {
      const v = Math.pow(10, e);
      svg.append(s("line", { x1: P.l, x2: W - P.r, y1: y(v), y2: y(v), class: "grid" }),
        s("text", { x: P.l - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, v >= 1000 ? v / 1000 + " s" : (e < 0 ? "0.1" : v) + " ms"));
    }
    list.forEach((a, i) => {
      svg.append(s("circle", { cx: x(times[i]), cy: y(lat[i]), r: 4, class: a.success ? "ok" : "fail" },
        s("title", {}, `${new Date(times[i]).toLocaleString()}: ${a.status_code || a.error_kind || "failed"}, ${(a.latency_ms || 0).toFixed(1)} ms`)));
    });
    svg.append(s("text", { x: P.l, y: H - 10, class: "axis" }, new Date(t0).toLocaleTimeString()),
      s("text", { x: W - P.r, y: H - 10, class: "axis", "text-anchor": "end" }, new Date(t1).toLocaleTimeString()));
    return h("figure", {}, svg, h("figcaption", {}, h("span", { class: "key ok" }), " succeeded ", h("span", { class: "key fail" }), " failed; latency on a log scale"));
  }

  // ---------- deliveries and attempts ----------
  function retryButton(d) {
    return h("button", { type: "button", class: "small retry", "data-delivery": d.id, onclick: async (ev) => {
      ev.target.disabled = true;
      try {
        await api("POST", t() + "/deliveries/" + d.id + "/retry");
        flash("Delivery " + d.id + " queued again.");
        setTimeout(route, 800);
      } catch (ex) { flash(ex.message, "error"); ev.target.disabled = false; }
    } }, "Retry");
  }
  function deliveryTable(list) {
    return table(["delivery", "event", "endpoint", "state", "attempts", "last status", "next attempt / error", ""],
      list.map((d) => h("tr", { "data-delivery": d.id, "data-state": d.state },
        h("td", {}, h("a", { href: "#/deliveries/" + d.id }, d.id), h("div", { class: "hint" }, when(d.created_at))),
        h("td", {}, h("a", { href: "#/events/" + encodeURIComponent(d.event_id) }, d.event_id), h("div", { class: "hint" }, d.event_type)),
        h("td", {}, h("a", { href: "#/endpoints/" + d.endpoint_id }, d.endpoint_id)),
        h("td", {}, stateBadge(d.state)), h("td", { class: "num" }, d.attempt_count),
        h("td", { class: "num" }, d.last_status || "—"),
        h("td", {}, d.state === "pending" && d.next_attempt_at ? ["next ", when(d.next_attempt_at)] : (d.last_error || "")),
        h("td", {}, retryButton(d)))), "No deliveries match.");
  }
  function attemptTable(list, showDelivery) {
    return table(["time", showDelivery ? "delivery" : null, "result", "latency", "error", "response"].filter(Boolean),
      list.map((a) => h("tr", {}, h("td", {}, when(a.at)),
        showDelivery ? h("td", {}, h("a", { href: "#/deliveries/" + a.delivery_id }, a.delivery_id)) : null,
        h("td", {}, h("span", { class: "badge " + (a.success ? "state-succeeded" : "state-dead") }, a.status_code ? String(a.status_code) : (a.error_kind || "failed"))),
        h("td", { class: "num" }, (a.latency_ms || 0).toFixed(1) + " ms"), h("td", {}, a.error || ""),
        h("td", {}, a.response ? h("pre", { class: "excerpt" }, a.response.slice(0, 500)) : ""))), "No attempts yet.");
  }
  function deliveryFilters(params, path) {
    const f = {
      id: h("input", { name: "id", placeholder: "dlv_…", size: 10 }),
      endpoint_id: h("input", { name: "endpoint_id", value: params.get("endpoint_id") || "", placeholder: "ep_…", size: 30 }),
      event_type: h("input", { name: "event_type", value: params.get("event_type") || "", placeholder: "invoice.paid", size: 20 }),
      since: h("input", { type: "datetime-local", name: "since" }),
      until: h("input", { type: "datetime-local", name: "until" }),
    };
    const states = h("select", { name: "state", id: "state-filter" }, ["", "pending", "succeeded", "dead"].map((x) => h("option", { value: x, selected: x === (params.get("state") || "") }, x || "any state")));
    return h("form", { class: "inline", onsubmit: (e) => {
      e.preventDefault();
      if (f.id.value.trim()) return go("/deliveries/" + encodeURIComponent(f.id.value.trim()));
      go(path, { endpoint_id: f.endpoint_id.value.trim(), event_type: f.event_type.value.trim(), state: path === "/dead" ? "" : states.value,
        since: isoFromLocal(f.since.value), until: isoFromLocal(f.until.value) });
    } }, h("label", {}, "Id ", f.id), h("label", {}, "Endpoint ", f.endpoint_id), h("label", {}, "Type ", f.event_type),
    path === "/dead" ? null : h("label", {}, "State ", states),
    h("label", {}, "From ", f.since), h("label", {}, "To ", f.until), h("button", { type: "submit" }, "Search"));
  }
  function deliveryQuery(params) {
    let since = params.get("since") || "";
    if (since && !since.includes("T")) since = new Date(Date.now() - periodMs(since)).toISOString();
    return { endpoint_id: params.get("endpoint_id"), event_type: params.get("event_type"), state: params.get("state"),
      since, until: params.get("until"), cursor: params.get("cursor"), limit: 50 };
  }
  async function deliveries(params) {
    const r = await api("GET", t() + "/deliveries" + qs(deliveryQuery(params)));
    let list = r.data;
    if (params.get("failed")) list = list.filter((d) => (d.attempts || []).some((a) => !a.success));
    page("Deliveries", deliveryFilters(params, "/deliveries"), deliveryTable(list), nextLink("/deliveries", params, r.next_cursor));
    if (list.some((d) => d.state === "pending")) refreshSoon();
  }
  function nextLink(path, params, cursor) {
    if (!cursor) return null;
    const p = Object.fromEntries(params.entries());
    p.cursor = cursor;
    return h("p", {}, h("a", { href: "#" + path + qs(p) }, "Older →"));
  }
  async function deliveryDetail(params, id) {
    const d = await api("GET", t() + "/deliveries/" + encodeURIComponent(id));
    page("Delivery " + d.id, deliverySection(d));
    if (d.state === "pending") refreshSoon();
  }
  function deliverySection(d) {
    return h("section", { class: "card delivery", "data-delivery": d.id, "data-state": d.state },
      h("h3", {}, "Delivery ", h("a", { href: "#/deliveries/" + d.id }, d.id), " to ", h("a", { href: "#/endpoints/" + d.endpoint_id }, d.endpoint_id), " ", stateBadge(d.state), " ", retryButton(d)),
      fieldRows([["event", h("a", { href: "#/events/" + encodeURIComponent(d.event_id) }, d.event_id)], ["attempts", d.attempt_count],
        d.state === "pending" ? ["next attempt", when(d.next_attempt_at)] : null,
        ["last status", d.last_status || "—"], d.last_error ? ["last error", d.last_error] : null, ["created", when(d.created_at)]]),
      attemptTable(d.attempts || [], false));
  }

  // ---------- dead letters ----------
  async function dead(params) {
    const q = deliveryQuery(params);
    q.state = "dead";
    const r = await api("GET", t() + "/deliveries" + qs(q));
    const replay = h("button", { type: "button", id: "replay-all", class: "danger", disabled: !r.data.length, onclick: async () => {
      // Count what the replay will queue: every dead delivery matching the filters.
      let n;
      const filter = { endpoint_id: q.endpoint_id || undefined, event_types: q.event_type ? [q.event_type] : undefined, states: ["dead"],
        since: q.since || undefined, until: q.until || undefined };
      try {
        const all = await pages(t() + "/deliveries", { endpoint_id: q.endpoint_id, event_type: q.event_type, state: "dead", since: q.since, until: q.until }, 10000);
        n = all.more ? "more than " + all.items.length : String(all.items.length);
      } catch (ex) { flash(ex.message, "error"); return; }
      const one = n === "1";
      if (!await confirmDialog("Replay will queue " + n + " dead deliver" + (one ? "y" : "ies") + " again, due now, with a fresh retry schedule. Receivers see the same webhook-id.", "Queue " + n)) return;
      try {
        const res = await api("POST", t() + "/replays", filter);
        flash("Queued " + res.queued + " deliver" + (res.queued === 1 ? "y" : "ies") + " again.");
        go("/deliveries", { endpoint_id: q.endpoint_id, event_type: q.event_type });
      } catch (ex) { flash(ex.message, "error"); }
    } }, "Replay all matching…");
    page("Dead letters", h("p", {}, "Deliveries that used up their retry schedule, or whose endpoint answered 410 Gone. Fix the receiver, then retry one or replay them all."),
      deliveryFilters(params, "/dead"), h("div", { class: "toolbar" }, replay), deliveryTable(r.data), nextLink("/dead", params, r.next_cursor));
  }

  // ---------- events ----------
  async function events(params) {
    const id = h("input", { name: "id", placeholder: "event id", size: 28, id: "event-id" });
    const type = h("input", { name: "event_type", value: params.get("event_type") || "", placeholder: "invoice.paid", size: 20 });
    const since = h("input", { type: "datetime-local" }), until = h("input", { type: "datetime-local" });
    const form = h("form", { class: "inline", onsubmit: (e) => {
      e.preventDefault();
      if (id.value.trim()) return go("/events/" + encodeURIComponent(id.value.trim()));
      go("/events", { event_type: type.value.trim(), since: isoFromLocal(since.value), until: isoFromLocal(until.value) });
    } }, h("label", {}, "Id ", id), h("label", {}, "Type ", type), h("label", {}, "From ", since), h("label", {}, "To ", until), h("button", { type: "submit" }, "Search"));
    const r = await api("GET", t() + "/events" + qs({ event_type: params.get("event_type"), since: params.get("since"), until: params.get("until"), cursor: params.get("cursor"), limit: 50 }));
    page("Events", form, table(["event", "type", "source", "created"], r.data.map((e) => h("tr", {},
      h("td", {}, h("a", { href: "#/events/" + encodeURIComponent(e.id) }, e.id)), h("td", {}, e.type), h("td", {}, e.source || ""), h("td", {}, when(e.created_at)))),
    "No events match."), nextLink("/events", params, r.next_cursor));
  }
  async function eventDetail(params, id) {
    const base = t() + "/events/" + encodeURIComponent(id);
    const [e, ds] = await Promise.all([api("GET", base), api("GET", base + "/deliveries?limit=250")]);
    page("Event " + e.id,
      fieldRows([["type", e.type], ["timestamp", when(e.timestamp)], e.source ? ["source", e.source] : null,
        e.resource ? ["resource", (e.resource.type || "") + " " + e.resource.id] : null]),
      h("h2", {}, "Payload"), h("pre", { class: "json", id: "payload" }, pretty(e.data)),
      h("h2", {}, "Deliveries (" + ds.data.length + ")"),
      ds.data.length ? ds.data.map(deliverySection) : h("p", { class: "empty" }, "No endpoint subscribed to this event when it was published."));
    if (ds.data.some((d) => d.state === "pending")) refreshSoon();
  }

  // ---------- event types, sources, received requests ----------
  async function eventTypes() {
    const r = await pages("/v1/event-types", {}, 1000);
    // The generated documentation needs the Bearer header, so it is fetched here rather than
    // linked: Markdown is shown as text in a <pre>, HTML is offered as a download (opened from
    // a blob URL it would inherit this page's CSP, which blocks its inline styles).
    const docsOut = h("pre", { class: "docs", id: "event-type-docs", hidden: true });
    async function fetchDocs(format) {
      const resp = await fetch("/v1/event-types/docs?format=" + format,
        { headers: { Authorization: "Bearer " + state.key }, credentials: "omit", cache: "no-store" });
      const text = await resp.text();
      if (!resp.ok) {
        let msg = "HTTP " + resp.status;
        try { const p = JSON.parse(text); msg = p.detail || p.title || msg; } catch (e) { /* not a problem document */ }
        throw new Error(msg);
      }
      return text;
    }
    const showDocs = h("button", { type: "button", id: "show-event-type-docs", onclick: async () => {
      try {
        docsOut.textContent = await fetchDocs("markdown");
        docsOut.hidden = false;
      } catch (ex) { flash("Documentation: " + ex.message, "error"); }
    } }, "Show documentation (Markdown)");
    const downloadDocs = h("button", { type: "button", class: "secondary", id: "download-event-type-docs", onclick: async () => {
      try {
        const url = URL.createObjectURL(new Blob([await fetchDocs("html")], { type: "text/html" }));
        const a = h("a", { href: url, download: "webhook-events.html" });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
      } catch (ex) { flash("Documentation: " + ex.message, "error"); }
    } }, "Download documentation (HTML)");
    const status = (x) => {
      if (!x.deprecated) return "";
      return h("span", { class: "badge state-dead" }, "deprecated" + (x.sunset ? " · sunset " + x.sunset.slice(0, 10) : ""));
    };
    page("Event types",
      h("div", { class: "toolbar" }, showDocs, downloadDocs),
      table(["name", "version", "description", ""], r.items.map((x) => h("tr", {},
        h("td", {}, code(x.name)),
        h("td", { class: "num" }, x.version ? "v" + x.version : ""),
        h("td", {}, x.description || "", x.trigger ? h("div", { class: "trigger" }, "Sent when: " + x.trigger) : null),
        h("td", {}, status(x)))),
      "The catalog is empty.", [1]),
      docsOut);
  }
  async function sources() {
    const r = await pages(t() + "/sources", {}, 1000);
    page("Sources", h("p", {}, "Ingest URLs where other platforms send webhooks to this tenant; see docs/receiving.md."),
      table(["name", "scheme", "state", "created"], r.items.map((x) => h("tr", {},
        h("td", {}, h("a", { href: "#/sources/" + x.id }, x.name)), h("td", {}, x.verification.scheme),
        h("td", {}, x.enabled ? "enabled" : "disabled"), h("td", {}, when(x.created_at)))), "No sources yet."));
  }
  async function sourceDetail(params, id) {
    const status = params.get("status") || "";
    const [src, rr] = await Promise.all([api("GET", t() + "/sources/" + encodeURIComponent(id)),
      api("GET", t() + "/received-requests" + qs({ source_id: id, status, cursor: params.get("cursor"), limit: 50 }))]);
    const sel = h("select", { onchange: (e) => go("/sources/" + id, { status: e.target.value }) },
      ["", "accepted", "duplicate", "quarantined", "rejected"].map((x) => h("option", { value: x, selected: x === status }, x || "any status")));
    page("Source " + src.name,
      fieldRows([["id", code(src.id)], ["ingest URL", code(src.ingest_url)], ["verification", src.verification.scheme],
        ["state", src.enabled ? "enabled" : "disabled"], ["dedup", src.dedup ? src.dedup.by : "—"]]),
      h("h2", {}, "Received requests"), h("div", { class: "toolbar" }, h("label", {}, "Status ", sel)),
      table(["request", "received", "status", "reason", "event"], rr.data.map((x) => h("tr", {},
        h("td", {}, h("a", { href: "#/received/" + x.id }, x.id)), h("td", {}, when(x.received_at)), h("td", {}, h("span", { class: "badge rr-" + x.status }, x.status)),
        h("td", {}, x.reason || ""), h("td", {}, x.event_id ? h("a", { href: "#/events/" + encodeURIComponent(x.event_id) }, x.event_id) : ""))), "Nothing received yet."),
      nextLink("/sources/" + id, params, rr.next_cursor));
  }
  async function receivedDetail(params, id) {
    const x = await api("GET", t() + "/received-requests/" + encodeURIComponent(id));
    let body = x.body || "";
    try { body = pretty(JSON.parse(body)); } catch (e) { /* not JSON: shown as received */ }
    const replay = x.status === "rejected" ? null : h("button", { type: "button", id: "replay-received", onclick: async () => {
      if (!await confirmDialog("Replay request " + x.id + "? Its event is queued again for the endpoints subscribed to it now.", "Replay")) return;
      try {
        const r = await api("POST", t() + "/received-requests/" + encodeURIComponent(id) + "/replay", x.status === "quarantined" ? { force: true } : {});
        flash("Replayed: " + r.deliveries + " deliveries queued.");
        route();
      } catch (ex) { flash(ex.message, "error"); }
    } }, x.status === "quarantined" ? "Accept and forward" : "Replay");
    page("Received request " + x.id,
      fieldRows([["source", h("a", { href: (x.source_id.startsWith("bsrc_") ? "#/broker-sources/" : "#/sources/") + x.source_id }, x.source_id)],
        ["received", when(x.received_at)], ["status", x.status],
        x.reason ? ["reason", x.reason] : null, ["from", x.remote_addr], ["method", x.method + " " + x.path],
        x.event_id ? ["event", h("a", { href: "#/events/" + encodeURIComponent(x.event_id) }, x.event_id)] : null]),
      h("div", { class: "toolbar" }, replay),
      h("h2", {}, "Headers"), h("pre", { class: "json" }, pretty(x.headers)),
      h("h2", {}, "Body"), h("pre", { class: "json" }, x.body_base64 ? "(binary, base64) " + x.body_base64 : body),
      h("h2", {}, "Forwarding"), deliveryTable(x.forwarding || []));
  }

  // ---------- broker sources ----------
  // sourceTypes are the server's broker source types with their settings, as the types describe
  // them (GET /v1/source-types): the forms are built from them, as the endpoint forms are from
  // the destination types. Fetched once per sign-in.
  async function sourceTypes() {
    if (state.srcTypes) return state.srcTypes;
    try {
      const r = await api("GET", "/v1/source-types");
      state.srcTypes = r.data;
      return r.data;
    } catch (ex) {
      if (ex.name === "AbortError" || ex.status === 401) throw ex;
      return [];
    }
  }
  // readsText says where a broker source reads: the settings its type marks as such (a stream,
  // a queue, topics, a subscription).
  function readsText(x, types) {
    const ty = typeOf(types, x.type), c = x.config || {};
    const parts = ((ty && ty.settings) || []).filter((st) => st.destination && c[st.name] !== undefined && c[st.name] !== null && c[st.name] !== "")
      .map((st) => st.name + " " + settingValue(c[st.name]));
    return parts.length ? parts.join(" · ") : x.type + " source";
  }
  // brokerHealth shows what the nodes last found of the broker: an unhealthy source in red with
  // its error, and since when.
  function brokerHealth(x) {
    const hl = x.health || { state: "starting" };
    const cls = { healthy: "state-succeeded", unhealthy: "state-dead", starting: "state-pending" }[hl.state] || "";
    return h("span", { class: "broker-health", "data-health": hl.state },
      h("span", { class: "badge " + cls }, hl.state), hl.since ? [" since ", when(hl.since)] : "",
      hl.state === "unhealthy" && hl.last_error ? h("div", { class: "error last-error" }, hl.last_error) : null);
  }
  function mappingText(m) {
    if (!m) return "—";
    const t = m.event_type || {}, i = m.event_id || {};
    const ty = t.from === "fixed" ? "fixed " + t.value : t.from === "header" ? "header " + t.name : t.from === "field" ? "field " + t.path :
      "subject" + (t.prefix ? " without prefix " + t.prefix : "");
    const id = i.from === "header" ? "header " + i.name : i.from === "field" ? "field " + i.path : "the broker's message identity";
    return "event type from " + ty + "; event id from " + id;
  }
  function brokerSourceTable(list, types) {
    return table(["source", "type", "reads", "health", "state"], list.map((x) => h("tr", { "data-broker-source": x.id, class: x.enabled && x.health && x.health.state === "unhealthy" ? "unhealthy" : null },
      h("td", {}, h("a", { href: "#/broker-sources/" + x.id }, x.name || x.id), h("div", { class: "hint" }, x.id)),
      h("td", {}, typeBadge(x), credentialsHint(x)),
      h("td", {}, readsText(x, types)),
      h("td", {}, x.enabled ? brokerHealth(x) : h("span", { class: "hint" }, "not consumed")),
      h("td", {}, x.enabled ? "enabled" : h("span", { class: "badge state-dead" }, "disabled")))), "No broker sources yet.");
  }
  function unhealthyBanner(list) {
    const bad = list.filter((x) => x.enabled && x.health && x.health.state === "unhealthy");
    return bad.length ? h("p", { class: "alert", id: "unhealthy-sources", role: "alert" },
      plural(bad.length, "broker source cannot", "broker sources cannot") + " read its broker: " + bad.map((x) => x.name || x.id).join(", ") +
      ". Herald keeps trying with backoff; the broker keeps the messages meanwhile.") : null;
  }
  async function brokerSources() {
    const [r, types] = await Promise.all([pages(t() + "/broker-sources", {}, 1000), sourceTypes()]);
    const banner = h("div", { id: "broker-sources-banner" }, unhealthyBanner(r.items));
    const box = h("div", { id: "broker-sources-table" }, brokerSourceTable(r.items, types));
    page("Broker sources", h("p", {}, "Message brokers read by this tenant: each message becomes an event, fanned out to the endpoints. See docs/sources.md."),
      banner, box,
      h("p", { class: "hint" }, "Health is what the nodes' consumers last found: starting (not read yet), healthy, or unhealthy with the broker's error. It updates by itself."),
      h("h2", {}, "Add a broker source"), types.length ? brokerSourceForm(types) : h("p", { class: "hint" }, "This server runs no broker source type."));
    // The health changes while the page is shown: update the list in place (not the form).
    const at = location.hash;
    const poll = async () => {
      if (location.hash !== at || !box.isConnected) return;
      try {
        const again = await pages(t() + "/broker-sources", {}, 1000);
        if (location.hash !== at || !box.isConnected) return;
        box.replaceChildren(brokerSourceTable(again.items, types));
        banner.replaceChildren(...[unhealthyBanner(again.items)].filter(Boolean));
      } catch (e) { /* the next round tries again */ }
      setTimeout(poll, 2000);
    };
    setTimeout(poll, 2000);
  }
  // brokerSourceForm creates a broker source: its type and the type's settings, and the mapping
  // of a message to an event (event type and event id), each problem of the API next to its field.
  function brokerSourceForm(types) {
    const prefix = "bsrc-";
    const name = h("input", { type: "text", id: "bsrc-name", name: "name", size: 40, placeholder: "orders from NATS" });
    const sel = h("select", { id: "bsrc-type", name: "type" }, types.map((x) => h("option", { value: x.name }, x.name)));
    const settingsBox = h("div", { class: "settings-box" });
    let fields = null;
    function show() {
      fields = settingsFields(typeOf(types, sel.value), null, [], prefix);
      settingsBox.replaceChildren(fields.box);
    }
    sel.addEventListener("change", show);
    show();
    // The mapping: where the event type and the event id come from, with the one extra field
    // each choice needs (docs/sources.md).
    const TYPE_FROM = { subject: ["prefix", "prefix stripped from the subject (optional)", "orders."], header: ["name", "header name", "event-type"],
      field: ["path", "dotted path in the JSON body", "meta.type"], fixed: ["value", "the event type", "order.created"] };
    const ID_FROM = { message: null, header: ["name", "header name", "Nats-Msg-Id"], field: ["path", "dotted path in the JSON body", "id"] };
    function rule(key, label, choices, dflt) {
      const from = h("select", { id: "bsrc-" + key + "-from" }, Object.keys(choices).map((c) => h("option", { value: c, selected: c === dflt }, c)));
      const extra = h("input", { type: "text", id: "bsrc-" + key + "-arg", size: 30, autocomplete: "off" });
      const extraLabel = h("label", { for: extra.id });
      const extraBox = h("span", { class: "mapping-arg" }, " ", extraLabel, " ", extra);
      const sync = () => {
        const c = choices[from.value];
        extraBox.hidden = !c;
        if (c) { extraLabel.textContent = c[1]; extra.placeholder = c[2]; }
      };
      from.addEventListener("change", sync);
      sync();
      const row = h("div", { class: "field", "data-mapping": key }, h("label", { for: from.id }, label), from, extraBox, fieldError("mapping." + key));
      const collect = () => {
        const c = choices[from.value], out = { from: from.value };
        if (c && extra.value.trim() !== "") out[c[0]] = extra.value.trim();
        return out;
      };
      return { row, collect };
    }
    const evType = rule("event_type", "event type from", TYPE_FROM, "subject");
    const evID = rule("event_id", "event id from", ID_FROM, "message");
    const schema = h("textarea", { id: "bsrc-schema", rows: 4, cols: 60, placeholder: '{"type": "object", "required": ["order"]}' });
    const form = h("form", { class: "card broker-source-form", id: "broker-source-form", novalidate: true, onsubmit: async (ev) => {
      ev.preventDefault();
      const body = { name: name.value.trim(), type: sel.value, mapping: { event_type: evType.collect(), event_id: evID.collect() } };
      try {
        body.config = fields.collect();
      } catch (ex) { showFieldErrors(form, { errors: [{ location: "body.config", message: "not valid JSON: " + ex.message }] }); return; }
      if (schema.value.trim()) {
        try { body.schema = JSON.parse(schema.value); } catch (ex) { showFieldErrors(form, { errors: [{ location: "body.schema", message: "not valid JSON: " + ex.message }] }); return; }
      }
      try {
        const x = await api("POST", t() + "/broker-sources", body);
        flash("Broker source created: every node starts reading it.");
        go("/broker-sources/" + x.id);
      } catch (ex) {
        const rest = showFieldErrors(form, ex);
        flash(rest.length || !(ex.errors || []).length ? ex.message : "The broker source was not saved: see the messages next to the fields.", "error");
      }
    } },
    h("div", { class: "field" }, h("label", { for: name.id }, "name"), name, fieldError("name")),
    h("div", { class: "field" }, h("label", { for: sel.id }, "type"), sel, fieldError("type")),
    settingsBox,
    h("fieldset", { class: "mapping" }, h("legend", {}, "How a message becomes an event"), evType.row, evID.row,
      h("div", { class: "hint" }, "The event type must be in the event catalog. An event id taken from the message makes a redelivered message fan out once."),
      fieldError("mapping")),
    h("div", { class: "field" }, h("label", { for: schema.id }, "JSON Schema (optional)"), schema,
      h("div", { class: "hint" }, "Event data that does not satisfy it is quarantined, not published."), fieldError("schema")),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "bsrc-submit" }, "Add")));
    return form;
  }
  async function brokerSourceDetail(params, id) {
    const base = t() + "/broker-sources/" + encodeURIComponent(id);
    const status = params.get("status") || "";
    const [x, types, rr] = await Promise.all([api("GET", base), sourceTypes(),
      api("GET", t() + "/received-requests" + qs({ source_id: id, status, cursor: params.get("cursor"), limit: 50 }))]);
    const label = x.name || x.id;
    const toggle = h("button", { type: "button", id: "toggle-broker-source", class: x.enabled ? "danger" : "", onclick: async () => {
      if (x.enabled && !await confirmDialog("Disable " + label + "? The nodes stop reading it; the broker keeps its messages until you enable it again.", "Disable")) return;
      try {
        await api("PATCH", base, { enabled: !x.enabled });
        flash(x.enabled ? "Broker source disabled." : "Broker source enabled: the nodes read it again.");
        route();
      } catch (ex) { flash(ex.message, "error"); }
    } }, x.enabled ? "Disable" : "Enable");
    const del = h("button", { type: "button", id: "delete-broker-source", class: "danger", onclick: async () => {
      if (!await confirmDialog("Delete " + label + " and its quarantined messages? The nodes stop reading it; unacknowledged messages stay on the broker. Its events stay.", "Delete")) return;
      try {
        await api("DELETE", base);
        flash("Broker source deleted.");
        go("/broker-sources");
      } catch (ex) { flash(ex.message, "error"); }
    } }, "Delete");
    const filter = h("select", { id: "received-status", onchange: (e) => go("/broker-sources/" + id, { status: e.target.value }) },
      [["", "quarantined or rejected"], ["quarantined", "quarantined"], ["rejected", "rejected"], ["duplicate", "duplicate"]]
        .map(([v, l]) => h("option", { value: v, selected: v === status }, l)));
    // Only messages that did not become events are stored as received messages of the source.
    const held = rr.data.filter((m) => status || m.status === "quarantined" || m.status === "rejected");
    page("Broker source " + label,
      x.enabled && x.health && x.health.state === "unhealthy" ? h("p", { class: "alert", role: "alert" }, "Herald cannot read this broker: " + (x.health.last_error || "unknown error") +
        ". It keeps trying with backoff; the broker keeps the messages meanwhile.") : null,
      fieldRows([["id", code(x.id)], ["health", x.enabled ? brokerHealth(x) : "not consumed (disabled)"], ["state", x.enabled ? "enabled" : "disabled"],
        ["reads", readsText(x, types)], ...destinationRows(x, types), ["mapping", mappingText(x.mapping)],
        ["schema", x.schema ? code(JSON.stringify(x.schema)) : "none"], ["created", when(x.created_at)]]),
      h("div", { class: "toolbar" }, toggle, " ", del, " ", h("a", { href: "#/events" }, "Events")),
      h("h2", {}, "Quarantined and rejected messages"), h("div", { class: "toolbar" }, h("label", {}, "Status ", filter)),
      table(["message", "received", "status", "reason", ""], held.map((m) => h("tr", { "data-received": m.id },
        h("td", {}, h("a", { href: "#/received/" + m.id }, m.id), h("div", { class: "hint" }, m.path || "")), h("td", {}, when(m.received_at)),
        h("td", {}, h("span", { class: "badge rr-" + m.status }, m.status)), h("td", {}, m.reason || ""),
        h("td", {}, m.status === "rejected" ? "" : h("a", { href: "#/received/" + m.id }, m.status === "quarantined" ? "review and replay" : "replay")))),
      "No message held: every message read became an event."),
      nextLink("/broker-sources/" + id, params, rr.next_cursor));
    if (x.enabled && (!x.health || x.health.state !== "healthy")) refreshSoon();
  }

  // ---------- boot ----------
  async function boot() {
    // A portal link carries its token in the fragment, which no server sees: keep it in this
    // tab only and take it out of the address bar and history at once.
    const m = location.hash.match(/^#portal=(hk_portal_[A-Za-z0-9_\-.]+)$/);
    if (m) {
      state.key = m[1];
      sessionStorage.removeItem(TENANT);
      history.replaceState(null, "", location.pathname + "#/home");
    }
    if (!state.key) return renderSignIn();
    try {
      await start();
    } catch (e) {
      signOut(e.status === 401 ? "Your credential is no longer valid (revoked, or the portal link expired)." : "Sign-in failed: " + e.message);
    }
  }
  boot();
})();
