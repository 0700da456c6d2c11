"""One document never stops the day: a day of a few hundred documents where exactly one cannot be
rendered, through a real SMTP server and a real HTTP receiver; ids of any characters; header
injection; letters without an address; what a re-run and `--retry-failed` do.

Dirty values that ingestion might one day quarantine (a NUL in an id, a line break in a name) are
written into the ledger or the staged customers after ingestion, so these tests are about dispatch
whatever ingestion accepts.
"""

from __future__ import annotations

import base64
import json
import shutil
from datetime import date
from pathlib import Path

import pytest
import yaml
from standardwebhooks.webhooks import Webhook
from typer.testing import CliRunner

from http_receiver import WebhookReceiver
from pipeline.cli import app
from pipeline.config.settings import PROJECT_ROOT, Settings
from pipeline.delivery.dispatch import dispatch, retry_failed
from pipeline.delivery.documents import RENDER_FAILED
from pipeline.delivery.outbox import folder_name
from pipeline.engine import run as run_mod
from smtp_server import SmtpServer
from world import World, policy, query

pytestmark = pytest.mark.slow(100)  # long: each worker starts with its share (tests/conftest.py)

SECRET = "whsec_" + base64.b64encode(bytes(range(7, 39))).decode()
DAY = date(2026, 3, 22)
POISON = '{% if customer.name == "Poison Pill" %}{{ customer.no_such_field }}{% endif %}'
POISON_ERROR = ("UndefinedError: default/de/reminder.txt line 1: 'dict object' has no attribute "
                "'no_such_field'")
EMAIL_SMS_WEBHOOK = [{"name": "Reminder", "timing": {"after": "due_date", "days": 7}, "channel": "email",
                      "actions": [{"type": "reminder"}, {"type": "sms"}, {"type": "webhook"}]}]
EMAIL = [{"name": "Reminder", "timing": {"after": "due_date", "days": 7}, "channel": "email"}]
LETTER = [{"name": "Letter", "timing": {"after": "due_date", "days": 7}, "channel": "letter"}]
LEDGER = "select action_key, channel, status, attempts, last_error, review_reason from action_ledger order by 1"
runner = CliRunner()


@pytest.fixture
def servers(monkeypatch):
    monkeypatch.setenv("TEST_SIGNING_SECRET", SECRET)
    with SmtpServer() as smtp, WebhookReceiver(SECRET) as rx:
        yield smtp, rx


def _templates(tmp_path: Path, poisoned: bool = True) -> Path:
    """A copy of the shipped templates; the German email text fails for one customer's name."""
    root = tmp_path / "templates"
    if not root.exists():
        shutil.copytree(PROJECT_ROOT / "templates", root)
    text = root / "default" / "de" / "reminder.txt"
    body = text.read_text(encoding="utf-8").removeprefix(POISON + "\n")
    text.write_text((POISON + "\n" if poisoned else "") + body, encoding="utf-8")
    return root


def _world(tmp_path: Path, smtp, rx, levels, customers: int, poisoned: str | None = "CU0137") -> World:
    w = World(tmp_path, policy(levels))
    for n in range(1, customers + 1):
        cu, ct = f"CU{n:04d}", f"CT{n:04d}"
        w.customer(cu, name="Poison Pill" if cu == poisoned else f"Kunde {n}", phone=f"+49155501{n:04d}")
        w.contract(ct, cu).invoice(f"I{n:04d}", "100.00", "2026-03-01", "2026-03-15", ct, cu)
    channels = {"email": {"host": smtp.host, "port": smtp.port, "security": "none"},
                "print_folder": str(tmp_path / "print")}
    if rx is not None:
        channels |= {"webhook": {"url": rx.url, "secret_env": "TEST_SIGNING_SECRET", "backoff_seconds": 0},
                     "sms": {"url": rx.url_for("/sms"), "secret_env": "TEST_SIGNING_SECRET", "backoff_seconds": 0}}
    w.settings_overrides = {"channels": channels, "dispatch": {"max_payment_age_days": None}}
    return w


def _settings(w: World, templates: Path) -> Settings:
    return w.write().model_copy(update={"templates": templates})


