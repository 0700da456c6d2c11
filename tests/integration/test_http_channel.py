"""The signed HTTP sender against a real receiver on 127.0.0.1."""

from __future__ import annotations

import base64
import itertools
import socket
import time
from datetime import date
from decimal import Decimal

import httpx
import pytest

from http_receiver import WebhookReceiver
from pipeline.delivery.channels.base import PermanentError, SendResult, TransientError
from pipeline.delivery.channels.http import SignedHttpSender, sign, validate_url, verify

SECRET = "plain-shared-secret"
WHSEC = "whsec_" + base64.b64encode(bytes(range(32))).decode()


@pytest.fixture
def rx():
    with WebhookReceiver(SECRET) as receiver:
        yield receiver


@pytest.fixture
def sleeps():
    return []


def sender(url, sleeps, secret=SECRET, **kw):
    return SignedHttpSender(url, secret, sleep=sleeps.append, **kw)


def test_signed_post_is_delivered_verified_and_answered_with_the_receivers_id(rx, sleeps):
    with sender(rx.url, sleeps) as s:
        result = s.post("act-1", {"case": "C-1", "level": 2})

    assert result == SendResult(provider_message_id="rx-1")
    [d] = rx.deliveries
    assert (d["id"], d["path"], d["payload"]) == ("act-1", "/webhook", {"case": "C-1", "level": 2})
    h = d["headers"]
    assert h["idempotency-key"] == "act-1"
    assert h["content-type"] == "application/json"
    assert h["user-agent"] == "dunning-pipeline"
    assert h["webhook-signature"].startswith("v1,")
    assert abs(int(h["webhook-timestamp"]) - time.time()) < 5
    assert verify(SECRET, h, rx.requests[0]["body"])
    assert not verify("another-secret", h, rx.requests[0]["body"])


def test_wrong_secret_is_rejected_with_401_and_not_retried(rx, sleeps):
    with sender(rx.url, sleeps, secret="wrong") as s, pytest.raises(PermanentError, match="HTTP 401"):
        s.post("act-1", {"x": 1})
    assert [r["status"] for r in rx.requests] == [401]
    assert rx.deliveries == [] and sleeps == []


def test_whsec_secret_matches_the_standard_webhooks_reference_vector():
    # The specification's published test vector: any Standard Webhooks library can verify us.
    sig = sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
               1614265330, b'{"test": 2432232314}')
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_whsec_secret_end_to_end_and_the_base64_is_decoded_not_used_literally(sleeps):
    with WebhookReceiver(WHSEC) as rx, sender(rx.url, sleeps, secret=WHSEC) as s:
        s.post("act-1", {"x": 1})
        assert len(rx.deliveries) == 1
    assert sign(WHSEC, "i", 1, b"{}") != sign(WHSEC[6:], "i", 1, b"{}")


def test_body_bytes_are_canonical_whatever_the_key_order(rx, sleeps):
    a = {"b": Decimal("12.30"), "a": "Müller", "d": date(2026, 1, 2), "n": {"z": 1, "y": [2]}}
    b = {"n": {"y": [2], "z": 1}, "d": date(2026, 1, 2), "a": "Müller", "b": Decimal("12.30")}
    with sender(rx.url, sleeps) as s:
        s.post("m-a", a)
        s.post("m-b", b)
    expected = '{"a":"Müller","b":"12.30","d":"2026-01-02","n":{"y":[2],"z":1}}'.encode()
    assert [r["body"] for r in rx.requests] == [expected, expected]


def test_two_503s_then_success_keeps_the_id_and_delivers_once(rx, sleeps):
    ticks = itertools.count(int(time.time()))
    rx.fail_next(2, status=503)
    with sender(rx.url, sleeps, clock=lambda: next(ticks)) as s:
        result = s.post("act-7", {"x": 1})

    assert result.provider_message_id == "rx-1"
    assert [r["id"] for r in rx.requests] == ["act-7"] * 3
    assert [r["status"] for r in rx.requests] == [503, 503, 200]
    assert len(rx.deliveries) == 1
    assert sleeps == [0.5, 1.0]
    # A fresh timestamp, hence a fresh signature, on every attempt.
    stamps = [r["headers"]["webhook-timestamp"] for r in rx.requests]
    assert len(set(stamps)) == 3
    assert len({r["headers"]["webhook-signature"] for r in rx.requests}) == 3


def test_exhausted_retries_raise_transient_naming_url_status_and_attempts(rx, sleeps):
    rx.fail_next(3, status=503)
    with sender(rx.url, sleeps) as s, pytest.raises(TransientError) as err:
        s.post("act-1", {"x": 1})
    assert "after 3 attempts" in str(err.value) and "HTTP 503" in str(err.value)
    assert rx.url in str(err.value)
    assert len(rx.requests) == 3 and rx.deliveries == []
    assert sleeps == [0.5, 1.0]  # no sleep after the last attempt


