"""The daily run delivering through real channels: a real SMTP server and a real HTTP receiver
on 127.0.0.1, the print batch on disk; retries, review and the fresh-data gate."""

from __future__ import annotations

import io
import json
from datetime import date
from decimal import Decimal

import pytest
from pypdf import PdfReader

from http_receiver import WebhookReceiver
from pipeline.engine import run as run_mod
from pipeline.delivery.render.formatting import format_money
from smtp_server import SmtpServer
from world import World, policy, query

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
LEVELS = [
    {"name": "Reminder", "timing": {"after": "due_date", "days": 7}, "payment_term_days": 7,
     "channel": "email", "fee": {"EUR": "5.00"},
     "actions": [{"type": "reminder"}, {"type": "sms"}, {"type": "notify_merchant"}, {"type": "webhook"}]},
    {"name": "Registered letter", "timing": {"after": "previous_level", "days": 0}, "template": "final",
     "channel": "registered_letter"},
]
L1 = "ct-CT1-20260316/L1"


@pytest.fixture
def servers(monkeypatch):
    monkeypatch.setenv("TEST_SIGNING_SECRET", SECRET)
    with SmtpServer() as smtp, WebhookReceiver(SECRET) as rx:
        yield smtp, rx


def _world(tmp_path, smtp, rx, levels=LEVELS, **dispatch) -> World:
    w = World(tmp_path, policy(levels))
    w.customer(phone="+4915550100", name="Erika Mustermann").contract()
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-15")
    invoices = tmp_path / "invoice-pdfs"
    invoices.mkdir()
    (invoices / "N-I1.pdf").write_bytes(b"%PDF-1.4 original invoice N-I1")
    w.settings_overrides = {
        "channels": {
            "email": {"host": smtp.host, "port": smtp.port, "security": "none"},
            "webhook": {"url": rx.url, "secret_env": "TEST_SIGNING_SECRET", "backoff_seconds": 0},
            "sms": {"url": rx.url_for("/sms"), "secret_env": "TEST_SIGNING_SECRET", "backoff_seconds": 0},
            "print_folder": str(tmp_path / "print"),
            "invoice_pdf_dir": str(invoices),
        },
        "dispatch": {"max_payment_age_days": None, **dispatch},
    }
    return w


def _rerun(settings, day: str) -> None:
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        run_mod.run_day(con, date.fromisoformat(day), settings)