def _config(w: World, templates: Path) -> str:
    path = w.write_config()
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    path.write_text(yaml.safe_dump({**data, "templates": str(templates)}), encoding="utf-8")
    return str(path)


def _run(settings: Settings, start: str, end: str) -> run_mod.DayResult:
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        return run_mod.run_range(con, date.fromisoformat(start), date.fromisoformat(end), settings)[-1]


def _plan(settings: Settings, *sql: str) -> None:
    """Plan the days up to DAY without sending, then change the ledger or the staged inputs."""
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        run_mod.run_range(con, date(2026, 3, 16), DAY, settings, send=False)
        for statement in sql:
            con.execute(statement)


def _dispatch(settings: Settings):
    with run_mod.connect(settings.database) as con:
        return dispatch(con, DAY, settings)


def test_one_poisoned_document_of_750_fails_alone_and_everything_else_goes_out(tmp_path, servers):
    smtp, rx = servers
    settings = _settings(_world(tmp_path, smtp, rx, EMAIL_SMS_WEBHOOK, 250), _templates(tmp_path))
    poisoned = "ct-CT0137-20260316/L1/reminder"

    summary = _run(settings, "2026-03-16", "2026-03-22").dispatch
    assert (summary.rendered, summary.sent, summary.letters, summary.failed, summary.not_rendered,
            summary.needs_review, summary.clean) == (749, 749, 0, 1, 1, 0, False)
    assert query(settings, "select channel, status, count(*) from action_ledger group by all order by all") == [
        ("email", "failed", 1), ("email", "sent", 249), ("sms", "sent", 250), ("webhook", "sent", 250)]
    assert query(settings, "select action_key, status, attempts, last_error, reason, document_path "
                           "from dispatch_review") == [(poisoned, "failed", 0, POISON_ERROR, RENDER_FAILED, None)]
    # every other document went out once, the poisoned customer's SMS and webhook included
    assert len(smtp.messages) == 249 and len(rx.deliveries) == 500
    assert "CU0137@x.example" not in {r for m in smtp.messages for r in m["rcpt_tos"]}
    assert {d["id"] for d in rx.deliveries} >= {"ct-CT0137-20260316/L1/sms", "ct-CT0137-20260316/L1/webhook"}
    assert not (settings.outbox / "2026-03-22" / folder_name(poisoned)).exists()
    manifest = json.loads((settings.outbox / "2026-03-22" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["count"] == 249 and poisoned not in {d["action_key"] for d in manifest["documents"]}

    # a re-run of the day does not fail again, sends nothing again, and leaves the failure as it is
    again = _run(settings, "2026-03-22", "2026-03-22").dispatch
    assert (again.rendered, again.sent, again.failed, again.needs_review, again.clean) == (0, 0, 0, 0, True)
    assert (len(smtp.messages), len(rx.deliveries)) == (249, 500)
    assert query(settings, "select status, last_error from action_ledger where action_key = ?", [poisoned]) == [
        ("failed", POISON_ERROR)]

    # the template fixed, the operator sends the failed document back: it is rendered and sent, once
    _templates(tmp_path, poisoned=False)
    with run_mod.connect(settings.database) as con:
        assert retry_failed(con, DAY) == [poisoned]
        fixed = dispatch(con, DAY, settings)
    assert (fixed.rendered, fixed.sent, fixed.failed, fixed.clean) == (1, 1, 0, True)
    assert query(settings, "select status, attempts, review_reason from action_ledger where action_key = ?",
                 [poisoned]) == [("sent", 1, None)]
    assert smtp.messages[-1]["rcpt_tos"] == ["CU0137@x.example"] and len(smtp.messages) == 250
    assert query(settings, "select count(*) from dispatch_review") == [(0,)]


def test_the_cli_counts_the_failed_document_exits_3_and_a_rerun_exits_0(tmp_path, servers):
    smtp, rx = servers
    w = _world(tmp_path, smtp, None, EMAIL, 3, poisoned="CU0002")
    templates = _templates(tmp_path)
    config, settings = _config(w, templates), _settings(w, templates)
    result = runner.invoke(app, ["run", "--as-of", "2026-03-22", "--config", config])
    assert result.exit_code == 3, result.output
    assert ("2026-03-22: rendered 2, sent 2, letters 0, failed 1 (not rendered 1), needs review 0, "
            "recovered {'sent': 0, 'retry': 0, 'needs_review': 0}") in result.output
    assert "1 document(s) failed and 0 need review in this run; every other document went out" in result.output
    assert "1 action(s) to review" in result.output
    assert query(settings, "select action_key, status, last_error, reason from dispatch_review") == [
        ("ct-CT0002-20260322/L1/reminder", "failed", POISON_ERROR, RENDER_FAILED)]
    assert [m["rcpt_tos"] for m in smtp.messages] == [["CU0001@x.example"], ["CU0003@x.example"]]

    result = runner.invoke(app, ["run", "--as-of", "2026-03-22", "--config", config])
    assert result.exit_code == 0, result.output
    assert "2026-03-22: rendered 0, sent 0, letters 0, failed 0 (not rendered 0), needs review 0" in result.output
    result = runner.invoke(app, ["dispatch", "--as-of", "2026-03-22", "--config", config])
    assert result.exit_code == 0, result.output

    # sent back while the template is still broken: it fails again, alone, and says so
    result = runner.invoke(app, ["dispatch", "--as-of", "2026-03-22", "--retry-failed", "--config", config])
    assert result.exit_code == 3, result.output
    assert "1 failed document(s) sent back to be rendered and sent again" in result.output
    assert "failed 1 (not rendered 1)" in result.output
    _templates(tmp_path, poisoned=False)
    result = runner.invoke(app, ["dispatch", "--as-of", "2026-03-22", "--retry-failed", "--config", config])
    assert result.exit_code == 0, result.output
    assert "2026-03-22: rendered 1, sent 1, letters 0, failed 0 (not rendered 0)" in result.output
    assert query(settings, "select action_key, status from action_ledger order by 1") == [
        ("ct-CT0001-20260322/L1/reminder", "sent"), ("ct-CT0002-20260322/L1/reminder", "sent"),
        ("ct-CT0003-20260322/L1/reminder", "sent")]
    assert len(smtp.messages) == 3


def test_a_render_failure_sent_back_with_resolve_is_rendered_again(tmp_path, servers):
    smtp, rx = servers
    w = _world(tmp_path, smtp, None, EMAIL, 2, poisoned="CU0001")
    templates = _templates(tmp_path)
    config, settings = _config(w, templates), _settings(w, templates)
    _run(settings, "2026-03-16", "2026-03-22")
    key = "ct-CT0001-20260316/L1/reminder"
    assert query(settings, LEDGER)[0] == (key, "email", "failed", 0, POISON_ERROR, RENDER_FAILED)
    _templates(tmp_path, poisoned=False)
    result = runner.invoke(app, ["resolve", key, "--as", "resend", "--on", "2026-03-22", "--config", config])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["dispatch", "--as-of", "2026-03-22", "--config", config])
    assert result.exit_code == 0, result.output
    assert "rendered 1, sent 1," in result.output
    assert query(settings, "select status, document_path from action_ledger where action_key = ?", [key]) == [
        ("sent", "2026-03-22/ct-CT0001-20260316__L1__reminder")]


# Keys no folder could be named after: a space, non-ASCII letters, '..', a NUL, a line break, a slash
# escaping upwards, '__' beside a '/' (which the old '/' -> '__' mapping would have collided).
ODD_KEYS = {
    "CT0001": "ct-CT 1-20260316/L1/{}",
    "CT0002": "ct-Zoë-Ærø-20260316/L1/{}",
    "CT0003": "ct-..-20260316/L1/{}",
    "CT0004": "ct-CT\x004-20260316/L1/{}",
    "CT0005": "ct-CT\r\n5-20260316/L1/{}",
    "CT0006": "ct-../../etc-20260316/L1/{}",
    "CT0007": "ct-CT_/7-20260316/L1/{}",
}


def test_ids_of_any_characters_get_their_own_folder_and_every_document_goes_out(tmp_path, servers):
    smtp, rx = servers
    w = _world(tmp_path, smtp, rx, EMAIL_SMS_WEBHOOK, 8, poisoned=None)
    settings = _settings(w, _templates(tmp_path, poisoned=False))
    _plan(settings)
    with run_mod.connect(settings.database) as con:  # as if the contract ids had been these
        for ct, pattern in ODD_KEYS.items():
            con.execute("update action_ledger set action_key = replace(action_key, ?, ?)",
                        [f"ct-{ct}-20260316/L1/", pattern.format("")])
    summary = _dispatch(settings)
    assert (summary.rendered, summary.sent, summary.failed, summary.needs_review) == (24, 24, 0, 0)
    rows = query(settings, "select action_key, action, status, document_path from action_ledger order by 1")
    assert {status for _, _, status, _ in rows} == {"sent"} and len(rows) == 24
    day = settings.outbox / "2026-03-22"
    for key, action, _, path in rows:
        assert path == f"2026-03-22/{folder_name(key)}"
        folder = settings.outbox / path
        assert folder.parent == day and folder.is_dir()
        assert (folder / {"reminder": "message.eml", "sms": "sms.json", "webhook": "event.json"}[action]).is_file()
    assert len({path for *_, path in rows}) == 24
    assert sorted(p.name for p in day.iterdir()) == sorted(
        [folder_name(key) for key, *_ in rows] + ["manifest.csv", "manifest.json"])
    # email: the key in its header, control characters escaped (no line break reaches the header)
    headers = sorted(m["message"]["X-Dunning-Action-Key"] for m in smtp.messages)
    assert headers == sorted([pattern.format("reminder").replace("\x00", "\\x00").replace("\r\n", "\\r\\n")
                              for pattern in ODD_KEYS.values()] + ["ct-CT0008-20260316/L1/reminder"])
    # webhooks and SMS: a header-safe webhook-id; the body keeps the key; an independent client verifies
    verifier = Webhook(SECRET)
    events = {}
    for d in rx.deliveries:
        raw = next(r for r in rx.requests if r["id"] == d["id"] and r["path"] == d["path"])
        payload = verifier.verify(raw["body"], raw["headers"])
        key = payload.get("id") or payload["reference"]
        events[key] = d["id"]
        assert d["headers"]["idempotency-key"] == d["id"] and d["id"].isprintable() and " " not in d["id"]
    assert len(events) == 16
    assert events["ct-CT0008-20260316/L1/webhook"] == "ct-CT0008-20260316/L1/webhook"
    assert events[ODD_KEYS["CT0004"].format("webhook")].startswith("msg_")


def test_a_line_break_in_a_name_injects_no_header_and_the_email_still_goes_out(tmp_path, servers):
    smtp, rx = servers
    w = _world(tmp_path, smtp, None, EMAIL, 3, poisoned=None)
    settings = _settings(w, _templates(tmp_path, poisoned=False))
    long_name = "Zoë " + " ".join(f"Langername{i}" for i in range(16))  # 200 characters, folded
    _plan(settings,
          "update stg_customers set name = 'Eve' || chr(13) || chr(10) || 'Bcc: x@example.org' "
          "where customer_id = 'CU0001'",
          f"update stg_customers set name = '{long_name}' where customer_id = 'CU0002'",
          "update stg_customers set name = 'Nul' || chr(0) || 'Byte', "
          "email = 'cu3@x.example' || chr(13) || chr(10) || 'Bcc: y@example.org' where customer_id = 'CU0003'")
    summary = _dispatch(settings)
    assert (summary.rendered, summary.sent, summary.failed, summary.not_rendered) == (2, 2, 1, 1)
    first, second = smtp.messages
    assert first["rcpt_tos"] == ["CU0001@x.example"]
    msg = first["message"]
    assert msg["To"].addresses[0].display_name == "Eve Bcc: x@example.org"
    assert msg["To"].addresses[0].addr_spec == "CU0001@x.example"
    assert msg.get_all("Bcc") is None and "x@example.org" not in first["rcpt_tos"]
    header_block = second["data"].split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in header_block.split(b"\r\n")) <= 78  # folded by the email library
    assert second["message"]["To"].addresses[0].display_name == long_name
    # an address with a line break cannot be addressed: failed alone, with its reason
    assert query(settings, "select action_key, status, last_error, reason from dispatch_review") == [(
        "ct-CT0003-20260316/L1/reminder", "failed",
        "Unaddressable: the email address of customer CU0003 is not a valid address: "
        "'cu3@x.example\\r\\nBcc: y@example.org'", RENDER_FAILED)]


