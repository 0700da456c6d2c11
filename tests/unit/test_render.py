"""Formatting, sandboxed templates and letter PDFs (pipeline.delivery.render)."""

from __future__ import annotations

import io
import logging
import shutil
import socket
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError, UndefinedError
from pypdf import PdfReader

from pipeline.delivery.render import LetterRenderer, TemplateSet, format_date, format_money, format_number, render_many
from pipeline.delivery.render.samples import TEMPLATE_ROOT, sample_context, with_document_parts

AMOUNT = Decimal("1234.56")
DAY = date(2026, 5, 10)


# --- formatting ---------------------------------------------------------------

@pytest.mark.parametrize(
    "locale, money, medium, long",
    [
        ("de_DE", "1.234,56\xa0€", "10.05.2026", "10. Mai 2026"),
        ("en_GB", "€1,234.56", "10 May 2026", "10 May 2026"),
        ("fr_FR", "1\u202f234,56\xa0€", "10 mai 2026", "10 mai 2026"),
        ("nl_NL", "€\xa01.234,56", "10 mei 2026", "10 mei 2026"),
        ("da_DK", "1.234,56\xa0€", "10. maj 2026", "10. maj 2026"),
    ],
)
def test_formatting_per_locale(locale, money, medium, long):
    assert format_money(AMOUNT, "EUR", locale) == money
    assert format_date(DAY, locale) == medium
    assert format_date(DAY, locale, "long") == long


def test_format_number_and_none():
    assert format_number(Decimal("1234.5"), "de_DE") == "1.234,5"
    assert format_number(1234567, "en_GB") == "1,234,567"
    with pytest.raises(ValueError):
        format_money(None, "EUR", "de_DE")


# --- templates ----------------------------------------------------------------

def german_reminder() -> dict:
    ctx = sample_context(0, locale="de_DE", template="reminder")  # one invoice, no fees
    inv = dict(ctx["invoice"], invoice_number="RE-2026-0042", amount=AMOUNT, open_amount=AMOUNT)
    ctx.update(invoice=inv, invoices=[inv])
    ctx["level"]["due_date"] = date(2026, 5, 24)
    ctx["amounts"] = {"currency": "EUR", "principal": AMOUNT, "fees": Decimal("0.00"),
                      "interest": Decimal("0.00"), "total": AMOUNT}
    return ctx


@pytest.fixture(scope="module")
def default_set() -> TemplateSet:
    return TemplateSet(TEMPLATE_ROOT, "default")


def make_set(tmp_path: Path, files: dict[str, str], name: str = "custom") -> TemplateSet:
    for rel, text in files.items():
        path = tmp_path / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return TemplateSet(tmp_path, name)


def test_german_reminder_email(default_set):
    mail = default_set.render_email(german_reminder())
    assert mail.subject == "Zahlungserinnerung zur Rechnung RE-2026-0042"
    for body in (mail.text, mail.html):
        assert "1.234,56\xa0€" in body
        assert "RE-2026-0042" in body
        assert "24.05.2026" in body  # the level's due date
        assert "Acme Energie GmbH" in body
        assert "DE89 3704 0044 0532 0130 00" in body


LOCALES = {"en": "en_GB", "de": "de_DE", "fr": "fr_FR", "nl": "nl_NL", "da": "da_DK"}


@pytest.mark.parametrize("lang", sorted(LOCALES))
@pytest.mark.parametrize("template", ["reminder", "notice", "final"])
def test_all_default_templates_render(default_set, lang, template):
    ctx = sample_context(2, locale=LOCALES[lang], template=template)  # 3 invoices, fees and interest
    assert default_set.template_name(template, "txt", ctx["locale"]) == f"{lang}/{template}.txt"
    mail = default_set.render_email(ctx)
    assert ctx["invoice"]["invoice_number"] in mail.subject
    assert "{{" not in mail.text + mail.html
    html = default_set.render_letter_html(ctx)
    assert f'<html lang="{lang}">' in html
    if template == "notice":  # fees are mentioned
        assert format_money(ctx["amounts"]["fees"], "EUR", ctx["locale"]) in mail.text


def test_language_fallback_to_english(default_set):
    ctx = sample_context(1, locale="sv_SE", template="reminder")
    assert default_set.template_name("reminder", "txt", "sv_SE") == "en/reminder.txt"
    # English words, Swedish number format: the customer's locale still formats.
    assert "Payment reminder" in default_set.render_email(ctx).subject
    assert format_money(ctx["amounts"]["total"], "EUR", "sv_SE") in default_set.render_email(ctx).text


def test_html_is_escaped_text_is_not(default_set):
    ctx = german_reminder()
    ctx["customer"]["name"] = "<script>x</script>"
    with_document_parts(ctx)  # a person's name now: greeted by name, and on the letter's address block
    mail = default_set.render_email(ctx)
    assert "&lt;script&gt;x&lt;/script&gt;" in mail.html and "<script>" not in mail.html
    assert "<script>x</script>" in mail.text
    assert "&lt;script&gt;" in default_set.render_letter_html(ctx)


