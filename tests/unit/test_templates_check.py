"""`dunning templates check` and SMS rendering, on the shipped set and on broken copies of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.delivery.render import TemplateSet
from pipeline.delivery.render.samples import TEMPLATE_ROOT, sample_context
from pipeline.delivery.render.templates import SmsTooLong
from pipeline.delivery.templates_check import Problem, check_templates, list_templates

DEFAULT = TEMPLATE_ROOT / "default"


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """A copy of the default set's dunning templates as `custom`, English and German only (fewer PDFs:
    faster; the failed-collection templates are checked with the shipped set)."""
    target = tmp_path / "templates" / "custom"
    target.mkdir(parents=True)
    for name in ("base_email.html", "base_letter.html", "letter.css"):
        shutil.copy(DEFAULT / name, target / name)
    for lang in ("en", "de"):
        shutil.copytree(DEFAULT / lang, target / lang,
                        ignore=shutil.ignore_patterns("failed_payment_*", "_collection.*"))
    return tmp_path / "templates"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# --- SMS ----------------------------------------------------------------------

def test_german_sms_exact():
    ctx = sample_context(0, locale="de_DE", template="reminder")  # one invoice, no fees
    assert TemplateSet(TEMPLATE_ROOT).render_sms(ctx) == (
        "Acme Energie GmbH: Rechnung INV-2026-00000-0 ist noch offen. Bitte zahlen Sie 1.134,56\xa0€ "
        "bis 20.05.2026. Schon bezahlt? Dann bitte ignorieren.")


@pytest.mark.parametrize("locale", ["en_GB", "de_AT", "fr_BE", "nl_NL", "da_DK"])
@pytest.mark.parametrize("template", ["reminder", "notice", "final"])
def test_every_sms_names_sender_amount_due_date_and_invoice(locale, template):
    ctx = sample_context(2, locale=locale, template=template)  # three invoices, fees and interest
    sms = TemplateSet(TEMPLATE_ROOT).render_sms(ctx)
    lang = locale[:2]
    assert (DEFAULT / lang / f"{template}.sms.txt").is_file()
    from pipeline.delivery.render import format_date, format_money

    for part in ("Acme Energie GmbH", ctx["invoice"]["invoice_number"], "(+2 ",
                 format_money(ctx["amounts"]["total"], "EUR", locale), format_date(ctx["level"]["due_date"], locale)):
        assert part in sms
    assert "\n" not in sms and len(sms) <= 160


def test_sms_over_306_characters_raises_naming_the_file(root):
    (root / "custom" / "de" / "final.sms.txt").write_text("{{ 'x' * 400 }}\n", encoding="utf-8")
    with pytest.raises(SmsTooLong, match=r"custom/de/final\.sms\.txt: SMS text has 400 characters"):
        TemplateSet(root, "custom").render_sms(sample_context(0, locale="de_DE", template="final"))


def test_sms_is_one_line_with_spaces_collapsed(root):
    (root / "custom" / "de" / "notice.sms.txt").write_text(
        "{{ organization.name }}:\n   Rechnung   {{ invoice.invoice_number }}\n\n{{ amounts.total|money }}\n",
        encoding="utf-8")
    sms = TemplateSet(root, "custom").render_sms(sample_context(0, locale="de_DE", template="notice"))
    assert sms == "Acme Energie GmbH: Rechnung INV-2026-00000-0 1.134,56\xa0€"


# --- check_templates ----------------------------------------------------------

def test_shipped_templates_have_no_problems():
    assert check_templates(TEMPLATE_ROOT) == []
    # 5 languages x reminder, notice, final and the five failed-collection templates
    assert len(list_templates(TEMPLATE_ROOT)) == 40


def test_clean_copy_has_no_problems(root):
    assert check_templates(root) == []
    assert list_templates(root) == [("custom", lang, t) for lang in ("de", "en") for t in ("final", "notice", "reminder")]


def test_undefined_variable_names_file_line_and_variable(root):
    edit(root / "custom" / "de" / "reminder.txt", "{{ parts.salutation() }}", "{{ parts.salutation() }} {{ customer.nmae }}")
    assert check_templates(root) == [
        Problem("custom", "de/reminder.txt", "de_DE", "undefined variable: 'dict object' has no attribute 'nmae'",
                "error", 2)]


def test_syntax_error_names_file_and_line(root):
    edit(root / "custom" / "de" / "notice.subject.txt", "{{ t.zur_rechnung() }}", "{{ t.zur_rechnung() }")
    [problem] = check_templates(root)
    assert (problem.file, problem.line, problem.severity) == ("de/notice.subject.txt", 2, "error")
    assert problem.message.startswith("syntax error: unexpected '}'")


def test_error_in_a_shared_part_is_reported_where_it_is(root):
    edit(root / "custom" / "en" / "_parts.html", "{{ account.bank }}", "{{ account.bnak }}")
    problems = check_templates(root)
    # Emails and letters of every template in English use it; one problem, in the part itself.
    assert [(p.file, p.severity, p.locale) for p in problems] == [("en/_parts.html", "error", "en_GB")]
    assert "'bnak'" in problems[0].message


def test_sms_length_error_and_warning(root):
    (root / "custom" / "de" / "final.sms.txt").write_text("{{ 'x' * 400 }}\n", encoding="utf-8")
    (root / "custom" / "en" / "notice.sms.txt").write_text("{{ 'y' * 200 }}\n", encoding="utf-8")
    assert check_templates(root) == [
        Problem("custom", "de/final.sms.txt", "de_DE",
                "SMS text has 400 characters, at most 306 (two segments) are allowed", "error"),
        Problem("custom", "en/notice.sms.txt", "en_GB",
                "SMS text has 200 characters: sent as two SMS (one holds 160)", "warning"),
    ]


def test_missing_files_fall_back_or_fail(root):
    (root / "custom" / "de" / "notice.sms.txt").unlink()
    (root / "custom" / "de" / "extra.subject.txt").write_text("Extra {{ invoice.invoice_number }}\n")
    problems = {(p.file, p.severity, p.message) for p in check_templates(root)}
    assert ("de/notice.sms.txt", "warning", "falls back to en") in problems
    # `extra` exists only in German, with only a subject: nothing to fall back to.
    assert ("de/extra.txt", "error", "missing, and no English file to fall back to") in problems
    assert ("en/extra.subject.txt", "error", "missing, and no English file to fall back to") in problems


def test_multiline_subject_and_long_letter_are_warnings(root):
    edit(root / "custom" / "en" / "reminder.subject.txt", "Payment reminder:", "Payment reminder:\nsecond line")
    edit(root / "custom" / "en" / "final.letter.html", "{{ parts.invoice_table() }}",
         "{% for _ in range(8) %}{{ parts.invoice_table() }}{% endfor %}")
    problems = check_templates(root)
    assert [(p.file, p.severity) for p in problems] == [
        ("en/final.letter.html", "warning"), ("en/reminder.subject.txt", "warning")]
    assert problems[0].message.startswith("letter PDF has ") and "with 3 invoices (one expected)" in problems[0].message
    assert problems[1].message == "subject has more than one line (joined into one when sent)"


def test_unknown_set_is_an_error(root):
    assert check_templates(root, ["nope"]) == [Problem("nope", "", "", f"template set not found in {root}")]


# --- CLI ----------------------------------------------------------------------

def test_cli_exit_codes(root):
    runner = CliRunner()
    ok = runner.invoke(app, ["templates", "check", "--root", str(root)])
    assert ok.exit_code == 0, ok.output
    assert "6 templates checked, no errors" in ok.output

    (root / "custom" / "en" / "notice.sms.txt").write_text("{{ 'y' * 200 }}\n", encoding="utf-8")
    warned = runner.invoke(app, ["templates", "check", "--root", str(root), "--set", "custom"])
    assert warned.exit_code == 0, warned.output
    assert "6 templates checked, no errors (1 warning)" in warned.output

    edit(root / "custom" / "de" / "reminder.txt", "{{ parts.salutation() }}", "{{ customer.nmae }}")
    failed = runner.invoke(app, ["templates", "check", "--root", str(root)])
    assert failed.exit_code == 1, failed.output
    assert "nmae" in failed.output and "6 templates checked, 1 error" in failed.output