def test_a_letter_without_a_postal_address_fails_alone_and_the_batch_goes_out(tmp_path, servers):
    smtp, rx = servers
    w = _world(tmp_path, smtp, None, LETTER, 3, poisoned=None)
    settings = _settings(w, _templates(tmp_path, poisoned=False))
    _plan(settings, "update stg_customers set address_line1 = null, address_line2 = null, postal_code = null, "
                    "city = null where customer_id = 'CU0002'")
    summary = _dispatch(settings)
    assert (summary.rendered, summary.letters, summary.failed, summary.not_rendered) == (3, 2, 1, 0)
    assert query(settings, "select action_key, status, last_error, review_reason from action_ledger order by 1") == [
        ("ct-CT0001-20260316/L1/reminder", "sent", None, None),
        ("ct-CT0002-20260316/L1/reminder", "failed", "ValueError: customer CU0002 has no postal address",
         "the letter could not be put in a print batch: not retried"),
        ("ct-CT0003-20260316/L1/reminder", "sent", None, None)]
    manifest = json.loads((tmp_path / "print" / "2026-03-22" / "batch-01" / "manifest.json").read_text())
    assert [m["action_key"] for m in manifest["letters"]] == [
        "ct-CT0001-20260316/L1/reminder", "ct-CT0003-20260316/L1/reminder"]