def test_400_is_permanent_at_once_with_the_response_body(rx, sleeps):
    rx.fail_next(1, status=400)
    with sender(rx.url, sleeps) as s, pytest.raises(PermanentError, match="HTTP 400.*told to fail"):
        s.post("act-1", {"x": 1})
    assert len(rx.requests) == 1 and sleeps == []


def test_a_timeout_is_retried_and_the_receiver_sees_a_duplicate_not_a_second_delivery(rx, sleeps):
    rx.delay_next(1, 0.5)  # processed, but answered after the client gave up
    with sender(rx.url, sleeps, timeout_seconds=0.2) as s:
        result = s.post("act-1", {"x": 1})
    assert result.provider_message_id == "rx-1"
    assert [r["id"] for r in rx.requests] == ["act-1", "act-1"]
    assert len(rx.deliveries) == 1
    assert sleeps == [0.5]


def test_connection_refused_is_transient(sleeps):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with sender(f"http://127.0.0.1:{port}/hook", sleeps, max_attempts=2) as s:
        with pytest.raises(TransientError, match="after 2 attempts.*ConnectError"):
            s.post("act-1", {"x": 1})
    assert sleeps == [0.5]


@pytest.mark.parametrize(("status", "retry_after", "slept"), [(429, 2, 2.0), (503, 120, 30.0), (408, None, 0.5)])
def test_retry_after_is_honoured_up_to_30_seconds(rx, sleeps, status, retry_after, slept):
    rx.fail_next(1, status=status, retry_after=retry_after)
    with sender(rx.url, sleeps) as s:
        s.post("act-1", {"x": 1})
    assert sleeps == [slept] and len(rx.deliveries) == 1


@pytest.mark.parametrize("url", ["https://x.example", "https://x.example/hook?k=v", "http://127.0.0.1:8080",
                                 "http://127.1.2.3/x", "http://localhost", "http://[::1]:9000/sms"])
def test_validate_url_accepts_https_and_loopback_http(url):
    validate_url(url)


@pytest.mark.parametrize("url", ["http://example.com", "http://localhost.example.com", "http://10.0.0.1",
                                 "ftp://x.example/file", "https://", "x.example"])
def test_validate_url_rejects_everything_else_naming_the_url(url):
    with pytest.raises(ValueError, match="refusing to send to"):
        validate_url(url)
    with pytest.raises(ValueError):
        SignedHttpSender(url, SECRET)


def test_verify_enforces_the_tolerance_and_accepts_one_of_several_signatures():
    body, now = b'{"x":1}', 1_800_000_000

    def headers(ts, sig=None):
        return {"Webhook-Id": "m", "Webhook-Timestamp": str(ts), "Webhook-Signature": sig or sign(SECRET, "m", ts, body)}

    assert verify(SECRET, headers(now - 299), body, now=now)
    assert not verify(SECRET, headers(now - 301), body, now=now)  # replayed
    assert not verify(SECRET, headers(now + 301), body, now=now)  # from the future
    assert not verify(SECRET, headers(now), body + b" ", now=now)  # altered
    rotated = "v1,bm90LWl0 " + sign(SECRET, "m", now, body)  # an old key's signature, then ours
    assert verify(SECRET, headers(now, rotated), body, now=now)
    assert not verify(SECRET, {"webhook-id": "m"}, body, now=now)


def test_provider_id_falls_back_to_x_message_id_then_none(sleeps):
    answers = iter([
        httpx.Response(200, json={"id": "sms-9"}),
        httpx.Response(202, headers={"x-message-id": "gw-5"}, text="queued"),
        httpx.Response(200, json={"id": 42}),  # not a string: not an id
        httpx.Response(204),
    ])
    client = httpx.Client(transport=httpx.MockTransport(lambda request: next(answers)))
    s = sender("https://gw.example/sms", sleeps, client=client)
    assert [s.post(f"m{i}", {}).provider_message_id for i in range(4)] == ["sms-9", "gw-5", None, None]
    s.close()
    assert not client.is_closed  # a client passed in belongs to the caller


def test_one_receiver_serves_two_paths_and_connections_are_reused(rx, sleeps):
    with sender(rx.url, sleeps) as hooks, sender(rx.url_for("/sms"), sleeps) as sms:
        hooks.post("act-1", {"kind": "webhook"})
        hooks.post("act-2", {"kind": "webhook"})
        sms.post("act-1", {"kind": "sms"})  # same id on another service is its own delivery
    assert [(d["path"], d["id"]) for d in rx.deliveries] == [("/webhook", "act-1"), ("/webhook", "act-2"), ("/sms", "act-1")]
    assert rx.requests[0]["peer"] == rx.requests[1]["peer"]  # same client port: kept alive