def test_every_channel_delivers_once_and_a_rerun_sends_nothing(tmp_path, servers):
    smtp, rx = servers
    s = _world(tmp_path, smtp, rx).run("2026-03-16", "2026-03-29", dispatch=True)

    assert query(s, "select executed_on::varchar, action_key, channel, status, attempts, provider_message_id "
                    "from action_ledger order by executed_on, action_key") == [
        ("2026-03-22", f"{L1}/notify_merchant", "email", "sent", 1, "2.0.0 Ok: queued as 1"),
        ("2026-03-22", f"{L1}/reminder", "email", "sent", 1, "2.0.0 Ok: queued as 2"),
        ("2026-03-22", f"{L1}/sms", "sms", "sent", 1, "rx-1"),
        ("2026-03-22", f"{L1}/webhook", "webhook", "sent", 1, "rx-2"),
        ("2026-03-29", "ct-CT1-20260316/L2/reminder", "registered_letter", "sent", 1, "2026-03-29/batch-01"),
    ]
    # email: to the customer, text + HTML, the reminder PDF showing the amount, the original invoice
    copy, reminder = smtp.messages  # sent in action-key order
    msg = reminder["message"]
    assert (reminder["rcpt_tos"], msg["X-Dunning-Action-Key"], msg["Date"]) == (
        ["CU1@x.example"], f"{L1}/reminder", "Sun, 22 Mar 2026 00:00:00 +0000")
    parts = {p.get_content_type() for p in msg.walk()}
    assert {"text/plain", "text/html", "application/pdf"} <= parts
    attachments = [(p.get_filename(), p.get_content()) for p in msg.iter_attachments()]
    assert [name for name, _ in attachments] == ["reminder-N-I1.pdf", "invoice-N-I1.pdf"]
    assert attachments[1][1] == b"%PDF-1.4 original invoice N-I1"
    text = PdfReader(io.BytesIO(attachments[0][1])).pages[0].extract_text().replace("\xa0", " ")
    assert format_money(Decimal("105.00"), "EUR", "de_DE").replace("\xa0", " ") in text
    assert "Erika Mustermann" in text
    # the merchant's copy goes to the organization's address, marked with the customer
    assert copy["rcpt_tos"] == ["billing@test.example"]
    assert copy["message"]["Subject"].startswith("[CU1] ")
    # SMS and webhook: signed (the receiver verified them), once each, keyed by the action
    assert [(d["path"], d["id"]) for d in rx.deliveries] == [("/sms", f"{L1}/sms"), ("/webhook", f"{L1}/webhook")]
    sms, event = rx.deliveries[0]["payload"], rx.deliveries[1]["payload"]
    assert (sms["to"], sms["reference"]) == ("+4915550100", f"{L1}/sms")
    assert format_money(Decimal("105.00"), "EUR", "de_DE") in sms["text"]
    assert (event["type"], event["data"]["amount_demanded"], event["data"]["fees_total"]) == (
        "payment.escalated", "105.00", "5.00")
    # the registered letter is in the day's print batch
    manifest = json.loads((tmp_path / "print" / "2026-03-29" / "batch-01" / "manifest.json").read_text())
    assert [(m["action_key"], m["registered"], m["pages"], m["amount"], m["address"]) for m in manifest["letters"]] == [
        ("ct-CT1-20260316/L2/reminder", True, 1, "105.00", ["Hauptstr. 1", "10115 Berlin"])]

    with run_mod.connect(s.database) as con:   # a past day is dispatched again, not recomputed
        run_mod.load_inputs(con, s)
        assert run_mod.dispatch_day(con, date(2026, 3, 22), s) == 0
    _rerun(s, "2026-03-29")   # the latest day may be run again
    assert (len(smtp.messages), len(rx.requests)) == (2, 2)
    assert sorted(p.name for p in (tmp_path / "print" / "2026-03-29").iterdir()) == ["batch-01"]
    assert query(s, "select count(*) from action_ledger where status <> 'sent'") == [(0,)]


ONE_LEVEL = [{"name": "Reminder", "timing": {"after": "due_date", "days": 7}, "channel": "email"}]


def test_a_temporary_refusal_is_retried_by_the_next_run(tmp_path, servers):
    smtp, rx = servers
    w = _world(tmp_path, smtp, rx, ONE_LEVEL)
    smtp.reject_next(1, 451, "4.3.0 Try again later")
    s = w.run("2026-03-16", "2026-03-22", dispatch=True)
    assert query(s, "select status, attempts, last_error, review_reason from action_ledger") == [
        ("failed", 1, f"SMTP {smtp.host}:{smtp.port}: end of DATA answered 451 4.3.0 Try again later", None)]
    assert query(s, "select reason from dispatch_review") == [("failed 1 time(s), will be retried",)]
    _rerun(s, "2026-03-23")
    assert query(s, "select status, attempts, executed_on::varchar from action_ledger") == [("sent", 2, "2026-03-22")]
    assert len(smtp.messages) == 1


def test_a_permanent_refusal_is_not_retried_and_is_listed(tmp_path, servers):
    smtp, rx = servers
    w = _world(tmp_path, smtp, rx, ONE_LEVEL)
    smtp.reject_next(1, 550, "5.7.1 Rejected")
    s = w.run("2026-03-16", "2026-03-22", dispatch=True)
    _rerun(s, "2026-03-23")
    assert query(s, "select action_key, status, attempts, reason from dispatch_review") == [
        (f"{L1}/reminder", "failed", 1, "refused: not retried")]
    assert smtp.messages == []