def test_an_sms_that_fails_to_render_leaves_no_file_and_no_planned_row(tmp_path, servers):
    smtp, rx = servers
    levels = [{"name": "SMS", "timing": {"after": "due_date", "days": 7}, "channel": "sms"}]
    w = _world(tmp_path, smtp, rx, levels, 5, poisoned=None)
    templates = _templates(tmp_path, poisoned=False)
    sms = templates / "default" / "de" / "reminder.sms.txt"
    sms.write_text(POISON + sms.read_text(encoding="utf-8"), encoding="utf-8")
    settings = _settings(w, templates)
    _plan(settings, "update stg_customers set name = 'Poison Pill' where customer_id = 'CU0003'")
    summary = _dispatch(settings)
    assert (summary.rendered, summary.sent, summary.failed, summary.not_rendered) == (4, 4, 1, 1)
    assert query(settings, "select action_key, status, last_error from action_ledger where status <> 'sent'") == [
        ("ct-CT0003-20260316/L1/reminder", "failed",
         "UndefinedError: default/de/reminder.sms.txt line 1: 'dict object' has no attribute 'no_such_field'")]
    written = sorted(p.parent.name for p in settings.outbox.rglob("sms.json"))
    assert written == sorted(p for (p,) in query(
        settings, "select split_part(document_path, '/', 2) from action_ledger where status = 'sent'"))
    assert len(rx.deliveries) == 4


