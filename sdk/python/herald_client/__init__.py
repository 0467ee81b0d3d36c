"""A small client of the Herald API with only the Python standard library.

- ``Herald.publish`` gives an event an id before the first attempt and sends that same id on every
  retry (network errors, 408, 429, 502, 503, 504; Retry-After is honoured): Herald stores an id once, so a
  retry after a lost answer returns the original event with ``duplicate: True``.
- Error answers (RFC 9457 problem documents) are raised as ``HeraldProblem``.
- ``Herald.paginate`` iterates over a list, following ``next_cursor``.
- ``verify_webhook`` checks a Standard Webhooks ``v1`` (HMAC-SHA256) signature. Ed25519 (``v1a``)
  needs a library the standard library lacks: see docs/sdks.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http.client
import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any, Iterator, Mapping, Optional

__all__ = [
    "Herald",
    "HeraldProblem",
    "WebhookVerificationError",
    "verify_webhook",
    "new_event_id",
    "TIMESTAMP_TOLERANCE_SECONDS",
]

#: Seconds a webhook-timestamp may be away from now, as in the Standard Webhooks libraries.
TIMESTAMP_TOLERANCE_SECONDS = 5 * 60

_RETRYABLE = {408, 429, 502, 503, 504}  # as the Go client (client/client.go)


class HeraldProblem(Exception):
    """An error answer of the API: status, type, title, detail and errors[] (location, message, value)."""

    def __init__(self, status: int, doc: Mapping[str, Any], retry_after: Optional[int] = None):
        self.status = status
        self.type = doc.get("type") if isinstance(doc.get("type"), str) else "about:blank"
        self.title = doc.get("title") if isinstance(doc.get("title"), str) else f"HTTP {status}"
        self.detail = doc.get("detail") if isinstance(doc.get("detail"), str) else None
        self.instance = doc.get("instance") if isinstance(doc.get("instance"), str) else None
        errors = doc.get("errors")
        self.errors: list[dict] = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
        self.retry_after = retry_after
        where = "; ".join(": ".join(x for x in (e.get("location"), e.get("message")) if x) for e in self.errors)
        msg = f"{status} {self.title}"
        if self.detail and self.detail != self.title:
            msg += f": {self.detail}"
        if where:
            msg += f" ({where})"
        super().__init__(msg)

    def at(self, location: str) -> Optional[dict]:
        """The error at a location (body.url, query.status), if the problem names it."""
        return next((e for e in self.errors if e.get("location") == location), None)

    @property
    def retryable(self) -> bool:
        return self.status in _RETRYABLE


def new_event_id() -> str:
    """A new event id, as publish gives an event without one."""
    return "evt_" + uuid.uuid4().hex


class Herald:
    """A client of the Herald API at base_url ("http://127.0.0.1:8080") with an API key."""

    def __init__(self, base_url: str, api_key: str, *, retries: int = 4, backoff: float = 0.25,
                 max_backoff: float = 10.0, timeout: float = 30.0):
        if not base_url or not api_key:
            raise ValueError("base_url and api_key are required")
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout

    def publish(self, tenant: str, event: Mapping[str, Any]) -> dict:
        """Publish one event ({"type", "data", ...}); its id (given, or new) is kept across retries."""
        body = dict(event)
        body.setdefault("id", new_event_id())
        return self.request("POST", f"/v1/tenants/{_q(tenant)}/events", body=body, retry=True)

    def publish_batch(self, tenant: str, events: list) -> list:
        """Publish up to 1000 events at once (all or nothing), each with an id kept across retries."""
        body = {"events": [dict(e, id=e.get("id") or new_event_id()) for e in events]}
        return self.request("POST", f"/v1/tenants/{_q(tenant)}/events/batch", body=body, retry=True)["events"]

    def paginate(self, path: str, query: Optional[Mapping[str, Any]] = None) -> Iterator[dict]:
        """Yield every item of a list (path like "/v1/tenants/acme/events"), page after page."""
        q = dict(query or {})
        while True:
            page = self.request("GET", path, query=q)
            yield from page["data"]
            cursor = page.get("next_cursor")
            if not cursor:
                return
            q["cursor"] = cursor

    def request(self, method: str, path: str, *, query: Optional[Mapping[str, Any]] = None,
                body: Any = None, retry: Optional[bool] = None) -> Any:
        """Make one API request; return its decoded JSON (None for 204) or raise HeraldProblem.

        Retryable failures are retried when retry is true (default: GET only)."""
        url = self.base_url + path
        if query:
            pairs = []
            for k, v in query.items():
                if v is None:
                    continue
                for x in v if isinstance(v, (list, tuple)) else [v]:
                    pairs.append((k, "true" if x is True else "false" if x is False else str(x)))
            if pairs:
                url += "?" + urllib.parse.urlencode(pairs)
        if retry is None:
            retry = method == "GET"
        headers = {"Authorization": f"Bearer {self._key}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        attempt = 0
        while True:
            req = urllib.request.Request(url, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
                    return json.loads(raw) if raw else None
            except urllib.error.HTTPError as e:
                problem = _problem(e)
                if not retry or attempt >= self.retries or not problem.retryable:
                    raise problem from None
                self._sleep(attempt, problem.retry_after)
            except (urllib.error.URLError, http.client.HTTPException, OSError):
                # The request may have reached the server: only a request safe to repeat is.
                if not retry or attempt >= self.retries:
                    raise
                self._sleep(attempt, None)
            attempt += 1

    def _sleep(self, attempt: int, retry_after: Optional[int]) -> None:
        if retry_after is not None:
            time.sleep(min(retry_after, self.max_backoff))
            return
        d = self.backoff * 2 ** attempt
        time.sleep(min(d / 2 + random.random() * d / 2, self.max_backoff))


def _problem(e: urllib.error.HTTPError) -> HeraldProblem:
    ra = e.headers.get("Retry-After") if e.headers else None
    retry_after = int(ra) if ra and ra.strip().isdigit() else None
    try:
        raw = e.read()
    except OSError:
        raw = b""
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError
    except ValueError:
        doc = {"title": e.reason or f"HTTP {e.code}", "detail": raw[:200].decode("utf-8", "replace") or None}
    return HeraldProblem(e.code, doc, retry_after)


def _q(s: str) -> str:
    return urllib.parse.quote(s, safe="")


class WebhookVerificationError(Exception):
    """A webhook whose headers, timestamp or signature do not check out."""


def verify_webhook(secret: str, body: bytes, headers: Mapping[str, str], *, now: Optional[float] = None) -> Any:
    """Verify a Standard Webhooks v1 (HMAC-SHA256) signature with the endpoint's whsec_ secret.

    body is the raw request body, byte for byte; headers any mapping (case-insensitive lookup).
    Returns the parsed JSON payload or raises WebhookVerificationError."""
    if secret.startswith("whpk_"):
        raise WebhookVerificationError(
            "whpk_ keys sign v1a (Ed25519), which the standard library cannot verify: see docs/sdks.md")
    h = {k.lower(): v for k, v in headers.items()}
    msg_id, ts, sigs = h.get("webhook-id"), h.get("webhook-timestamp"), h.get("webhook-signature")
    if not msg_id or not ts or not sigs:
        raise WebhookVerificationError("missing required headers")
    if not ts.isdigit():
        raise WebhookVerificationError("invalid webhook-timestamp")
    now = time.time() if now is None else now
    if int(ts) < now - TIMESTAMP_TOLERANCE_SECONDS:
        raise WebhookVerificationError("message timestamp too old")
    if int(ts) > now + TIMESTAMP_TOLERANCE_SECONDS:
        raise WebhookVerificationError("message timestamp too new")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the secret is not whsec_ followed by base64") from None
    signed = f"{msg_id}.{ts}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for entry in sigs.split(" "):
        version, _, sig = entry.partition(",")
        if version == "v1" and hmac.compare_digest(sig, expected):
            return json.loads(body)
    raise WebhookVerificationError("no matching signature found")