def test_undefined_variable_names_template_and_variable(tmp_path):
    ts = make_set(tmp_path, {"en/reminder.txt": "Hello\n{{ customer.name }} owes {{ amount_duee }}\n"})
    with pytest.raises(UndefinedError) as err:
        ts.render("en/reminder.txt", german_reminder())
    assert "custom/en/reminder.txt line 2" in str(err.value)
    assert "amount_duee" in str(err.value)

    ts = make_set(tmp_path, {"en/notice.txt": "{{ customer.nmae }}"})
    with pytest.raises(UndefinedError, match=r"custom/en/notice\.txt line 1: .*'nmae'"):
        ts.render("en/notice.txt", german_reminder())


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ customer.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ 'x' * 10000000 }}",
    ],
)
def test_sandbox_blocks_unsafe_access(tmp_path, source):
    ts = make_set(tmp_path, {"en/evil.txt": source})
    with pytest.raises(SecurityError):
        ts.render("en/evil.txt", german_reminder())


def test_sandbox_is_immutable_and_loader_confined(tmp_path):
    ts = make_set(tmp_path, {"en/a.txt": "{{ invoices.append(1) }}", "en/b.txt": '{% include "../../secret.txt" %}'})
    (tmp_path / "secret.txt").write_text("SECRET")
    with pytest.raises(SecurityError):
        ts.render("en/a.txt", german_reminder())
    with pytest.raises(Exception) as err:
        ts.render("en/b.txt", german_reminder())
    assert "SECRET" not in str(err.value)


# --- PDF ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def renderer() -> LetterRenderer:
    return LetterRenderer(TEMPLATE_ROOT)


def pdf_text(pdf: bytes) -> tuple[PdfReader, str]:
    reader = PdfReader(io.BytesIO(pdf))
    return reader, "\n".join(page.extract_text() for page in reader.pages)


def test_letter_pdf(renderer):
    ctx = german_reminder()
    pdf = renderer.render(ctx)
    reader, text = pdf_text(pdf)
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert abs(float(box.width) - 595.28) < 1 and abs(float(box.height) - 841.89) < 1
    assert "1.234,56" in text and "RE-2026-0042" in text and "24.05.2026" in text
    assert "Zahlungserinnerung" in text
    assert reader.metadata["/CreationDate"] == "D:20260510000000Z"
    assert renderer.render(ctx) == pdf  # deterministic within a process


@pytest.mark.parametrize("locale", sorted(LOCALES.values()))
def test_long_final_letter_fits_one_page(renderer, locale):
    ctx = sample_context(2, locale=locale, template="final")  # fees and interest
    inv = ctx["invoice"]
    ctx["invoices"] = [dict(inv, invoice_number=f"RE-2026-{k:05d}") for k in range(6)]
    reader, _ = pdf_text(renderer.render(ctx))
    assert len(reader.pages) == 1


EVIL_LETTER = """<html><head>
<link rel="stylesheet" href="inside.css">
<link rel="stylesheet" href="../secret.css">
<link rel="stylesheet" href="file://{secret}">
<link rel="stylesheet" href="link.css">
<style>@import url("http://127.0.0.1:9/remote.css");</style>
</head><body>
<p>Invoice {{{{ invoice.invoice_number }}}}</p>
<img src="file:///etc/passwd"><img src="https://example.com/logo.png">
</body></html>"""


def test_fetcher_is_confined_to_template_folder(tmp_path, caplog, monkeypatch):
    secret = tmp_path / "secret.css"
    secret.write_text('body::after { content: "SECRET-TOKEN"; }')
    folder = tmp_path / "evil"
    (folder / "en").mkdir(parents=True)
    (folder / "letter.css").write_text("@page { size: A4; }")
    (folder / "inside.css").write_text('body::before { content: "INSIDE-OK"; }')
    (folder / "link.css").symlink_to(secret)  # a symlink out of the folder
    (folder / "en" / "reminder.letter.html").write_text(EVIL_LETTER.format(secret=secret))

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)

    ctx = dict(german_reminder(), template_set="evil", locale="en_GB")
    local = LetterRenderer(tmp_path)
    with caplog.at_level(logging.WARNING, logger="pipeline.delivery.render.pdf"):
        pdf = local.render(ctx)
    _, text = pdf_text(pdf)
    assert "INSIDE-OK" in text and "RE-2026-0042" in text
    assert "SECRET-TOKEN" not in text and "root:" not in text
    refused = local.fetcher("evil").refused
    assert any(url.endswith("/secret.css") for url in refused)
    assert any(url.endswith("/link.css") for url in refused)
    assert "file:///etc/passwd" in refused
    assert "http://127.0.0.1:9/remote.css" in refused
    assert "https://example.com/logo.png" in refused
    assert "refused to load file:///etc/passwd" in caplog.text


def test_render_many_parallel_matches_serial(tmp_path):
    # Workers are separate processes, so this also proves byte-identical
    # output across processes. A copy of the set keeps the test independent.
    shutil.copytree(TEMPLATE_ROOT / "default", tmp_path / "default")
    ctxs = [sample_context(i) for i in range(4)]
    serial = list(render_many(ctxs, 1, tmp_path))
    stats: dict[int, dict[str, float]] = {}
    parallel = list(render_many(ctxs, 2, tmp_path, chunk_size=1, stats=stats))
    assert [k for k, _ in serial] == [c["action_key"] for c in ctxs]
    assert parallel == serial
    assert len(stats) >= 1 and all(0 < s["peak_rss_mib"] < 1024 and s["cpu_s"] > 0 for s in stats.values())


def test_import_does_not_load_weasyprint():
    code = "import sys, pipeline.delivery.render, pipeline.delivery.outbox; print('weasyprint' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