def _counts(settings: Settings) -> list[tuple]:
    return query(settings, "select status, count(*) from action_ledger group by all order by all")


NOT_BASE64 = ("does not hold a usable signing secret: the part after whsec_ is not base64 (A-Z, a-z, 0-9, + and "
              "/, optionally padded with =). A Standard Webhooks secret is whsec_ followed by the base64 of the key.")


@pytest.mark.parametrize(("secret", "problem"), [
    (None, "channels not usable, nothing was sent:\n"
           "- channels.webhook.secret_env: the environment variable TEST_SIGNING_SECRET (the signing secret for "
           "http://127.0.0.1:{port}/webhook) is not set\n"
           "- channels.sms.secret_env: the environment variable TEST_SIGNING_SECRET (the signing secret for "
           "http://127.0.0.1:{port}/sms) is not set"),
    ("whsec_!!not*base64!!", "channels not usable, nothing was sent:\n"
                             f"- channels.webhook.secret_env: the environment variable TEST_SIGNING_SECRET {NOT_BASE64}\n"
                             f"- channels.sms.secret_env: the environment variable TEST_SIGNING_SECRET {NOT_BASE64}"),
])
def test_a_missing_or_malformed_secret_stops_dispatch_before_anything_is_sending(
        tmp_path, monkeypatch, secret, problem):
    with SmtpServer() as smtp, WebhookReceiver(SECRET) as rx:
        w = _world(tmp_path, smtp, rx, EMAIL_SMS_WEBHOOK, 3, poisoned=None)
        settings = _settings(w, _templates(tmp_path, poisoned=False))
        config = _config(w, settings.templates)
        if secret is None:
            monkeypatch.delenv("TEST_SIGNING_SECRET", raising=False)
        else:
            monkeypatch.setenv("TEST_SIGNING_SECRET", secret)
        message = problem.format(port=rx.url.split(":")[2].split("/")[0])
        # the library: planned, then dispatch refuses before recovering, rendering or marking anything
        _plan(settings)
        with pytest.raises(ValueError) as refused, run_mod.connect(settings.database) as con:
            dispatch(con, DAY, settings)
        assert str(refused.value) == message and type(refused.value).__name__ == "ChannelConfigError"
        assert _counts(settings) == [("planned", 9)]
        # the CLI: one message naming the setting, exit 2, nothing sent, nothing left in sending
        for args in (["dispatch", "--as-of", "2026-03-22"], ["run", "--as-of", "2026-03-22"]):
            result = runner.invoke(app, [*args, "--config", config])
            assert result.exit_code == 2, result.output
            assert " ".join(f"NOTHING SENT: {message}".split()) in " ".join(result.output.split())
            if secret:
                assert secret not in result.output
        assert _counts(settings) == [("planned", 9)]
        assert smtp.messages == [] and rx.requests == []
        assert not list(settings.outbox.rglob("*.eml"))


