"""Standard Webhooks secrets as the standard defines them: `whsec_` and the base64 of the key, padded
or not. Every signature is checked by the `standardwebhooks` package, an independent client."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timezone

import pytest
from hypothesis import given, strategies as st
from standardwebhooks import Webhook, WebhookVerificationError

from http_receiver import WebhookReceiver
from pipeline.config.settings import HttpEndpointSettings
from pipeline.delivery.channels.http import SignedHttpSender, secret_key, sign, verify
from pipeline.delivery.channels.setup import ChannelConfigError, http_secret


def _forms(key: bytes) -> tuple[str, str]:
    """The padded and the unpadded whsec_ form of a key."""
    padded = "whsec_" + base64.b64encode(key).decode()
    return padded, padded.rstrip("=")


def _headers(secret: str, msg_id: str, body: bytes) -> dict[str, str]:
    ts = int(time.time())
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sign(secret, msg_id, ts, body)}


@given(key=st.binary(min_size=1, max_size=64), msg_id=st.text(st.characters(codec="ascii", exclude_categories=("Cc",)),
                                                               min_size=1, max_size=40),
       payload=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=4))
def test_padded_and_unpadded_secrets_sign_alike_and_the_standard_library_verifies_both(key, msg_id, payload):
    padded, unpadded = _forms(key)
    assert secret_key(padded) == secret_key(unpadded) == key
    body = json.dumps(payload, ensure_ascii=False).encode()
    for ours in (padded, unpadded):
        headers = _headers(ours, msg_id, body)
        for theirs in (padded, unpadded):
            assert Webhook(theirs).verify(body, headers) == payload
    # and the other way round: a signature the standard library makes is one we accept
    now = datetime.fromtimestamp(int(time.time()), timezone.utc)
    theirs = Webhook(unpadded).sign(msg_id, now, body.decode())
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": theirs}
    assert verify(padded, headers, body)


def test_a_wrong_key_is_rejected_by_the_standard_library():
    padded, _ = _forms(bytes(32))
    other, _ = _forms(bytes(range(32)))
    body = b'{"x":1}'
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, _headers(padded, "msg-1", body))


@pytest.mark.parametrize("secret", ["whsec_", "whsec_QUJD!", "whsec_QUJDRA==\n", "whsec_ QUJDRA", "whsec_Q",
                                    "whsec_QUJD-_", "whsec_QUJDRA===x"])
def test_a_malformed_whsec_secret_is_refused_without_quoting_it(secret):
    with pytest.raises(ValueError) as refused:
        secret_key(secret)
    body = secret[len("whsec_"):].strip()
    assert str(refused.value) in ("the part after whsec_ is not base64 (A-Z, a-z, 0-9, + and /, optionally padded "
                                  "with =)", "the signing secret is empty")
    assert not body or body not in str(refused.value)


def test_a_plain_secret_is_used_as_its_bytes():
    assert secret_key("plain-shared-secret") == b"plain-shared-secret"
    with pytest.raises(ValueError, match="the signing secret is empty"):
        secret_key("")


def test_the_setting_is_named_when_the_secret_is_missing_or_malformed(monkeypatch):
    cfg = HttpEndpointSettings(url="https://u:pw@hooks.example.com/in?token=t", secret_env="TEST_HOOK_SECRET")
    monkeypatch.delenv("TEST_HOOK_SECRET", raising=False)
    with pytest.raises(ChannelConfigError) as missing:
        http_secret(cfg, "channels.webhook")
    assert str(missing.value) == ("channels.webhook.secret_env: the environment variable TEST_HOOK_SECRET (the "
                                  "signing secret for https://***@hooks.example.com/in?token=***) is not set")
    monkeypatch.setenv("TEST_HOOK_SECRET", "whsec_s3cr3t$value")
    with pytest.raises(ChannelConfigError) as malformed:
        http_secret(cfg, "channels.sms")
    assert str(malformed.value).startswith("channels.sms.secret_env: the environment variable TEST_HOOK_SECRET "
                                           "does not hold a usable signing secret: the part after whsec_ is not base64")
    assert "s3cr3t" not in str(malformed.value)
    _, unpadded = _forms(b"0123456789abcdefghijklm")
    monkeypatch.setenv("TEST_HOOK_SECRET", unpadded)
    assert http_secret(cfg, "channels.webhook") == unpadded


def test_an_unpadded_secret_end_to_end_verified_by_the_standard_library():
    padded, unpadded = _forms(b"\x00\xffsecret key of 29 bytes\x01\x02")
    assert padded != unpadded
    with WebhookReceiver(unpadded) as rx, SignedHttpSender(rx.url, unpadded, sleep=lambda s: None) as sender:
        sender.post("ct-CT1-20260316/L1/webhook", {"id": "ct-CT1-20260316/L1/webhook", "amount": "105.00"})
        sender.post("ct-CT 1-Zoë\x00/L1/webhook", {"id": "ct-CT 1-Zoë\x00/L1/webhook"})
    first, second = rx.requests
    assert [r["status"] for r in rx.requests] == [200, 200]
    assert Webhook(padded).verify(first["body"], first["headers"]) == {
        "id": "ct-CT1-20260316/L1/webhook", "amount": "105.00"}
    assert first["headers"]["webhook-id"] == "ct-CT1-20260316/L1/webhook"
    # a key that is no header value travels as a deterministic msg_ id; the body keeps it as it is
    assert Webhook(padded).verify(second["body"], second["headers"]) == {"id": "ct-CT 1-Zoë\x00/L1/webhook"}
    assert second["headers"]["webhook-id"].startswith("msg_")
    assert second["headers"]["idempotency-key"] == second["headers"]["webhook-id"]
