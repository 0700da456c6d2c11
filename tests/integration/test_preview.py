"""`dunning preview`: a level's email, letter and SMS written to files, nothing sent."""

from __future__ import annotations

import email
import email.policy
import io
from decimal import Decimal

import pytest
from pypdf import PdfReader
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.delivery.payment import creditor_reference, format_reference
from pipeline.delivery.preview import preview
from pipeline.delivery.render.samples import sample_context
from pipeline.delivery.render.formatting import format_money
from world import World, policy, query

# Level 2 charges a fee, so its preview must add it to the sample amounts.
LEVELS = [("due_date", 7, 7), ("previous_level", 7, 10, {"EUR": "5.00"})]


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_preview_without_case_writes_eml_pdf_and_sms(tmp_path):
    settings = World(tmp_path, policy(LEVELS)).write()
    paths = preview(settings, "default", 2, "de_DE", tmp_path / "out")
    assert [p.name for p in paths] == [f"preview-default-L2-de_DE.{ext}" for ext in ("eml", "pdf", "txt")]

    sample = sample_context(0, locale="de_DE", template="reminder")
    number, customer = sample["invoice"]["invoice_number"], sample["customer"]
    total = format_money(sample["amounts"]["principal"] + Decimal("5.00"), "EUR", "de_DE")  # 1.139,56 €
    msg = email.message_from_bytes(paths[0].read_bytes(), policy=email.policy.default)
    assert msg["Subject"] == f"Zahlungserinnerung zur Rechnung {number}"
    assert msg["To"].addresses[0].addr_spec == customer["email"]
    assert msg["To"].addresses[0].display_name == customer["name"]
    assert msg["From"].addresses[0].display_name == "Test GmbH"  # the organization from the settings
    assert msg["X-Dunning-Action-Key"] == "preview/default/L2/de_DE"

    [attachment] = list(msg.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    pdf = attachment.get_content()
    assert pdf == paths[1].read_bytes()
    text = pdf_text(pdf)
    assert format_money(sample["invoice"]["open_amount"], "EUR", "de_DE") in text  # 1.134,56 €
    assert total in text and "Test GmbH" in text and number in text

    sms = paths[2].read_text(encoding="utf-8")
    assert sms == (f"Test GmbH: Rechnung {number} ist noch offen. Bitte zahlen Sie {total} bis 20.05.2026. "
                   "Schon bezahlt? Dann bitte ignorieren.\n")  # due: 10 May + 10 payment days


def test_preview_is_deterministic(tmp_path):
    settings = World(tmp_path, policy(LEVELS)).write()
    first = preview(settings, "default", 1, "fr_BE", tmp_path / "a")
    second = preview(settings, "default", 1, "fr_BE", tmp_path / "b")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


@pytest.mark.parametrize(
    "args, message",
    [
        (("default", 3, "de_DE"), "policy default has no level 3; its levels are: 1 Level 1, 2 Level 2"),
        (("default", 0, "de_DE"), "policy default has no level 0"),
        (("gold", 1, "de_DE"), "unknown policy 'gold'"),
        (("default", 1, "xx_QQ"), "unknown locale 'xx_QQ'"),
        (("default", 1, ""), "unknown locale ''"),
    ],
)
def test_clear_errors(tmp_path, args, message):
    settings = World(tmp_path, policy(LEVELS)).write()
    with pytest.raises(ValueError) as err:
        preview(settings, *args, tmp_path / "out")
    assert message in str(err.value)
    assert not (tmp_path / "out").exists()


def test_preview_of_a_real_case(tmp_path):
    w = World(tmp_path, policy(LEVELS))
    w.customer(name="Jana Nováková", locale="de_DE").contract().invoice("I1", "250.00", "2026-04-26", "2026-05-10")
    settings = w.run("2026-05-01", "2026-05-20")
    [(case_id,)] = query(settings, "select distinct case_id from action_ledger where action = 'reminder'")

    # The case's data, with the level, template and locale asked for (French, level 2 with its fee).
    paths = preview(settings, "default", 2, "fr_FR", tmp_path / "out", case_id=case_id)
    text = pdf_text(paths[1].read_bytes())
    assert "Jana Nováková" in text and "N-I1" in text
    assert format_money(Decimal("250.00"), "EUR", "fr_FR") in text
    msg = email.message_from_bytes(paths[0].read_bytes(), policy=email.policy.default)
    assert msg["Subject"] == "Rappel de paiement\xa0: facture N-I1"
    assert msg["To"].addresses[0].addr_spec == "CU1@x.example"
    assert "N-I1" in paths[2].read_text(encoding="utf-8")

    with pytest.raises(ValueError, match="case 'ct-nope' has no reminder"):
        preview(settings, "default", 1, "de_DE", tmp_path / "out", case_id="ct-nope")


def test_cli_preview(tmp_path):
    config = World(tmp_path, policy(LEVELS)).write_config()
    out = tmp_path / "previews"
    runner = CliRunner()
    ok = runner.invoke(app, ["preview", "--policy", "default", "--level", "1", "--locale", "nl_BE",
                             "--out", str(out), "--config", str(config)])
    assert ok.exit_code == 0, ok.output
    assert sorted(p.name for p in out.iterdir()) == [f"preview-default-L1-nl_BE.{ext}" for ext in ("eml", "pdf", "txt")]
    assert str(out / "preview-default-L1-nl_BE.pdf") in ok.output

    bad = runner.invoke(app, ["preview", "--policy", "default", "--level", "5", "--locale", "nl_BE",
                              "--out", str(out), "--config", str(config)])
    assert bad.exit_code == 2 and "has no level 5" in bad.output


COLLECTIONS = {
    "payment_link": "https://pay.example.com/c/{case_key}?amount={amount}",
    "steps": {"soft": [{"type": "retry", "days": 3},
                       {"type": "payment_alternative", "channels": "email_and_sms", "method": "payment_link",
                        "grace_days": 10, "admin_charges": {"EUR": "2.50"}, "sms_delay_days": 2},
                       {"type": "official_letter", "grace_days": 14, "admin_charges": {"EUR": "5.00"}}]},
}


def _collection_world(tmp_path):
    return World(tmp_path, policy(LEVELS, extra={"collections": COLLECTIONS})).write()


def test_preview_of_a_collection_step_has_its_link_charges_so_far_and_pay_by_date(tmp_path):
    settings = _collection_world(tmp_path)
    outstanding = sample_context(0)["collection"]["outstanding"]  # 1,134.56 of the sample's failed 1,234.56
    link = preview(settings, "default", 2, "en_GB", tmp_path / "out", failure_type="soft")
    assert [p.name for p in link] == [f"preview-default-soft-S2-en_GB.{ext}" for ext in ("eml", "pdf", "txt")]
    msg = email.message_from_bytes(link[0].read_bytes(), policy=email.policy.default)
    assert msg["Subject"] == "Your payment of €1,234.56 could not be collected"
    assert msg["X-Dunning-Action-Key"] == "preview/default/soft/S2/en_GB"
    total = outstanding + Decimal("2.50")
    text = pdf_text(link[1].read_bytes())
    assert f"Total to pay {format_money(total, 'EUR', 'en_GB')}" in text
    assert f"https://pay.example.com/c/cc-P000000?amount={total}" in text and "by 20 May 2026" in text
    assert link[2].read_text(encoding="utf-8") == (
        f"Test GmbH: collecting €1,234.56 failed. Please pay {format_money(total, 'EUR', 'en_GB')} by 20 May 2026: "
        f"https://pay.example.com/c/cc-P000000?amount={total}\n")

    # the formal letter: both steps' charges, transfer details of the real sender, 14 days to pay
    formal = preview(settings, "default", 3, "en_GB", tmp_path / "out", failure_type="soft")
    text = pdf_text(formal[1].read_bytes())
    total = outstanding + Decimal("7.50")
    assert f"Administration charges {format_money(Decimal('7.50'), 'EUR', 'en_GB')}" in text
    assert f"pay {format_money(total, 'EUR', 'en_GB')} within 14 days, by 24 May 2026" in text
    reference = format_reference(creditor_reference("cc-P000000"))  # the collection case's, in groups of four
    assert "IBAN DE02 1203 0000 0000 2020 51" in text and f"Reference {reference}" in text
    assert "pay.example.com" not in text


@pytest.mark.parametrize("failure_type, step, message", [
    ("soft", 1, "soft step 1 (retry) of policy default sends no document"),
    ("soft", 4, "policy default has no soft collection step 4; its steps are: 1 Retry, 2 Payment alternative, "
                "3 Official letter"),
    ("hard", 1, "policy default has no hard collection step 1; its steps are: none"),
    ("lost", 1, "failure type must be one of soft, hard, technical, not 'lost'"),
])
def test_clear_errors_for_collection_steps(tmp_path, failure_type, step, message):
    settings = _collection_world(tmp_path)
    with pytest.raises(ValueError) as err:
        preview(settings, "default", step, "en_GB", tmp_path / "out", failure_type=failure_type)
    assert str(err.value) == message
    assert not (tmp_path / "out").exists()


def test_cli_preview_of_a_collection_step_and_a_level_or_a_step_not_both(tmp_path):
    config = World(tmp_path, policy(LEVELS, extra={"collections": COLLECTIONS})).write_config()
    out, runner = tmp_path / "previews", CliRunner()
    ok = runner.invoke(app, ["preview", "--policy", "default", "--failure-type", "soft", "--step", "2",
                             "--locale", "de_DE", "--out", str(out), "--config", str(config)])
    assert ok.exit_code == 0, ok.output
    assert sorted(p.name for p in out.iterdir()) == [f"preview-default-soft-S2-de_DE.{ext}" for ext in ("eml", "pdf", "txt")]
    for args in (["--level", "1", "--step", "2"], ["--failure-type", "soft"], []):
        bad = runner.invoke(app, ["preview", "--policy", "default", "--locale", "de_DE", *args, "--config", str(config)])
        assert bad.exit_code == 2 and "give either --level N, or --failure-type TYPE with --step N" in bad.output
