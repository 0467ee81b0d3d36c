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
  // utc is a moment as an absolute UTC time, to the second: "2026-12-03 18:55:02 UTC".
  function utc(iso) {
    const d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }
  // when is a moment relative to now, with the absolute time on hover.
  function when(iso) {
    if (!iso) return "—";
    return h("time", { datetime: iso, title: new Date(iso).toISOString() }, ago(iso));
  }
  // whenFull is a moment for detail views: absolute (UTC) and relative, so retry rhythms and
  // incident timelines can be read.
  function whenFull(iso) {
    if (!iso) return "—";
    return h("time", { datetime: iso, title: new Date(iso).toISOString(), class: "full" }, utc(iso), h("span", { class: "hint" }, " · " + ago(iso)));
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
    // In a box of its own that scrolls sideways, so that a wide table never widens the page.
    return h("div", { class: "table-box" }, h("table", {}, h("thead", {}, h("tr", {}, headers.map((x, i) => h("th", { class: num.has(i) ? "num" : null }, x)))),
      h("tbody", {}, rows)));
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
    [/^\/failures$/, failures],
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
    const [hour, st, series, att, eps, rejected] = await Promise.all([
      api("GET", t() + "/stats?since=1h"),
      api("GET", t() + "/stats" + qs({ since: period })),
      api("GET", t() + "/stats/timeseries" + qs({ since: period, buckets: period === "1h" ? 12 : period === "24h" ? 24 : period === "7d" ? 28 : 30 })),
      pages(t() + "/attempts", { since: new Date(Date.now() - periodMs(period)).toISOString() }, 1000),
      pages(t() + "/endpoints", {}, 1000),
      // What the tenant's sources refused in the last hour (bad signatures, unknown senders).
      api("GET", t() + "/received-requests" + qs({ status: "rejected", since: new Date(Date.now() - 3600e3).toISOString(), limit: 250 })),
    ]);
    const nRejected = rejected.data.length + (rejected.next_cursor ? "+" : "");
    // Broker sources that cannot read their broker are named here too: an outage of the bus
    // is seen from the first page. A failure to list them leaves the overview as it is.
    let bsrc = [];
    try { bsrc = (await pages(t() + "/broker-sources", {}, 1000)).items; } catch (e) { if (e.name === "AbortError") throw e; }
    const bad = unhealthyBanner(bsrc);
    const periodSel = h("select", { id: "period", onchange: (e) => go("/home", { period: e.target.value }) },
      PERIODS.map(([v, l]) => h("option", { value: v, selected: v === period }, l)));
    const num = (id, label, value, cls, href) => h("a", { class: "stat " + (cls || ""), id, href: href || null },
      h("span", { class: "value" }, String(value)), h("span", { class: "label" }, label));
    const none = !eps.items.length ? h("p", { class: "card", id: "get-started" }, "No endpoint yet: ",
      h("a", { href: "#/endpoints" }, "add one"), " to start receiving this tenant's events, or ", h("a", { href: "#/sources" }, "add a source"), " to take in webhooks from another platform.") : null;
    page("Overview of " + state.tenant, none,
      bad ? h("a", { href: "#/broker-sources", class: "alert-link" }, bad) : null,
      h("section", { class: "hero" },
        num("failed-last-hour", "deliveries failed in the last hour", hour.failed_deliveries, hour.failed_deliveries ? "bad" : "good", "#/failures?since=1h"),
        num("rejected-last-hour", "requests rejected by sources in the last hour", nRejected, rejected.data.length ? "bad" : "good", "#/sources"),
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
      .map((e) => h("tr", {}, h("td", {}, h("a", { href: "#/endpoints/" + e.id, title: e.id }, byID.has(e.id) ? epName(byID.get(e.id)) : e.id),
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
      return h("tr", { "data-endpoint": e.id }, h("td", {}, h("a", { href: "#/endpoints/" + e.id, title: e.id }, destinationText(e, types)), h("div", { class: "hint", title: e.id }, e.description || "no description")),
        h("td", {}, typeBadge(e), credentialsHint(e)),
        h("td", {}, endpointState(e)),
        h("td", { class: "num" }, x ? pct(x.n - x.failed, x.n) : "—"), h("td", { class: "num" }, latencies(x)),
        h("td", { class: "num" }, x ? x.n : 0), h("td", {}, e.event_types.join(", ")));
    });
    page("Endpoints", table(["destination", "type", "state", "success (24 h)", "latency p50 / p95", "attempts", "subscriptions"], rows, "No endpoints yet: add one below with the URL that should receive this tenant's events, then send it a test event from its page.", [3, 4, 5]),
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
      const where = slot ? (e.location || "").replace(/^body\./, "").slice(slot.dataset.field.length).replace(/^\./, "") : "";
      const msg = (where ? where + ": " : "") + e.message;
      if (slot) slot.textContent = (slot.textContent ? slot.textContent + "; " : "") + msg;
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
  // parseDurations reads a retry schedule typed as "0, 30s, 5m, 2h, 1d" (a bare number is
  // seconds) into seconds; it throws on an item it cannot read.
  function parseDurations(text) {
    const unit = { "": 1, s: 1, m: 60, h: 3600, d: 86400 };
    return text.split(",").map((x) => x.trim()).filter(Boolean).map((x, i) => {
      const m = x.match(/^(\d+(?:\.\d+)?)\s*([smhd]?)$/);
      if (!m) throw new Error("item " + (i + 1) + " (" + x + ") is not a duration like 30s, 5m, 2h or 1d");
      return Math.round(parseFloat(m[1]) * unit[m[2]]);
    });
  }
  // parseHeaders reads "Name: value" lines; it throws on a line without a colon.
  function parseHeaders(text) {
    const out = {};
    text.split("\n").map((x) => x.trim()).filter(Boolean).forEach((line, i) => {
      const at = line.indexOf(":");
      if (at <= 0) throw new Error("line " + (i + 1) + " is not Name: value");
      out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    });
    return out;
  }
  // settingsForm edits what an endpoint receives and how it is sent: the fields besides its
  // destination. Only the fields changed are sent; each problem of the API shows at its field.
  function settingsForm(e) {
    const headersText = Object.entries(e.headers || {}).map(([k, v]) => k + ": " + v).join("\n");
    // Exact, unlike dur: the form must read back what the endpoint has.
    const exact = (x) => x && x % 86400 === 0 ? x / 86400 + "d" : x && x % 3600 === 0 ? x / 3600 + "h" : x && x % 60 === 0 ? x / 60 + "m" : x + "s";
    const sched = (e.retry_schedule || []).map(exact).join(", ");
    const f = {
      description: h("input", { type: "text", id: "ep-description", size: 50, value: e.description || "" }),
      event_types: h("input", { type: "text", id: "ep-event-types", size: 50, value: e.event_types.join(", ") }),
      headers: h("textarea", { id: "ep-headers", rows: 3, cols: 60, placeholder: "X-Team: billing" }, headersText),
      rate_limit: h("input", { type: "number", id: "ep-rate-limit", min: 0, step: "any", value: e.rate_limit || 0 }),
      max_concurrency: h("input", { type: "number", id: "ep-max-concurrency", min: 1, step: 1, value: e.max_concurrency }),
      timeout_seconds: h("input", { type: "number", id: "ep-timeout", min: 1, step: 1, value: e.timeout_seconds }),
      retry_schedule: h("input", { type: "text", id: "ep-retry-schedule", size: 50, value: sched }),
      filter: h("textarea", { id: "ep-filter", rows: 2, cols: 60, placeholder: "data.amount > 1000" }, e.filter || ""),
      transform: h("textarea", { id: "ep-transform", rows: 2, cols: 60, placeholder: 'omit(event, ["data.card"])' }, e.transform || ""),
    };
    const row = (name, label, hint) => h("div", { class: "field" }, h("label", { for: f[name].id }, label), f[name],
      hint ? h("div", { class: "hint" }, hint) : null, fieldError(name));
    const form = h("form", { class: "card endpoint-form", id: "endpoint-settings-form", novalidate: true, onsubmit: async (ev) => {
      ev.preventDefault();
      const body = {}, local = [];
      const str = (name, cur) => { if (f[name].value.trim() !== (cur || "")) body[name] = f[name].value.trim(); };
      const num = (name, cur) => {
        if (f[name].value.trim() === "") { local.push({ location: "body." + name, message: "required" }); return; }
        const v = Number(f[name].value);
        if (v !== cur) body[name] = v;
      };
      str("description", e.description);
      const types = f.event_types.value.split(",").map((x) => x.trim()).filter(Boolean);
      if (types.join(",") !== e.event_types.join(",")) body.event_types = types;
      try {
        const hd = parseHeaders(f.headers.value);
        if (JSON.stringify(hd) !== JSON.stringify(e.headers || {})) body.headers = hd;
      } catch (ex) { local.push({ location: "body.headers", message: ex.message }); }
      num("rate_limit", e.rate_limit || 0);
      num("max_concurrency", e.max_concurrency);
      num("timeout_seconds", e.timeout_seconds);
      try {
        const rs = parseDurations(f.retry_schedule.value);
        if (rs.join(",") !== (e.retry_schedule || []).join(",")) body.retry_schedule = rs;
      } catch (ex) { local.push({ location: "body.retry_schedule", message: ex.message }); }
      str("filter", e.filter);
      str("transform", e.transform);
      if (local.length) { showFieldErrors(form, { errors: local }); return; }
      if (!Object.keys(body).length) { showFieldErrors(form, {}); flash("Nothing changed."); return; }
      try {
        await api("PATCH", t() + "/endpoints/" + encodeURIComponent(e.id), body);
        flash("Endpoint saved.");
        route();
      } catch (ex) {
        const rest = showFieldErrors(form, ex);
        flash(rest.length || !(ex.errors || []).length ? ex.message : "The endpoint was not saved: see the messages next to the fields.", "error");
      }
    } },
    row("description", "description"),
    row("event_types", "event types", "Comma-separated: exact names, prefixes (invoice.*) or * for everything."),
    row("headers", "headers", "Extra request headers, one Name: value a line."),
    row("rate_limit", "rate limit (requests per second)", "0 for none."),
    row("max_concurrency", "max concurrency", "Requests in flight at once."),
    row("timeout_seconds", "timeout (seconds)", "Per attempt, 1 to 30."),
    row("retry_schedule", "retry schedule", "The wait before each attempt, comma-separated: 0, 30s, 5m, 2h, 1d. Attempts have ±20 % jitter."),
    row("filter", "filter (CEL)", "Only events for which it is true are delivered; empty for all. Checked when saved."),
    row("transform", "transformation (CEL)", "Its value is the body sent instead of the envelope; empty for none. Tested when saved against each subscribed type's example."),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "endpoint-settings-submit" }, "Save settings")));
    return form;
  }
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
    const [e, , att, pend, catalog, types, fails, deadN] = await Promise.all([
      api("GET", base),
      endpointIndex(),
      api("GET", t() + "/attempts" + qs({ endpoint_id: id, limit: 25 })),
      api("GET", t() + "/deliveries" + qs({ endpoint_id: id, state: ["pending", "dead"], limit: 25 })),
      pages("/v1/event-types", {}, 1000),
      destinationTypes(),
      api("GET", t() + "/failures" + qs({ since: "24h", endpoint_id: id })),
      pages(t() + "/deliveries", { endpoint_id: id, state: "dead" }, 5000),
    ]);
    const label = endpointLabel(e, types);
    const nDead = deadN.more ? "more than " + deadN.items.length : String(deadN.items.length);
    const replayDead = h("button", { type: "button", id: "replay-endpoint-dead", disabled: !deadN.items.length, onclick: async () => {
      if (!await confirmDialog("Replay " + nDead + " dead deliver" + (nDead === "1" ? "y" : "ies") + " of " + label + "? They are queued again, due now, with a fresh retry schedule; receivers see the same webhook-id.", "Replay " + nDead)) return;
      try {
        const r = await api("POST", t() + "/replays", { endpoint_id: id });
        flash("Queued " + plural(r.queued, "delivery", "deliveries") + " again.");
        route();
      } catch (ex) { flash(ex.message, "error"); }
    } }, "Replay " + nDead + " dead");
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
    const del = h("button", { type: "button", id: "delete-endpoint", class: "danger", onclick: async () => {
      if (!await confirmDialog("Delete " + label + " with its deliveries and attempts? Events stay; receivers get nothing more from it. This cannot be undone.", "Delete")) return;
      try {
        await api("DELETE", base);
        flash("Endpoint deleted.");
        go("/endpoints");
      } catch (ex) { flash(ex.message, "error"); }
    } }, "Delete");
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
    page("Endpoint " + (e.description ? e.description + " · " : "") + label,
      fieldRows([["id", code(e.id)], ...destinationRows(e, types), ["state", endpointState(e)], ["subscriptions", e.event_types.join(", ")],
        ["description", e.description || "—"], ["created", whenFull(e.created_at)], ["updated", whenFull(e.updated_at)], ["format", h("span", { id: "endpoint-format" }, e.format || "herald")], ["signature", e.signature_scheme + " · " + (e.signature_format || "standard-webhooks")],
        ["filter", e.filter ? code(e.filter) : "none"], ["transformation", e.transform ? code(e.transform) : "none"],
        ["batching", e.batch && e.batch.enabled ? "up to " + e.batch.max_events + " events or " + dur(e.batch.max_wait_ms / 1000) : "off"],
        ["ordered", e.ordered ? "yes: one at a time, in publish order" : "no"],
        ["timeout", e.timeout_seconds + " s"], ["concurrency", e.max_concurrency], ["rate limit", e.rate_limit ? e.rate_limit + "/s" : "none"],
        ["retry schedule", plural(sched.length, "attempt") + ": " + sched.map(dur).join(", ") + " (±20 % jitter)"],
        ["signing secret", secretBox]]),
      h("div", { class: "toolbar" }, toggle, " ", del, " ", replayDead, " ", h("a", { href: "#/deliveries?endpoint_id=" + encodeURIComponent(id) }, "All deliveries"), " · ",
        h("a", { href: "#/dead?endpoint_id=" + encodeURIComponent(id) }, "Dead letters")),
      test,
      h("details", { class: "edit-destination", id: "edit-settings" }, h("summary", {}, "Edit settings: subscriptions, description, headers, limits, retries, filter, transformation"),
        settingsForm(e)),
      h("details", { class: "edit-destination", id: "edit-destination" }, h("summary", {}, "Change the destination"),
        h("p", { class: "hint" }, "Credentials are never shown: leave one blank to keep it."), destinationForm(types, e)),
      h("h2", {}, "What is failing here (24 h)"), fails.groups.length ? h("div", { id: "endpoint-failures" }, failureTable(fails.groups, "24h", true)) :
        h("p", { class: "empty" }, "No failed attempt in the last 24 hours."),
      h("h2", {}, "Pending and dead deliveries"), deliveryTable(pend.data, "Nothing pending or dead: every delivery to this endpoint succeeded."),
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
  // endpointIndex loads the tenant's endpoints once per page shown, so that deliveries name
  // their endpoint by its description or URL rather than its id.
  async function endpointIndex() {
    if (state.epIndex && state.epIndex.reads === state.reads) return state.epIndex.map;
    const { items } = await pages(t() + "/endpoints", {}, 1000);
    state.epIndex = { reads: state.reads, map: new Map(items.map((e) => [e.id, e])) };
    return state.epIndex.map;
  }
  function endpointOf(id) { return state.epIndex ? state.epIndex.map.get(id) : undefined; }
  // epName is how an endpoint is named to people: its description, else where it delivers.
  function epName(e) { return e.description || endpointLabel(e); }
  // epLink links an endpoint by its name, with its id (and URL) on hover.
  function epLink(id) {
    const e = endpointOf(id);
    return h("a", { href: "#/endpoints/" + encodeURIComponent(id), class: "endpoint-link", "data-endpoint-id": id,
      title: e ? id + " · " + endpointLabel(e) : id + " (deleted)" }, e ? epName(e) : id);
  }
  // waitReason says why a pending delivery has not been sent yet, from what the API tells of it
  // and of its endpoint: disabled, breaker open, ordered behind an earlier delivery, a retry
  // scheduled, or the rate limit / concurrency of the endpoint.
  function waitReason(d, list) {
    if (d.state !== "pending") return null;
    const e = endpointOf(d.endpoint_id);
    const due = !d.next_attempt_at || Date.parse(d.next_attempt_at) <= Date.now() + 1000;
    let why = null;
    if (e && !e.enabled) why = "endpoint disabled" + (e.disabled_reason ? " (" + e.disabled_reason + ")" : "") + ": waits until it is enabled";
    else if (e && e.breaker_state === "open") why = "circuit breaker open after repeated failures: paused, then one probe";
    else if (e && e.breaker_state === "half-open") why = "circuit breaker half-open: waits for the probe's result";
    else if (e && e.ordered && list.some((o) => o !== d && o.state === "pending" && o.endpoint_id === d.endpoint_id && Date.parse(o.created_at) < Date.parse(d.created_at)))
      why = "ordered endpoint: waits behind an earlier delivery";
    else if (!due) why = (d.attempt_count ? "retry " + (d.attempt_count + 1) + " scheduled" : "scheduled") + " " + ago(d.next_attempt_at);
    else if (e && e.rate_limit) why = "due: sent within the endpoint's rate limit (" + e.rate_limit + "/s)";
    else why = "due: being sent (at most " + (e ? e.max_concurrency : "?") + " at once)";
    return h("div", { class: "wait-reason hint", "data-wait": why.split(/[:(]/)[0].trim() }, why);
  }
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
  function deliveryTable(list, empty) {
    return table(["delivery", "event", "endpoint", "state", "attempts", "last status", "next attempt / error", ""],
      list.map((d) => h("tr", { "data-delivery": d.id, "data-state": d.state },
        h("td", {}, h("a", { href: "#/deliveries/" + d.id }, d.id), h("div", { class: "hint" }, when(d.created_at))),
        h("td", {}, h("a", { href: "#/events/" + encodeURIComponent(d.event_id) }, d.event_id), h("div", { class: "hint" }, d.event_type)),
        h("td", {}, epLink(d.endpoint_id)),
        h("td", {}, stateBadge(d.state)), h("td", { class: "num" }, d.attempt_count),
        h("td", { class: "num" }, d.last_status || "—"),
        h("td", {}, d.state === "pending" ? [d.next_attempt_at ? ["next ", when(d.next_attempt_at)] : "", waitReason(d, list), d.last_error ? h("div", { class: "hint" }, d.last_error) : null] : (d.last_error || "")),
        h("td", {}, retryButton(d)))), empty || "No deliveries match. Deliveries appear when an event is published to a subscribed endpoint: widen the filters, or send a test event from an endpoint's page.");
  }
  function attemptTable(list, showDelivery) {
    return table(["time", showDelivery ? "delivery" : null, "result", "latency", "error", "response"].filter(Boolean),
      list.map((a) => h("tr", {}, h("td", {}, whenFull(a.at)),
        showDelivery ? h("td", {}, h("a", { href: "#/deliveries/" + a.delivery_id }, a.delivery_id)) : null,
        h("td", {}, h("span", { class: "badge " + (a.success ? "state-succeeded" : "state-dead") }, a.status_code ? String(a.status_code) : (a.error_kind || "failed"))),
        h("td", { class: "num" }, (a.latency_ms || 0).toFixed(1) + " ms"), h("td", {}, a.error || ""),
        h("td", {}, a.response ? h("pre", { class: "excerpt" }, a.response.slice(0, 500)) : ""))), "No attempts yet.");
  }
  function deliveryFilters(params, path) {
    const f = {
      id: h("input", { name: "id", placeholder: "dlv_…", size: 10 }),
      endpoint_id: h("select", { name: "endpoint_id", id: "endpoint-filter" }, h("option", { value: "" }, "any endpoint"),
        [...(state.epIndex ? state.epIndex.map.values() : [])].map((e) => h("option", { value: e.id, title: e.id, selected: e.id === params.get("endpoint_id") }, epName(e)))),
      event_type: h("input", { name: "event_type", value: params.get("event_type") || "", placeholder: "invoice.paid", size: 20, list: "event-type-choices" }),
      since: h("input", { type: "datetime-local", name: "since" }),
      until: h("input", { type: "datetime-local", name: "until" }),
    };
    const states = h("select", { name: "state", id: "state-filter" }, ["", "pending", "succeeded", "dead"].map((x) => h("option", { value: x, selected: x === (params.get("state") || "") }, x || "any state")));
    return h("form", { class: "inline", onsubmit: (e) => {
      e.preventDefault();
      if (f.id.value.trim()) return go("/deliveries/" + encodeURIComponent(f.id.value.trim()));
      go(path, { endpoint_id: f.endpoint_id.value.trim(), event_type: f.event_type.value.trim(), state: path === "/dead" ? "" : states.value,
        since: isoFromLocal(f.since.value), until: isoFromLocal(f.until.value) });
    } }, h("label", {}, "Id ", f.id), h("label", {}, "Endpoint ", f.endpoint_id), h("label", {}, "Type ", f.event_type), eventTypeChoices(),
    path === "/dead" ? null : h("label", {}, "State ", states),
    h("label", {}, "From ", f.since), h("label", {}, "To ", f.until), h("button", { type: "submit" }, "Search"));
  }
  // eventTypeChoices offers the catalog's names to the event type filters (a datalist, filled
  // when the catalog arrives: a filter still takes any name or prefix).
  function eventTypeChoices() {
    const dl = h("datalist", { id: "event-type-choices" });
    pages("/v1/event-types", {}, 1000).then((r) => dl.replaceChildren(...r.items.map((x) => h("option", { value: x.name })))).catch(() => {});
    return dl;
  }
  function deliveryQuery(params) {
    let since = params.get("since") || "";
    if (since && !since.includes("T")) since = new Date(Date.now() - periodMs(since)).toISOString();
    return { endpoint_id: params.get("endpoint_id"), event_type: params.get("event_type"), state: params.get("state"),
      since, until: params.get("until"), cursor: params.get("cursor"), limit: 50 };
  }
  async function deliveries(params) {
    const [r] = await Promise.all([api("GET", t() + "/deliveries" + qs(deliveryQuery(params))), endpointIndex()]);
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
    const [d] = await Promise.all([api("GET", t() + "/deliveries/" + encodeURIComponent(id)), endpointIndex()]);
    page("Delivery " + d.id, deliverySection(d));
    if (d.state === "pending") refreshSoon();
  }
  function deliverySection(d) {
    return h("section", { class: "card delivery", "data-delivery": d.id, "data-state": d.state },
      h("h3", {}, "Delivery ", h("a", { href: "#/deliveries/" + d.id }, d.id), " to ", epLink(d.endpoint_id), " ", stateBadge(d.state), " ", retryButton(d)),
      fieldRows([["event", h("a", { href: "#/events/" + encodeURIComponent(d.event_id) }, d.event_id)], ["attempts", d.attempt_count],
        d.state === "pending" ? ["next attempt", whenFull(d.next_attempt_at)] : null,
        d.state === "pending" ? ["waiting because", waitReason(d, [d])] : null,
        ["last status", d.last_status || "—"], d.last_error ? ["last error", d.last_error] : null, ["created", whenFull(d.created_at)]]),
      attemptTable(d.attempts || [], false));
  }

  // ---------- what is failing ----------
  // failureClassText names a failure class of GET /failures: an HTTP status, or how the
  // request failed.
  function failureClassText(g) {
    return g.status_code ? "HTTP " + g.status_code : (g.error_kind || g.class).replace(/_/g, " ");
  }
  // replayGroupButton queues a group's dead deliveries again, after a confirmation.
  function replayGroupButton(g, since) {
    return h("button", { type: "button", class: "small replay-group", disabled: !g.dead, "data-endpoint": g.endpoint_id, "data-class": g.class, onclick: async () => {
      const e = endpointOf(g.endpoint_id);
      if (!await confirmDialog("Replay " + plural(g.dead, "dead delivery", "dead deliveries") + " of " + (e ? epName(e) : g.endpoint_id) + " that failed with " +
        failureClassText(g) + "? They are queued again, due now, with a fresh retry schedule; receivers see the same webhook-id.", "Replay " + g.dead)) return;
      try {
        const r = await api("POST", t() + "/failures/replay", { endpoint_id: g.endpoint_id, class: g.class, since });
        flash("Queued " + plural(r.queued, "delivery", "deliveries") + " again.");
        route();
      } catch (ex) { flash(ex.message, "error"); }
    } }, "Replay " + g.dead + " dead");
  }
  function disableButton(e) {
    if (!e || !e.enabled) return null;
    return h("button", { type: "button", class: "small danger disable-endpoint", "data-endpoint": e.id, onclick: async () => {
      if (!await confirmDialog("Disable " + epName(e) + "? New events create no deliveries for it, and its pending deliveries wait, until you enable it again.", "Disable")) return;
      try {
        await api("PATCH", t() + "/endpoints/" + encodeURIComponent(e.id), { enabled: false });
        flash("Endpoint disabled.");
        route();
      } catch (ex) { flash(ex.message, "error"); }
    } }, "Disable endpoint");
  }
  // failureTable lays out failure groups: what failed, how often and since when, an example
  // of the receiver's answer, and one action each.
  function failureTable(groups, since, oneEndpoint) {
    return table([oneEndpoint ? null : "endpoint", "failure", "attempts", "deliveries", "dead now", "first and last seen", "example", ""].filter((x) => x !== null),
      groups.map((g) => {
        const e = endpointOf(g.endpoint_id);
        return h("tr", { class: "failure-group", "data-endpoint": g.endpoint_id, "data-class": g.class },
          oneEndpoint ? null : h("td", {}, epLink(g.endpoint_id), e ? h("div", { class: "hint" }, endpointState(e)) : h("div", { class: "hint" }, "deleted")),
          h("td", {}, h("span", { class: "badge state-dead" }, failureClassText(g))),
          h("td", { class: "num" }, g.attempts), h("td", { class: "num" }, g.deliveries), h("td", { class: "num dead-count" }, g.dead),
          h("td", { class: "seen" }, h("div", {}, "first ", whenFull(g.first_seen)), h("div", {}, "last ", whenFull(g.last_seen))),
          h("td", {}, g.example.error ? h("div", { class: "hint" }, g.example.error) : null,
            g.example.response ? h("pre", { class: "excerpt example" }, g.example.response.slice(0, 300)) : null,
            h("a", { href: "#/deliveries/" + g.example.delivery_id }, "attempt of " + g.example.delivery_id)),
          h("td", {}, h("div", { class: "group-actions" }, replayGroupButton(g, since), oneEndpoint ? null : [disableButton(e), h("a", { href: "#/endpoints/" + encodeURIComponent(g.endpoint_id) }, "Open endpoint")])));
      }), "Nothing failed in this period.", oneEndpoint ? [1, 2, 3] : [2, 3, 4]);
  }
  const FAILURE_PERIODS = [["1h", "Last hour"], ["24h", "Last 24 hours"], ["7d", "Last 7 days"]];
  async function failures(params) {
    const since = params.get("since") || "24h";
    const [r] = await Promise.all([api("GET", t() + "/failures" + qs({ since })), endpointIndex()]);
    const sel = h("select", { id: "failures-since", onchange: (e) => go("/failures", { since: e.target.value }) },
      FAILURE_PERIODS.map(([v, l]) => h("option", { value: v, selected: v === since }, l)));
    page("What is failing",
      h("p", {}, "Failed attempts grouped by endpoint and by what went wrong. Read the example answer, fix the receiver (or its settings), then replay the group's dead deliveries."),
      h("div", { class: "toolbar" }, h("label", {}, "Period ", sel)),
      r.groups.length ? h("div", { id: "failure-groups" }, failureTable(r.groups, since, false)) :
        h("p", { class: "empty", id: "no-failures" }, "Nothing failed in this period. When a receiver fails, its failures are grouped here with an example answer and a replay button."),
      r.truncated ? h("p", { class: "hint" }, "Based on the newest 5000 attempts of the period.") : null);
  }

  // ---------- dead letters ----------
  async function dead(params) {
    const q = deliveryQuery(params);
    q.state = "dead";
    const [r] = await Promise.all([api("GET", t() + "/deliveries" + qs(q)), endpointIndex()]);
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
      deliveryFilters(params, "/dead"), h("div", { class: "toolbar" }, replay),
      deliveryTable(r.data, "No dead deliveries match: every delivery succeeded or is still being retried. What is failing shows the failures of the last hours."), nextLink("/dead", params, r.next_cursor));
  }

  // ---------- events ----------
  async function events(params) {
    const id = h("input", { name: "id", placeholder: "event id", size: 28, id: "event-id" });
    const type = h("input", { name: "event_type", value: params.get("event_type") || "", placeholder: "invoice.paid", size: 20, list: "event-type-choices" });
    const since = h("input", { type: "datetime-local" }), until = h("input", { type: "datetime-local" });
    const form = h("form", { class: "inline", onsubmit: (e) => {
      e.preventDefault();
      if (id.value.trim()) return go("/events/" + encodeURIComponent(id.value.trim()));
      go("/events", { event_type: type.value.trim(), since: isoFromLocal(since.value), until: isoFromLocal(until.value) });
    } }, h("label", {}, "Id ", id), h("label", {}, "Type ", type), eventTypeChoices(), h("label", {}, "From ", since), h("label", {}, "To ", until), h("button", { type: "submit" }, "Search"));
    const r = await api("GET", t() + "/events" + qs({ event_type: params.get("event_type"), since: params.get("since"), until: params.get("until"), cursor: params.get("cursor"), limit: 50 }));
    page("Events", form, table(["event", "type", "source", "created"], r.data.map((e) => h("tr", {},
      h("td", {}, h("a", { href: "#/events/" + encodeURIComponent(e.id) }, e.id)), h("td", {}, e.type), h("td", {}, e.source || ""), h("td", {}, when(e.created_at)))),
    "No events match. Publish one with POST /v1/tenants/{tenant}/events (docs/api.md), or send a test event from an endpoint's page."), nextLink("/events", params, r.next_cursor));
  }
  async function eventDetail(params, id) {
    const base = t() + "/events/" + encodeURIComponent(id);
    const [e, ds] = await Promise.all([api("GET", base), api("GET", base + "/deliveries?limit=250"), endpointIndex()]);
    page("Event " + e.id,
      fieldRows([["type", e.type], ["timestamp", whenFull(e.timestamp)], e.source ? ["source", e.source] : null,
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
      "The catalog is empty: an admin registers event types with POST /v1/event-types (docs/api.md), then endpoints can subscribe to them.", [1]),
      docsOut);
  }
  // SOURCE_PROVIDERS are the choices of the new source form: a verification scheme or a preset
  // (docs/receiving.md), with the event type prefix suggested for it.
  const SOURCE_PROVIDERS = [
    ["stripe", { scheme: "stripe" }, "Stripe", "stripe."], ["github", { scheme: "github" }, "GitHub", "github."],
    ["shopify", { scheme: "shopify" }, "Shopify", "shopify."], ["slack", { scheme: "slack" }, "Slack", "slack."],
    ["twilio", { scheme: "twilio" }, "Twilio", "twilio."], ["standard_webhooks", { scheme: "standard_webhooks" }, "Standard Webhooks (Svix, Clerk, Resend, another Herald)", ""],
    ["gitlab", { preset: "gitlab" }, "GitLab", "gitlab."], ["linear", { preset: "linear" }, "Linear", "linear."],
    ["intercom", { preset: "intercom" }, "Intercom", "intercom."], ["square", { preset: "square" }, "Square (needs public_url: use the API)", "square."],
    ["bearer", { scheme: "bearer" }, "Bearer token", ""], ["none", { scheme: "none" }, "No verification (tests only)", ""],
  ];
  function sourceForm() {
    const name = h("input", { type: "text", id: "src-name", size: 40, placeholder: "stripe-live" });
    const provider = h("select", { id: "src-provider" }, SOURCE_PROVIDERS.map(([v, , l]) => h("option", { value: v }, l)));
    const secret = h("input", { type: "password", id: "src-secret", size: 50, autocomplete: "new-password", placeholder: "the provider's signing secret" });
    const secretRow = h("div", { class: "field" }, h("label", { for: secret.id }, "secret"), secret,
      h("div", { class: "hint" }, "Stored encrypted, never shown again."), fieldError("verification"));
    const prefix = h("input", { type: "text", id: "src-prefix", size: 20 });
    const sync = () => {
      const p = SOURCE_PROVIDERS.find((x) => x[0] === provider.value);
      secretRow.hidden = p[0] === "none";
      prefix.value = p[3];
      if (!name.value || SOURCE_PROVIDERS.some((x) => x[0] === name.value)) name.value = p[0];
    };
    provider.addEventListener("change", sync);
    sync();
    const form = h("form", { class: "card endpoint-form", id: "source-form", novalidate: true, onsubmit: async (ev) => {
      ev.preventDefault();
      const p = SOURCE_PROVIDERS.find((x) => x[0] === provider.value);
      const verification = { ...p[1] };
      if (p[0] !== "none" && secret.value) verification.secrets = [secret.value];
      const body = { name: name.value.trim(), verification };
      if (prefix.value.trim()) body.event_type_prefix = prefix.value.trim();
      try {
        const src = await api("POST", t() + "/sources", body);
        // The secret typed here fills the signed test request on the next page, once: kept in
        // memory only, never stored in the tab.
        state.newSource = { id: src.id, secret: secret.value };
        flash("Source created: give its ingest URL to the sender.");
        go("/sources/" + src.id);
      } catch (ex) {
        const rest = showFieldErrors(form, ex);
        flash(rest.length || !(ex.errors || []).length ? ex.message : "The source was not saved: see the messages next to the fields.", "error");
      }
    } },
    h("div", { class: "field" }, h("label", { for: provider.id }, "provider"), provider),
    h("div", { class: "field" }, h("label", { for: name.id }, "name"), name, fieldError("name")),
    secretRow,
    h("div", { class: "field" }, h("label", { for: prefix.id }, "event type prefix"), prefix,
      h("div", { class: "hint" }, "Put before the provider's event type: stripe. makes stripe.invoice.paid."), fieldError("event_type_prefix")),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "src-submit" }, "Add")));
    return form;
  }
  async function sources() {
    const r = await pages(t() + "/sources", {}, 1000);
    page("Sources", h("p", {}, "Ingest URLs where other platforms send webhooks to this tenant; see docs/receiving.md."),
      r.items.length ? table(["name", "scheme", "state", "created"], r.items.map((x) => h("tr", { "data-source": x.id },
        h("td", {}, h("a", { href: "#/sources/" + x.id, title: x.id }, x.name)), h("td", {}, x.verification.preset || x.verification.scheme),
        h("td", {}, x.enabled ? "enabled" : h("span", { class: "badge state-dead" }, "disabled")), h("td", {}, when(x.created_at))))) :
        h("p", { class: "empty" }, "No sources yet. Add one below, then give its ingest URL to the provider (Stripe, GitHub, …): what it sends becomes events for your endpoints."),
      h("h2", {}, "Add a source"), sourceForm());
  }
  // copyButton copies text to the clipboard (or, where the browser refuses, selects target).
  function copyButton(id, text, target) {
    return h("button", { type: "button", class: "secondary small", id, onclick: async () => {
      try {
        await navigator.clipboard.writeText(text());
        flash("Copied.");
      } catch (e) {
        if (target) { const r = document.createRange(); r.selectNodeContents(target); getSelection().removeAllRanges(); getSelection().addRange(r); }
        flash("Press Ctrl+C (or ⌘C) to copy the selection.");
      }
    } }, "Copy");
  }
  // testRequest is a bash snippet that sends the source a correctly signed test request, for the
  // schemes a shell can sign with openssl; secret fills it when known (just typed).
  function testRequest(src, secret) {
    const v = src.verification || {}, scheme = v.scheme;
    const sq = (x) => "'" + String(x).replace(/'/g, "'\\''") + "'";
    const lines = ["URL=" + sq(src.ingest_url)];
    if (scheme !== "none") lines.push("SECRET=" + sq(secret || "<the secret you gave the source>"));
    lines.push("BODY=" + sq('{"id":"evt_test_' + Date.now() + '","type":"test.ping","data":{"hello":"world"}}'));
    const hex = "openssl dgst -sha256 -hmac \"$SECRET\" -r | cut -d' ' -f1";
    const post = 'curl -sS -X POST "$URL" -H "Content-Type: application/json" --data-raw "$BODY"';
    switch (v.preset ? "" : scheme) {
      case "none": lines.push(post); break;
      case "github":
        lines.push('SIG=$(printf \'%s\' "$BODY" | ' + hex + ")",
          post + ' \\\n  -H "X-GitHub-Event: ping" -H "X-GitHub-Delivery: test-$(date +%s%N)" -H "X-Hub-Signature-256: sha256=$SIG"'); break;
      case "shopify":
        lines.push('SIG=$(printf \'%s\' "$BODY" | openssl dgst -sha256 -hmac "$SECRET" -binary | base64)',
          post + ' \\\n  -H "X-Shopify-Topic: test/ping" -H "X-Shopify-Webhook-Id: test-$(date +%s%N)" -H "X-Shopify-Hmac-Sha256: $SIG"'); break;
      case "stripe":
        lines.push("TS=$(date +%s)", 'SIG=$(printf \'%s.%s\' "$TS" "$BODY" | ' + hex + ")", post + ' \\\n  -H "Stripe-Signature: t=$TS,v1=$SIG"'); break;
      case "slack":
        lines.push("TS=$(date +%s)", 'SIG=$(printf \'v0:%s:%s\' "$TS" "$BODY" | ' + hex + ")",
          post + ' \\\n  -H "X-Slack-Request-Timestamp: $TS" -H "X-Slack-Signature: v0=$SIG"'); break;
      case "standard_webhooks":
        lines.push("ID=msg_test_$(date +%s%N)", "TS=$(date +%s)",
          "KEY=$(printf '%s' \"${SECRET#whsec_}\" | base64 -d | od -An -tx1 | tr -d ' \\n')",
          'SIG=$(printf \'%s.%s.%s\' "$ID" "$TS" "$BODY" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$KEY" -binary | base64)',
          post + ' \\\n  -H "webhook-id: $ID" -H "webhook-timestamp: $TS" -H "webhook-signature: v1,$SIG"'); break;
      case "bearer":
        lines.push(post + ' \\\n  -H "' + (v.header ? v.header + ": $SECRET" : "Authorization: Bearer $SECRET") + '"'); break;
      default: return null;
    }
    return lines.join("\n");
  }
  async function sourceDetail(params, id) {
    const status = params.get("status") || "";
    const base = t() + "/sources/" + encodeURIComponent(id);
    const [src, rr] = await Promise.all([api("GET", base),
      api("GET", t() + "/received-requests" + qs({ source_id: id, status, cursor: params.get("cursor"), limit: 50 }))]);
    const sel = h("select", { onchange: (e) => go("/sources/" + id, { status: e.target.value }) },
      ["", "accepted", "duplicate", "quarantined", "rejected"].map((x) => h("option", { value: x, selected: x === status }, x || "any status")));
    const urlBox = h("code", { id: "ingest-url" }, src.ingest_url);
    const rotate = h("button", { type: "button", class: "secondary", id: "rotate-source-token", onclick: async () => {
      if (!await confirmDialog("Give " + src.name + " a new ingest URL? The current one stops working at once: update it at the sender right after.", "Rotate")) return;
      try {
        await api("POST", base + "/rotate-token", {});
        flash("New ingest URL: give it to the sender.");
        route();
      } catch (ex) { flash(ex.message, "error"); }
    } }, "Rotate URL");
    const toggle = h("button", { type: "button", id: "toggle-source", class: src.enabled ? "danger" : "", onclick: async () => {
      if (src.enabled && !await confirmDialog("Disable " + src.name + "? Its ingest URL answers 404 (as an unknown one) until you enable it again.", "Disable")) return;
      try {
        await api("PATCH", base, { enabled: !src.enabled });
        flash(src.enabled ? "Source disabled." : "Source enabled.");
        route();
      } catch (ex) { flash(ex.message, "error"); }
    } }, src.enabled ? "Disable" : "Enable");
    const del = h("button", { type: "button", id: "delete-source", class: "danger", onclick: async () => {
      if (!await confirmDialog("Delete " + src.name + " and its received requests? Its ingest URL stops working; its events stay.", "Delete")) return;
      try {
        await api("DELETE", base);
        flash("Source deleted.");
        go("/sources");
      } catch (ex) { flash(ex.message, "error"); }
    } }, "Delete");
    const fresh = state.newSource && state.newSource.id === id ? state.newSource.secret : "";
    state.newSource = null; // shown once: the page shown again has the placeholder
    const snippet = testRequest(src, fresh);
    const snippetBox = snippet ? h("pre", { class: "json", id: "test-request" }, snippet) : null;
    page("Source " + src.name,
      fieldRows([["id", code(src.id)], ["ingest URL", h("span", {}, urlBox, " ", copyButton("copy-ingest-url", () => src.ingest_url, urlBox))],
        ["verification", (src.verification.preset ? src.verification.preset + " · " : "") + src.verification.scheme],
        ["state", src.enabled ? "enabled" : h("span", { class: "badge state-dead" }, "disabled")], ["dedup", src.dedup ? src.dedup.by : "—"],
        ["event type prefix", src.event_type_prefix || "none"], ["created", whenFull(src.created_at)]]),
      h("div", { class: "toolbar" }, rotate, " ", toggle, " ", del),
      h("p", { class: "hint" }, "The ingest URL carries the source's token: treat it as a secret. Rotate it if it may have leaked."),
      h("h2", {}, "Send a test request"),
      snippet ? [h("p", {}, "Paste this in a shell (bash, curl and openssl): it sends a correctly signed request, which should show below as accepted. ",
        fresh ? "It holds the secret you just typed: it is not shown again." : ""), snippetBox, h("div", { class: "toolbar" }, copyButton("copy-test-request", () => snippet, snippetBox))] :
        h("p", { class: "hint" }, "A shell cannot easily sign for this scheme: see the provider's section of docs/receiving.md, or send a test from the provider's dashboard."),
      h("h2", {}, "Received requests"), h("div", { class: "toolbar" }, h("label", {}, "Status ", sel)),
      table(["request", "received", "status", "reason", "event"], rr.data.map((x) => h("tr", { "data-received": x.id, "data-status": x.status },
        h("td", {}, h("a", { href: "#/received/" + x.id }, x.id)), h("td", {}, when(x.received_at)), h("td", {}, h("span", { class: "badge rr-" + x.status }, x.status)),
        h("td", {}, x.reason || ""), h("td", {}, x.event_id ? h("a", { href: "#/events/" + encodeURIComponent(x.event_id) }, x.event_id) : ""))),
      "Nothing received yet. Give the ingest URL to the sender, or send the test request above."),
      nextLink("/sources/" + id, params, rr.next_cursor));
  }
  async function receivedDetail(params, id) {
    const [x] = await Promise.all([api("GET", t() + "/received-requests/" + encodeURIComponent(id)), endpointIndex()]);
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
        ["received", whenFull(x.received_at)], ["status", x.status],
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
      h("td", {}, x.enabled ? "enabled" : h("span", { class: "badge state-dead" }, "disabled")))), "No broker sources yet: add one below to turn a stream, a queue or a topic into events.");
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
