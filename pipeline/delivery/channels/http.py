"""Signed JSON over HTTP: the transport behind webhooks and the SMS gateway.

Every request is signed the Standard Webhooks way (https://www.standardwebhooks.com):
`webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256>`
over `"{id}.{timestamp}.{body}"`, so the receiver can check that the message
comes from us, is unaltered and is fresh.

The `webhook-id` (repeated as `Idempotency-Key`) is the dispatcher's message id
and stays the same on every attempt, within one call and across runs. A resend
after a timeout or a crash is therefore harmless at a receiver that
de-duplicates by webhook-id: it answers 200 again without acting twice. That is
what makes webhooks and SMS exactly-once from the receiver's point of view, and
why a lost answer can be retried here instead of being reported as ambiguous.

Secrets are Standard Webhooks secrets: `whsec_` and the base64 of the key,
padded or not (`secret_key`). A secret without the prefix is used as it is
(its UTF-8 bytes), for gateways that share a plain password; a Standard
Webhooks receiver needs the `whsec_` form.

A header carries only visible ASCII: an action key with anything else (a
space, a non-ASCII letter, a control character) is sent as
`webhook-id: msg_<SHA-256 of the key>` (`header_message_id`), deterministic,
so de-duplication still works; the JSON body keeps the key as it is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import re
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import httpx

from pipeline.config.settings import redact_url
from pipeline.delivery.channels.base import PermanentError, SendResult, TransientError

USER_AGENT = "dunning-pipeline"
RETRY_AFTER_CAP_SECONDS = 30.0
_RETRY_STATUSES = {408, 429}


def validate_url(url: str) -> None:
    """Allow https anywhere, plain http only to this machine (tests, local gateways)."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme == "https" and host:
        return
    if scheme == "http" and _is_loopback(host):
        return
    raise ValueError(
        f"refusing to send to {redact_url(url)!r}: the URL must be https://, or http:// to a "
        "loopback host (127.0.0.0/8, ::1, localhost)"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


SECRET_PREFIX = "whsec_"
_HEADER_SAFE = re.compile(r"[\x21-\x7e]{1,255}")  # fullmatch: '$' would let a final newline through


def secret_key(secret: str) -> bytes:
    """The HMAC key of a signing secret; ValueError (never quoting the secret) if it is not usable.

    `whsec_<base64>`: the Standard Webhooks form, padding optional (the standard's libraries
    accept both); anything else is taken literally, so a plain shared password works too.
    """
    if secret.startswith(SECRET_PREFIX):
        body = secret[len(SECRET_PREFIX):]
        try:
            key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the part after whsec_ is not base64 (A-Z, a-z, 0-9, + and /, "
                             "optionally padded with =)") from None
    else:
        key = secret.encode("utf-8")
    if not key:
        raise ValueError("the signing secret is empty")
    return key


def header_message_id(message_id: str) -> str:
    """The webhook-id / Idempotency-Key for a message id: itself if it is visible ASCII (up to
    255 characters), else `msg_` and 40 hex digits of its SHA-256 (deterministic, header-safe)."""
    if _HEADER_SAFE.fullmatch(message_id):
        return message_id
    return "msg_" + hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one request: `v1,<base64 HMAC-SHA256>`."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: int = 300,
    now: int | None = None,
) -> bool:
    """True if one of the (space-separated) signatures matches and the timestamp is fresh.

    The tolerance applies both ways: a stale timestamp is a replay, one far in the
    future a wrong clock or a forgery.
    """
    h = {k.lower(): v for k, v in headers.items()}  # header names are case-insensitive
    msg_id, ts, sigs = h.get("webhook-id"), h.get("webhook-timestamp"), h.get("webhook-signature")
    if not (msg_id and ts and sigs):
        return False
    try:
        timestamp = int(ts)
    except ValueError:
        return False
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, msg_id, timestamp, body).encode()
    # Several signatures are allowed so that secrets can be rotated without downtime.
    return any(hmac.compare_digest(s.encode(), expected) for s in sigs.split())


def _display_url(url: str) -> str:
    # Gateway URLs sometimes carry credentials in the query or userinfo; keep them out of errors.
    try:
        p = urlsplit(url)
    except ValueError:
        return redact_url(url)
    return f"{p.scheme}://{p.netloc.rpartition('@')[2]}{p.path}"


def _retry_after(response: httpx.Response) -> float | None:
    """A numeric Retry-After in seconds, capped; None if absent or an HTTP date."""
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    if not 0 <= seconds < float("inf"):
        return None
    return min(seconds, RETRY_AFTER_CAP_SECONDS)


def _provider_id(response: httpx.Response) -> str | None:
    try:
        data = response.json()
    except ValueError:  # not JSON (json.JSONDecodeError and UnicodeDecodeError are ValueErrors)
        data = None
    if isinstance(data, dict) and isinstance(data.get("id"), str):
        return data["id"]
    return response.headers.get("x-message-id")


class SignedHttpSender:
    """POSTs signed JSON to one URL, retrying transient failures within the call."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout_seconds: float = 10.0,
        max_attempts: int = 3,
        backoff_seconds: float = 0.5,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        validate_url(url)
        secret_key(secret)  # fail at construction, not on the first send
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.url, self._secret = url, secret
        self.max_attempts, self.backoff_seconds = max_attempts, backoff_seconds
        self._timeout = httpx.Timeout(timeout_seconds)
        self._sleep, self._clock = sleep, clock
        # One client for all sends: connections are kept alive and reused.
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=self._timeout)

    def post(self, message_id: str, payload: Mapping) -> SendResult:
        message_id = header_message_id(message_id)
        # Canonical bytes: the same payload always gives the same body (and signature input).
        body = json.dumps(
            payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        ).encode()
        last = ""
        for attempt in range(1, self.max_attempts + 1):
            # The timestamp is the only wall-clock value in a request; it is fresh on
            # every attempt (receivers reject stale ones), the webhook-id never changes.
            timestamp = int(self._clock())
            headers = {
                "webhook-id": message_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(self._secret, message_id, timestamp, body),
                "Idempotency-Key": message_id,
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            }
            wait = self.backoff_seconds * 2 ** (attempt - 1)
            try:
                response = self._client.post(self.url, content=body, headers=headers, timeout=self._timeout)
            except httpx.TransportError as exc:  # refused, reset, timed out: the id makes a resend safe
                last = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return SendResult(provider_message_id=_provider_id(response))
                if status not in _RETRY_STATUSES and status < 500:
                    raise PermanentError(
                        f"POST {_display_url(self.url)} answered HTTP {status}: {response.text[:200]!r}"
                    )
                last = f"HTTP {status}"
                retry_after = _retry_after(response)
                if retry_after is not None:
                    wait = retry_after
            if attempt < self.max_attempts:
                self._sleep(wait)
        raise TransientError(
            f"POST {_display_url(self.url)} failed after {self.max_attempts} attempts; last: {last}"
        )

    def close(self) -> None:
        if self._owns_client:  # a client passed in belongs to the caller
            self._client.close()

    def __enter__(self) -> SignedHttpSender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