def test_an_unpadded_whsec_secret_is_the_standard_and_the_day_goes_out(tmp_path, monkeypatch):
    unpadded = "whsec_" + base64.b64encode(bytes(range(100, 124)) + b"x").decode().rstrip("=")
    assert len(unpadded) % 4 != 2  # really without its padding
    monkeypatch.setenv("TEST_SIGNING_SECRET", unpadded)
    with SmtpServer() as smtp, WebhookReceiver(unpadded) as rx:
        w = _world(tmp_path, smtp, rx, EMAIL_SMS_WEBHOOK, 2, poisoned=None)
        settings = _settings(w, _templates(tmp_path, poisoned=False))
        summary = _run(settings, "2026-03-16", "2026-03-22").dispatch
        assert (summary.sent, summary.failed) == (6, 0)
        verifier = Webhook(unpadded)
        assert [verifier.verify(r["body"], r["headers"])["id" if r["path"] == "/webhook" else "reference"]
                for r in rx.requests] == [
            "ct-CT0001-20260316/L1/sms", "ct-CT0001-20260316/L1/webhook",
            "ct-CT0002-20260316/L1/sms", "ct-CT0002-20260316/L1/webhook"]


def test_a_url_with_credentials_is_never_printed_in_full(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_SIGNING_SECRET", SECRET)
    w = World(tmp_path, policy(EMAIL))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-15")
    config = Path(w.write_config())
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["channels"] = {"webhook": {"url": "http://hookuser:hunter2@hooks.example.com/in?api_key=k3y&x=1",
                                    "secret_env": "TEST_SIGNING_SECRET"}}
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    for args in (["dispatch", "--as-of", "2026-03-22"], ["run", "--as-of", "2026-03-22"]):
        result = runner.invoke(app, [*args, "--config", str(config)])
        assert result.exit_code == 2, result.output
        out = " ".join(result.output.split())
        assert "channels.webhook.url" in out
        assert "http://***@hooks.example.com/in?api_key=***&x=1: use https://host/..." in out
        assert "hunter2" not in result.output and "k3y" not in result.output and "hookuser" not in result.output

    # a valid URL with credentials whose secret is missing: the message names the setting, redacted
    data["channels"]["webhook"]["url"] = "https://hookuser:hunter2@hooks.example.com/in?token=t0k"
    data["channels"]["webhook"]["secret_env"] = "TEST_UNSET_SECRET"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.delenv("TEST_UNSET_SECRET", raising=False)
    result = runner.invoke(app, ["dispatch", "--as-of", "2026-03-22", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert ("NOTHING SENT: channels.webhook.secret_env: the environment variable TEST_UNSET_SECRET (the signing "
            "secret for https://***@hooks.example.com/in?token=***) is not set") in " ".join(result.output.split())
    assert "hunter2" not in result.output and "t0k" not in result.output