def test_failures_give_up_after_max_attempts(tmp_path, servers):
    smtp, rx = servers
    w = _world(tmp_path, smtp, rx, ONE_LEVEL, max_attempts=2)
    smtp.reject_next(5, 421, "4.7.0 Busy")
    s = w.run("2026-03-16", "2026-03-22", dispatch=True)
    _rerun(s, "2026-03-23")
    _rerun(s, "2026-03-24")
    assert query(s, "select status, attempts, reason from dispatch_review") == [
        ("failed", 2, "gave up after 2 attempts")]


def test_a_message_whose_outcome_is_unknown_goes_to_review_and_is_never_resent(tmp_path, servers):
    smtp, rx = servers
    w = _world(tmp_path, smtp, rx, ONE_LEVEL)
    smtp.drop_after_data_next(1)
    s = w.run("2026-03-16", "2026-03-22", dispatch=True)
    _rerun(s, "2026-03-23")
    assert len(smtp.messages) == 1  # it did arrive; only the reply was lost
    assert query(s, "select status, reason from dispatch_review") == [
        ("needs_review", "the connection was lost after the message was handed over; it may or may not have "
                         "been delivered")]


def test_a_webhook_receiver_that_fails_is_retried_within_the_run_with_the_same_key(tmp_path, servers):
    smtp, rx = servers
    levels = [{"name": "Escalate", "timing": {"after": "due_date", "days": 7}, "actions": [{"type": "webhook"}]}]
    rx.fail_next(2, 503)
    s = _world(tmp_path, smtp, rx, levels).run("2026-03-16", "2026-03-22", dispatch=True)
    assert [r["id"] for r in rx.requests] == [f"{L1}/webhook"] * 3
    assert len(rx.deliveries) == 1
    assert query(s, "select status, attempts from action_ledger") == [("sent", 1)]


def test_stale_payment_data_holds_dispatch_and_the_next_fresh_day_sends(tmp_path, servers):
    smtp, rx = servers
    w = _world(tmp_path, smtp, rx, ONE_LEVEL, max_payment_age_days=3)
    w.customer("CU2").contract("CT2", "CU2").invoice("I2", "10.00", "2026-03-01", "2026-04-15", "CT2", "CU2")
    w.payment("P1", "1.00", "2026-03-10", "CT2").payment("P2", "1.00", "2026-03-23", "CT2")
    s = w.run("2026-03-16", "2026-03-22", dispatch=True)
    assert query(s, "select action_key, status from action_ledger") == [(f"{L1}/reminder", "held")]
    assert query(s, "select dispatch_blocked from run_log where as_of = '2026-03-22'") == [(
        "payment data is stale on 2026-03-22: the newest payment was booked on 2026-03-10, more than 3 day(s) "
        "before; nothing is sent today (state is computed, the day's actions are held and decided again on "
        "the next run)",)]
    assert query(s, "select count(*) from contract_balances where as_of = '2026-03-22'") == [(2,)]
    assert smtp.messages == []
    _rerun(s, "2026-03-23")
    assert query(s, "select action_key, executed_on::varchar, status from action_ledger") == [
        (f"{L1}/reminder", "2026-03-23", "sent")]
    assert len(smtp.messages) == 1


def test_review_is_resolved_by_a_person_delivered_or_resent(tmp_path, servers):
    from typer.testing import CliRunner

    from pipeline.cli import app

    smtp, rx = servers
    w = _world(tmp_path, smtp, rx, ONE_LEVEL)
    smtp.drop_after_data_next(1)
    s = w.run("2026-03-16", "2026-03-22", dispatch=True)
    config = w.write_config()
    runner = CliRunner()
    result = runner.invoke(app, ["resolve", f"{L1}/reminder", "--as", "resend", "--on", "2026-03-23",
                                 "--config", str(config)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["dispatch", "--as-of", "2026-03-23", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "sent 1" in result.output
    assert len(smtp.messages) == 2  # the person chose to send it again
    assert query(s, "select status, attempts, review_reason from action_ledger") == [("sent", 1, None)]
    result = runner.invoke(app, ["resolve", f"{L1}/reminder", "--as", "delivered", "--on", "2026-03-23",
                                 "--config", str(config)])
    assert result.exit_code == 2
    assert "is sent; only actions in review" in result.output
