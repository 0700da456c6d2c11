"""The daily report: charts with the right bars, exact money, a PDF read back, byte-identical reruns."""

from __future__ import annotations

import logging
import re
from datetime import date
from pathlib import Path

import duckdb
import pytest
from pypdf import PdfReader
from typer.testing import CliRunner

from analytics_world import FIRST_DAY, LAST_DAY, company
from pipeline.cli import app
from pipeline.reporting.daily_report import render_pdf, template_folder, write_report


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = company(tmp_path_factory.mktemp("report"))
    settings = w.run(FIRST_DAY, LAST_DAY, dispatch=True)
    with duckdb.connect(str(settings.database)) as con:
        html_path, pdf_path = write_report(con, date(2026, 5, 5), settings)
    return w, settings, html_path, pdf_path


def _bars(html: str) -> set[tuple[str, str, str]]:
    return set(re.findall(r'data-label="([^"]*)" data-series="([^"]*)" data-value="([^"]*)"', html))


def test_report_files_and_charts_carry_the_figures(world):
    _, settings, html_path, pdf_path = world
    assert (html_path, pdf_path) == (settings.reports_dir / "2026-05-05" / "report.html",
                                     settings.reports_dir / "2026-05-05" / "report.pdf")
    html = html_path.read_text(encoding="utf-8")
    assert html.count("<svg") == 5  # aging, funnel, recovered (EUR and USD), documents
    bars = _bars(html)
    aging = {b for b in bars if b[0] in ("EUR", "USD")}
    assert aging == {("EUR", "1-30", "60.00"), ("EUR", "61-90", "80.00"), ("USD", "not due", "50.00"),
                     ("USD", "31-60", "70.00"), ("USD", "over 90", "300.00")}
    assert {b for b in bars if b[1] == "cases"} == {
        ("default · opened", "cases", "5"), ("default · L1 Level 1", "cases", "5"),
        ("default · L2 Level 2", "cases", "3")}
    assert {b for b in bars if b[1] == "recovered"} == {
        ("default · L1 Level 1", "recovered", "100.00"), ("default · L2 Level 2", "recovered", "205.00"),
        ("default · L1 Level 1", "recovered", "0.00"), ("default · L2 Level 2", "recovered", "0.00")}
    assert {b for b in bars if b[1] == "outbox"} == {
        ("04-10", "outbox", "3"), ("04-12", "outbox", "1"), ("04-24", "outbox", "3"), ("04-27", "outbox", "1")}
    # money exact, formatted for the organization's locale (de_DE: the country of its account)
    for text in ("10,00\xa0€", "4,00\xa0$", "205,00\xa0€", "100,00\xa0€", "60,00\xa0€ (1)", "300,00\xa0$ (1)",
                 "140,00\xa0€", "420,00\xa0$", "25,0%", "50,0%", "<td>outbox</td><td>8</td>"):
        assert text in html, text
    # the company's name heads it, and the outcome table says what "paid after" counts
    assert "<title>Test GmbH · Dunning report 2026-05-05</title>" in html
    assert '<p class="company">Test GmbH</p>' in html
    assert "<tr><th>paid after</th><td>cases that then paid in full" in html


def test_pdf_text_holds_the_figures(world):
    _, _, _, pdf_path = world
    reader = PdfReader(str(pdf_path))
    text = " ".join(page.extract_text() for page in reader.pages).replace("\xa0", " ")
    for figure in ("Test GmbH", "Dunning report 2026-05-05", "Key figures", "10,00 €", "4,00 $", "205,00 €",
                   "300,00 $ (1)", "25,0%", "Documents sent by channel", "default · L2 Level 2", "paid after"):
        assert figure in text, figure
    assert reader.metadata["/CreationDate"] == reader.metadata["/ModDate"] == "D:20260505000000Z"
    assert reader.metadata["/Title"] == "Test GmbH · Dunning report 2026-05-05"


def test_same_database_and_day_give_byte_identical_files_and_a_past_day_shows_that_day(world, tmp_path):
    w, settings, html_path, pdf_path = world
    other = settings.model_copy(update={"reports_dir": tmp_path / "again"})
    with duckdb.connect(str(settings.database)) as con:
        again = write_report(con, date(2026, 5, 5), other)
        past_html, _ = write_report(con, date(2026, 4, 20), other)
    assert again[0].read_bytes() == html_path.read_bytes()
    assert again[1].read_bytes() == pdf_path.read_bytes()
    past = past_html.read_text(encoding="utf-8")
    assert ("EUR", "1-30", "200.00") in _bars(past)  # I2, still open on 04-20
    assert {b for b in _bars(past) if b[1] == "cases"} == {
        ("default · opened", "cases", "4"), ("default · L1 Level 1", "cases", "4")}


def test_the_pdf_loads_nothing_from_outside_the_report_folder(world, tmp_path, caplog):
    _, settings, _, _ = world
    secret = tmp_path / "secret.css"
    secret.write_text("body { color: red }")
    html = (f'<html><head><link rel="stylesheet" href="{secret.as_uri()}"></head>'
            '<body><img src="https://example.com/x.png">hello</body></html>')
    with caplog.at_level(logging.WARNING, logger="pipeline.delivery.render.pdf"):
        pdf = render_pdf(html, template_folder(settings), date(2026, 5, 5))
    assert pdf.startswith(b"%PDF")
    refused = " ".join(r.getMessage() for r in caplog.records)
    assert secret.as_uri() in refused and "https://example.com/x.png" in refused


def test_cli_report_command(world):
    w, settings, _, _ = world
    config = w.write_config()
    runner = CliRunner()
    result = runner.invoke(app, ["report", "--as-of", "2026-05-05", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert str(Path(settings.reports_dir) / "2026-05-05" / "report.pdf") in result.output.replace("\n", "")
    result = runner.invoke(app, ["report", "--as-of", "2026-06-01", "--config", str(config)])
    assert result.exit_code == 2
    assert "no run for 2026-06-01: the days run are 2026-04-10 to 2026-05-05" in " ".join(result.output.split())
