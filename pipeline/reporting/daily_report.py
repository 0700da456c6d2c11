"""The daily report for people: key figures and four charts as of a day, in HTML and PDF.

Everything is read through the analyst's macros (`pipeline.warehouse.analytics`) for the
report's day, so a report for a past day shows that day, not today's state.
Charts are inline SVG (`pipeline.reporting.charts`), money is exact Decimal
formatted by Babel for the organization's locale (`organization.locale` in dunning.yaml:
``63.124,87 DKK`` for a German company; English ``DKK 63,124.87`` with CLDR's currency spacing
when none is known), the organization's name heads it, and the PDF comes from the same HTML through
WeasyPrint with a fetcher confined to the report's template folder and fixed
dates: the same database and day give byte-identical files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from babel.numbers import format_percent
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from pipeline.config.policy import DOCUMENT_ACTIONS
from pipeline.config.settings import PROJECT_ROOT, Settings
from pipeline.delivery.render.formatting import format_money
from pipeline.durable_files import atomic_write
from pipeline.reporting.charts import Row, Segment, column_chart, hbar_chart
from pipeline.warehouse.ledger_rules import aging_buckets

LOCALE = "en"  # when the report is gathered without an organization (its locale wins otherwise)
BUCKETS = list(aging_buckets())  # sql/seeds/aging_buckets.csv, as the aging views bucket
DOCUMENT_DAYS = 30
TEMPLATE = "report.html"


def template_folder(settings: Settings) -> Path:
    """`<templates>/report`, or the project's own when a deployment's template root has none."""
    folder = Path(settings.templates) / "report"
    return folder if (folder / TEMPLATE).is_file() else PROJECT_ROOT / "templates" / "report"


def money(amount: Decimal, currency: str, locale: str = LOCALE) -> str:
    return format_money(amount, currency, locale)


@dataclass
class ReportData:
    as_of: date
    key_figures: list[dict]
    open_levels: list[tuple[str, int, str, int]]  # policy, level, name, open cases
    aging: list[tuple[str, str, int, Decimal]]  # currency, bucket, receivables, amount
    outcomes: list[dict]
    documents: list[tuple[date, str, int]]  # day, channel, documents sent
    company: str = ""  # the organization's name, in the title
    locale: str = LOCALE  # money and percentages are formatted for it


def _dicts(con, sql: str, params: list) -> list[dict]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def gather(con, as_of: date, organization=None) -> ReportData:
    """The report's figures as of `as_of`, which must be a day the pipeline ran; `organization`
    (the settings' `Organization`) gives the report its company name and locale."""
    ran = con.execute("select min(as_of), max(as_of), count(*) filter (where as_of = ?) from run_log",
                      [as_of]).fetchall()[0]
    if not ran[2]:
        raise ValueError(f"no run for {as_of}: the days run are {ran[0]} to {ran[1]}" if ran[0]
                         else f"no run for {as_of}: nothing has been run yet")
    first_day = as_of - timedelta(days=DOCUMENT_DAYS - 1)
    return ReportData(
        as_of=as_of,
        key_figures=_dicts(con, "select * from key_figures_as_of(?)", [as_of]),
        open_levels=con.execute(
            """select policy_id, current_level, coalesce(min(current_level_name), 'opened, no level yet'),
                      count(*)
               from state_as_of(?) where is_open group by policy_id, current_level order by 1, 2""",
            [as_of]).fetchall(),
        aging=con.execute("select currency, bucket, receivables, open_amount from aging_as_of(?)",
                          [as_of]).fetchall(),
        outcomes=_dicts(con, "select * from level_outcomes_as_of(?)", [as_of]),
        # the day a document went out is the day its status became sent (a retry may be later)
        documents=con.execute(
            """select coalesce(status_changed_on, executed_on) as day, coalesce(channel, 'none'), count(*)
               from action_ledger
               where status = 'sent' and list_contains(?, action)
                 and coalesce(status_changed_on, executed_on) between ? and ?
               group by all order by all""",
            [list(DOCUMENT_ACTIONS), first_day, as_of]).fetchall(),
        company=organization.name if organization is not None else "",
        locale=(organization.locale if organization is not None else None) or LOCALE,
    )


def charts(data: ReportData) -> dict:
    """The four charts as SVG markup (recovered amounts: one chart per currency)."""
    currencies = sorted({c for c, *_ in data.aging})

    def money(amount: Decimal, currency: str) -> str:
        return format_money(amount, currency, data.locale)
    aging_rows = []
    for ccy in currencies:
        cells = {b: (n, amount) for c, b, n, amount in data.aging if c == ccy}
        total = sum((amount for _, amount in cells.values()), Decimal(0))
        aging_rows.append(Row(ccy, tuple(
            Segment(b, cells[b][1], f"{money(cells[b][1], ccy)} ({cells[b][0]} receivables)")
            for b in BUCKETS if b in cells), money(total, ccy)))

    funnel = []
    for policy in sorted({k["policy_id"] for k in data.key_figures} | {o["policy_id"] for o in data.outcomes}):
        opened = sum(k["cases_opened"] for k in data.key_figures if k["policy_id"] == policy)
        funnel.append(Row(f"{policy} · opened", (Segment("cases", opened, f"{opened} cases"),), str(opened)))
        names: dict[int, str] = {}  # outcomes are sorted by policy, level, currency: the first name wins
        for o in data.outcomes:
            if o["policy_id"] == policy:
                names.setdefault(o["level_no"], o["level_name"])
        for level, name in sorted(names.items()):
            n = sum(o["cases_reached"] for o in data.outcomes
                    if o["policy_id"] == policy and o["level_no"] == level)
            funnel.append(Row(f"{policy} · L{level} {name}", (Segment("cases", n, f"{n} cases"),), str(n)))

    recovered = {}
    for ccy in sorted({o["currency"] for o in data.outcomes}):
        rows = [Row(f"{o['policy_id']} · L{o['level_no']} {o['level_name']}",
                    (Segment("recovered", o["amount_recovered"], money(o["amount_recovered"], ccy)),),
                    money(o["amount_recovered"], ccy))
                for o in data.outcomes if o["currency"] == ccy]
        recovered[ccy] = hbar_chart(rows, ["recovered"], title=f"Amounts recovered after each level ({ccy})")

    channels = sorted({ch for _, ch, _ in data.documents})
    per_day = {(d, ch): n for d, ch, n in data.documents}
    columns = []
    for i in range(DOCUMENT_DAYS):
        day = data.as_of - timedelta(days=DOCUMENT_DAYS - 1 - i)
        segs = tuple(Segment(ch, per_day[(day, ch)], f"{per_day[(day, ch)]} sent")
                     for ch in channels if (day, ch) in per_day)
        total = sum(s.value for s in segs)
        columns.append(Row(f"{day:%m-%d}", segs, str(total) if total else ""))

    return {
        "aging": hbar_chart(aging_rows, BUCKETS, title="Open receivables by age, per currency (shares of the "
                            "currency's total)", normalize=True),
        "funnel": hbar_chart(funnel, ["cases"], title="Cases by level reached"),
        "recovered": recovered,
        "documents": column_chart(columns, channels or ["none"],
                                  title=f"Documents sent per day and channel, last {DOCUMENT_DAYS} days"),
    }


def render_html(data: ReportData, folder: Path) -> str:
    env = Environment(loader=FileSystemLoader(str(folder)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(money=lambda amount, ccy: money(amount, ccy, data.locale),
                       percent=lambda r: "" if r is None else format_percent(r, "#,##0.0%", locale=data.locale))
    aging_by_ccy: dict[str, dict[str, tuple[int, Decimal]]] = {}
    for ccy, bucket, n, amount in data.aging:
        aging_by_ccy.setdefault(ccy, {})[bucket] = (n, amount)
    aging_totals = {ccy: sum((a for _, a in cells.values()), Decimal(0)) for ccy, cells in aging_by_ccy.items()}
    channel_totals: dict[str, int] = {}
    for _, ch, n in data.documents:
        channel_totals[ch] = channel_totals.get(ch, 0) + n
    return env.get_template(TEMPLATE).render(
        data=data, charts=charts(data), buckets=BUCKETS, aging=aging_by_ccy, aging_totals=aging_totals,
        channel_totals=sorted(channel_totals.items()), document_days=DOCUMENT_DAYS)


def render_pdf(html: str, folder: Path, as_of: date) -> bytes:
    """WeasyPrint, loading nothing outside the report's template folder; dates fixed to `as_of`."""
    from weasyprint import HTML

    from pipeline.delivery.render.pdf import (  # the letters' confined fetcher
        _fetcher_class,
        _pdf_date,
        _pdf_string,
    )

    stamp = _pdf_date(as_of)

    def finisher(document, pdf):
        pdf.info["CreationDate"] = pdf.info["ModDate"] = _pdf_string(stamp)

    return HTML(string=html, base_url=folder.resolve().as_uri() + "/",
                url_fetcher=_fetcher_class()(folder)).write_pdf(finisher=finisher)


def write_report(con, as_of: date, settings: Settings) -> tuple[Path, Path]:
    """Write `<reports_dir>/<as_of>/report.html` and `report.pdf`; returns both paths."""
    folder = template_folder(settings)
    html = render_html(gather(con, as_of, settings.organization), folder)
    out = Path(settings.reports_dir) / as_of.isoformat()
    out.mkdir(parents=True, exist_ok=True)
    html_path, pdf_path = out / "report.html", out / "report.pdf"
    # a reader (a browser, a mail job) sees the old report or the new one, never half
    atomic_write(html_path, html.encode("utf-8"), fsync=False)
    atomic_write(pdf_path, render_pdf(html, folder, as_of), fsync=False)
    return html_path, pdf_path
