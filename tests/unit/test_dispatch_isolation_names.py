"""Names that come from the data, made safe: outbox folder names for any action key, email header
values for any customer name, header-safe webhook ids, URLs printed without their credentials."""

from __future__ import annotations

import email.policy
import hashlib
import os
import re
from datetime import date
from email.parser import BytesParser

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pipeline.config.settings import redact_url
from pipeline.delivery.channels.http import header_message_id
from pipeline.delivery.outbox import Outbox, build_message, folder_name, header_text, safe_action_key
from pipeline.delivery.render import RenderedEmail
from pipeline.delivery.render.samples import sample_context

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+=~-]*")
PIECES = ["..", ".", "/", "//", "__", "_", " ", "\x00", "\n", "\r\n", "~", "-", "a", "Z", "9", "é", "Ø", "ß",
          "\u2028", "\U0001f600", "ct-CT1-20260316", "L1", "reminder", "\\", "=", "@"]
# any text (lone surrogates too), and text made of the pieces that break paths and names
KEYS = st.one_of(st.text(st.characters(exclude_categories=()), max_size=300),
                 st.lists(st.sampled_from(PIECES), max_size=40).map("".join))
ORDINARY = st.from_regex(r"(ct|iv|cu|cc)-[A-Z0-9]{1,12}-20[0-9]{6}/[LS][1-9]/(reminder|sms|webhook|notify_merchant)",
                         fullmatch=True)


@given(KEYS)
def test_a_folder_name_is_one_safe_bounded_path_component(key):
    name = folder_name(key)
    assert name == folder_name(key)  # deterministic
    assert NAME_RE.fullmatch(name), name  # ASCII letters, digits and ._@+=~- only: no '/', no NUL, no space
    assert name not in (".", "..") and not name.startswith(".")
    assert 1 <= len(name.encode()) <= 150  # Linux allows 255 bytes per component


@given(st.lists(KEYS, unique=True, max_size=60))
def test_no_two_keys_share_a_folder(keys):
    assert len({folder_name(k) for k in keys}) == len(keys)


@pytest.mark.parametrize("pair", [("a/_b", "a_/b"), ("x/y", "x__y"), ("ct-CT 1/L1/x", "ct-CT-1/L1/x"),
                                  ("ct-CTé/L1/x", "ct-CTe/L1/x"), ("ct-CT\x001/L1/x", "ct-CT 1/L1/x"),
                                  ("abc", "abc\n"), ("A" * 200, "A" * 201)])
def test_keys_the_old_mapping_confused_or_rejected_get_different_folders(pair):
    first, second = pair
    assert folder_name(first) != folder_name(second)


@given(ORDINARY)
def test_an_ordinary_key_keeps_its_readable_name(key):
    assert folder_name(key) == safe_action_key(key) == key.replace("/", "__")


@pytest.mark.parametrize("key", ["ct-CT 1-20260316/L1/reminder", "ct-../../etc/L1/x", "ct-CT\x004/L1/x", "",
                                 "cc-" + "é" * 300 + "/S1/x"])
def test_any_other_key_is_a_slug_and_the_hash_of_the_exact_key(key):
    slug, _, digest = folder_name(key).rpartition("~")
    assert digest == hashlib.sha256(key.encode()).hexdigest()[:20]
    assert 1 <= len(slug) <= 60 and ".." not in slug


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=150)
@given(key=KEYS)
def test_every_folder_can_be_created_inside_its_day_and_nowhere_else(tmp_path, key):
    outbox = Outbox(tmp_path, fsync=False)
    folder = outbox.write_json(date(2026, 3, 22), key, "sms.json", {"to": "+49"})
    day = (tmp_path / "2026-03-22").resolve()
    assert folder.resolve().parent == day and folder.name == folder_name(key)
    assert os.path.commonpath([folder.resolve(), day]) == str(day)
    assert (folder / "sms.json").is_file()


# --- headers -----------------------------------------------------------------------------------------

MAIL = RenderedEmail(subject="Zahlungserinnerung", text="Text", html="<p>Text</p>")
PARSER = BytesParser(policy=email.policy.default)


def _message(name: str, *, key: str | None = None, subject: str = "Zahlungserinnerung") -> tuple[bytes, object]:
    ctx = sample_context(0)
    ctx["customer"] = {**ctx["customer"], "name": name, "email": "eve@x.example"}
    if key is not None:
        ctx["action_key"] = key
    raw = build_message(ctx["as_of"], ctx, RenderedEmail(subject, MAIL.text, MAIL.html), b"%PDF-1.4\n").as_bytes(
        policy=email.policy.SMTP)
    return raw, PARSER.parsebytes(raw)


def _header_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def test_a_line_break_in_a_name_becomes_a_space_not_a_header():
    raw, msg = _message("Eve\r\nBcc: x@example.org")
    assert [(a.display_name, a.addr_spec) for a in msg["To"].addresses] == [("Eve Bcc: x@example.org", "eve@x.example")]
    assert msg.get_all("Bcc") is None and msg.get_all("Cc") is None
    assert b"\r\nBcc:" not in raw.split(b"\r\n\r\n", 1)[0]


def test_a_long_name_is_folded_and_a_huge_one_bounded():
    name = "Zoë " + " ".join(f"Langername{i}" for i in range(16))
    raw, msg = _message(name)
    assert msg["To"].addresses[0].display_name == name
    assert max(map(len, _header_lines(raw))) <= 78
    raw, msg = _message("A" * 5000)
    assert msg["To"].addresses[0].display_name == "A" * 253 + "..."
    assert max(map(len, _header_lines(raw))) <= 998


@settings(max_examples=200)
@given(name=st.text(st.characters(exclude_categories=("Cs",)), max_size=400),
       subject=st.text(st.characters(exclude_categories=("Cs",)), max_size=300),
       key=st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=100))
def test_no_name_subject_or_key_breaks_the_header_block(name, subject, key):
    raw, msg = _message(name, key=key, subject=subject)
    lines = _header_lines(raw)
    assert all(b"\r" not in line and b"\n" not in line and b"\x00" not in line for line in lines)
    assert all(len(line) <= 998 for line in lines)
    assert all(line[:1] in (b" ", b"\t") or b":" in line for line in lines)  # a header or its folded rest
    assert [a.addr_spec for a in msg["To"].addresses] == ["eve@x.example"]
    assert msg.get_all("Bcc") is None and msg.get_all("Cc") is None
    # the text survives (the email library may move whitespace around encoded words when parsing)
    assert "".join(msg["To"].addresses[0].display_name.split()) == "".join(header_text(name).split())
    assert "".join(msg["Subject"].split()) == "".join(header_text(subject, 900).split())


def test_header_text():
    assert header_text("Eve\r\nBcc: x@example.org") == "Eve Bcc: x@example.org"
    assert header_text("a\x00b\tc\u2028d  e") == "a b c d e"
    assert header_text("100,00\xa0€") == "100,00\xa0€"  # no-break spaces stay
    assert header_text(None) == ""


@given(st.text(st.characters(exclude_categories=()), max_size=300))
def test_a_webhook_id_is_always_a_header_safe_token(key):
    value = header_message_id(key)
    assert re.fullmatch(r"[\x21-\x7e]{1,255}", value)
    assert value == header_message_id(key)
    if re.fullmatch(r"[\x21-\x7e]{1,255}", key):
        assert value == key  # ordinary keys keep the id receivers already de-duplicate by
    else:
        assert value == "msg_" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:40]


@pytest.mark.parametrize(("url", "shown"), [
    ("https://user:p4ss@hooks.example.com/in", "https://***@hooks.example.com/in"),
    ("http://hookuser:hunter2@hooks.example.com/in?api_key=k3y&x=1", "http://***@hooks.example.com/in?api_key=***&x=1"),
    ("https://gw.example/send?token=abc&to=1&Signature=zz#f", "https://gw.example/send?token=***&to=1&Signature=***#f"),
    ("https://gw.example/send?access_token=a;client_secret=b", "https://gw.example/send?access_token=***;client_secret=***"),
    ("https://gw.example/send", "https://gw.example/send"),
    ("not a url with user:pw@host", "not a url with user:pw@host"),
    ("https://[::1:pw@broken", "https://***@broken"),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown
