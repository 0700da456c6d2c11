"""What-if: run a candidate policy over past days and compare it with what actually happened.

The candidate runs through the ordinary daily step (`pipeline.engine.backfill.run_in_schema`)
in its own schema `sim_<name>`, seeded with the live state before the first
day, so cases already open keep their version and only new cases meet the
candidate. Live tables are never touched; the schema stays for analysts to
query until the next simulation of the same name.

The comparison reads both ledgers over the same days: documents per level,
letters with a postage estimate, fees charged, contracts ended and the cash
recovered after each level. Each side reads its own schema (`search_path`
'<schema>,main'), so both figures come from the same SQL:

* contracts ended: the contracts listed in that schema's `contract_terminations`
  view (an end_contract counts once it is exported);
* paid within N days after a level: the analytics macro `recovered_after_level`
  (sql/analytics/recovered_after_level.sql), the one definition of a recovery
  figure that `level_outcomes` also reads, as of the range's last day, for the
  levels executed in the range.

Two kinds of figure, and the report says which is which:

* mechanical consequences (documents, letters, postage, fees, contracts ended, open
  cases, the customers and cases affected: `pipeline.engine.impact`): what the candidate
  policy does to the same data, computed by the daily models;
* payments after a level: the payments customers really made, under the actual policy,
  credited to each side's levels. For the candidate this is no prediction: customers who
  got other documents on other days might have paid otherwise.

`write_report` writes the comparison complete: Markdown, HTML (charts with titles) and
every affected customer, case and action as CSV and Parquet beside it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from html import escape
from pathlib import Path

from pipeline.config import policy as policy_mod
from pipeline.durable_files import atomic_write
from pipeline.engine import impact as impact_mod
from pipeline.warehouse import work_schemas as schemas
from pipeline.engine.backfill import run_in_schema
from pipeline.engine.run import RunMode
from pipeline.reporting.charts import Row, Segment, hbar_chart
from pipeline.config.settings import Settings

# Unqualified names: run with the search path of the side compared (`figures`), so the
# tables, the views and the recovery macro all resolve to that side's schema.
_METRICS_SQL = """
with l as (
    select * from action_ledger
    where executed_on between $start and $end and status_is_done(status)
),
levels as (select distinct level_no, scope = 'collection' as step, currency from l where action = 'reminder'),
-- a failed-collection step (S1) apart from a dunning level of the same number (L1)
paid as (
    select p.level_no, r.scope = 'collection' as step, p.currency,
           cast(sum(p.amount_recovered) as decimal(18, 2)) as paid
    from recovered_after_level($end, $days) p
    join case_register r using (case_id)
    where p.executed_on >= $start
    group by all
),
fees as (select currency, sum(fee) as fees from l group by all),
ended as (
    select count(distinct contract_id) as contracts_ended from contract_terminations
    where executed_on between $start and $end
)
select 'level' as kind, level_no, currency, null, coalesce(p.paid, 0) as amount, step
from levels v full join paid p using (level_no, step, currency)
union all select 'fees', null, currency, null, fees, null from fees
union all select 'ended', null, null, contracts_ended, null, null from ended
"""


def level_label(step: bool, level_no: int) -> str:
    """L1 for a dunning level, S1 for a failed-collection step (as the impact's level rows name them)."""
    return f"{'S' if step else 'L'}{level_no}"


def _label_order(label: str) -> tuple[bool, int]:
    return label[0] == "S", int(label[1:])


@dataclass
class Figures:
    documents: dict[str, int] = field(default_factory=dict)  # per level (L1) or collection step (S1)
    letters: dict[str, int] = field(default_factory=dict)         # per currency
    registered: dict[str, int] = field(default_factory=dict)      # per currency
    postage: dict[str, Decimal] = field(default_factory=dict)     # per currency
    fees: dict[str, Decimal] = field(default_factory=dict)        # per currency
    paid_after_level: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # per L1 / S1, currency
    contracts_ended: int = 0


@dataclass
class Simulation:
    schema: str
    start: date
    end: date
    paid_within_days: int
    actual: Figures
    candidate: Figures
    seconds: float  # the range of days only
    # per level and currency with differences and totals, the customers, cases and actions affected
    impact: impact_mod.Impact | None = None
    comparison_seconds: float = 0.0  # the figures and the impact, after the range


def schema_for(name: str) -> str:
    slug = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")[:40] or "candidate"
    return schemas.checked(f"sim_{slug}")


def figures(con, schema: str, start: date, end: date, days: int, levels: list[impact_mod.LevelRow],
            side: str) -> Figures:
    """One side's figures: `main` (what actually happened) or a simulation schema.

    Documents, letters and their postage come from that side (`side`: "before" or "after") of the
    impact's level rows (`pipeline.engine.impact`), where postage is computed once, in SQL; the
    payments after each level, the fees and the contracts ended from `_METRICS_SQL`.
    """
    out = Figures()
    for row in levels:
        counts = row.before if side == "before" else row.after
        if not counts.documents:
            continue
        out.documents[row.level] = out.documents.get(row.level, 0) + counts.documents
        out.letters[row.currency] = out.letters.get(row.currency, 0) + counts.letters
        out.registered[row.currency] = out.registered.get(row.currency, 0) + counts.registered
        out.postage[row.currency] = out.postage.get(row.currency, Decimal("0.00")) + counts.postage
    params = {"start": start, "end": end, "days": days}
    if schema == "main":
        rows = con.execute(_METRICS_SQL, params).fetchall()
    else:
        with schemas.in_schema(con, schema):
            rows = con.execute(_METRICS_SQL, params).fetchall()
    for kind, level, currency, count, amount, step in rows:
        if kind == "level":
            # every level done in the range shows what was paid after it, also one without a reminder
            # (a payment is credited to the last level before it, an end_contract level included)
            out.paid_after_level.setdefault(level_label(step, level), {})[currency] = amount
        elif kind == "fees":
            out.fees[currency] = amount
        else:
            out.contracts_ended = count
    return out


def comparison(con, schema: str, start: date, end: date, settings: Settings, paid_within_days: int
               ) -> tuple[Figures, Figures, impact_mod.Impact]:
    """What actually happened (`main`) and the candidate (`schema`) over start..end: both sides'
    figures and the impact (levels, customers, cases and actions that differ)."""
    impact = impact_mod.compare(con, "main", schema, start, end, settings, labels=("actual", "candidate"))
    return (figures(con, "main", start, end, paid_within_days, impact.levels, "before"),
            figures(con, schema, start, end, paid_within_days, impact.levels, "after"), impact)


def run_policy(con, schema: str, policies: policy_mod.PolicyFile, start: date, end: date, *, on_day=None) -> None:
    """The daily step over `start`..`end` under `policies`, in `schema` seeded with the live state before
    `start` (cases open then keep their version); the live tables are never written. Inputs must be loaded."""
    schemas.seed(con, schema, start)
    with schemas.in_schema(con, schema):
        policy_mod.load_into_duckdb(con, policies)
    run_in_schema(con, schema, start, end, mode=RunMode.SIMULATE, on_day=on_day)


def simulate(con, settings: Settings, candidate: Path, start: date, end: date, *, name: str | None = None,
             paid_within_days: int = 14, on_day=None) -> Simulation:
    """Run `candidate` (a policy file) over `start`..`end` in its own schema; inputs must be loaded."""
    policies = policy_mod.load_policy_file(candidate)
    schema = schema_for(name or Path(candidate).stem)
    started = time.perf_counter()
    run_policy(con, schema, policies, start, end, on_day=on_day)
    seconds = time.perf_counter() - started
    actual, candidate, impact = comparison(con, schema, start, end, settings, paid_within_days)
    sim = Simulation(schema, start, end, paid_within_days, actual=actual, candidate=candidate, seconds=seconds,
                     impact=impact)
    sim.comparison_seconds = time.perf_counter() - started - seconds
    return sim


MECHANICAL = ("Mechanical consequences: the daily models apply the candidate's levels to the same invoices, "
              "payments and suspensions. Documents, letters, postage, fees, contracts ended, open cases and the "
              "customers, cases and actions listed follow from that alone: they are what the policy would do.")
ASSUMED = ("Not a prediction: these figures assume customers behave as they did. Both columns count the payments "
           "customers really made, under the actual policy, each credited to the last level its case had "
           "received before it (sql/analytics/recovered_after_level.sql). Customers who got the candidate's "
           "documents on the candidate's days might have paid otherwise; the candidate's column only shows how "
           "the observed payments fall on its levels.")


def _mechanical_rows(sim: Simulation) -> list[tuple[str, object, object]]:
    a, c = sim.actual, sim.candidate
    rows: list[tuple[str, object, object]] = []
    for level in sorted(set(a.documents) | set(c.documents), key=_label_order):
        rows.append((f"documents, {level}", a.documents.get(level, 0), c.documents.get(level, 0)))
    for ccy in sorted(set(a.letters) | set(c.letters)):
        rows.append((f"letters ({ccy})", a.letters.get(ccy, 0), c.letters.get(ccy, 0)))
        rows.append((f"postage estimate ({ccy})", a.postage.get(ccy, Decimal("0.00")),
                     c.postage.get(ccy, Decimal("0.00"))))
    for ccy in sorted(set(a.fees) | set(c.fees)):
        rows.append((f"fees charged ({ccy})", a.fees.get(ccy, Decimal("0.00")), c.fees.get(ccy, Decimal("0.00"))))
    rows.append(("contracts ended", a.contracts_ended, c.contracts_ended))
    return rows


def _paid_rows(sim: Simulation) -> list[tuple[str, object, object]]:
    a, c = sim.actual, sim.candidate
    rows: list[tuple[str, object, object]] = []
    for level in sorted(set(a.paid_after_level) | set(c.paid_after_level), key=_label_order):
        after = f"{'step' if level[0] == 'S' else 'level'} {level[1:]}"
        for ccy in sorted(set(a.paid_after_level.get(level, {})) | set(c.paid_after_level.get(level, {}))):
            rows.append((f"paid within {sim.paid_within_days} days after {after} ({ccy})",
                         a.paid_after_level.get(level, {}).get(ccy, Decimal("0.00")),
                         c.paid_after_level.get(level, {}).get(ccy, Decimal("0.00"))))
    return rows


def _rows(sim: Simulation) -> list[tuple[str, str, str, str]]:
    """Every figure of the summary: name, actual, candidate, difference (mechanical ones first)."""
    return [(name, str(x), str(y), impact_mod.signed(y - x))
            for name, x, y in _mechanical_rows(sim) + _paid_rows(sim)]


def _table(rows) -> list[str]:
    out = ["| figure | actual | candidate | difference |", "|---|---:|---:|---:|"]
    out += [f"| {impact_mod.md_cell(name)} | {x} | {y} | {impact_mod.signed(y - x)} |" for name, x, y in rows]
    return out


def markdown(sim: Simulation, *, limit: int | None = None, where: str | None = None) -> str:
    """The comparison as Markdown; every customer, case and action affected unless `limit` caps the lists
    (for a terminal: `where` then names the files that hold them all)."""
    lines = [f"## Simulation {sim.schema}: {sim.start} to {sim.end}", "",
             "actual: what the ledger recorded (schema main). candidate: the same days computed again by the "
             f"daily models under the candidate policy, in schema {sim.schema}, from the same state before "
             f"{sim.start}; cases open before that day keep their policy version, as they would live.", "",
             "### What the candidate would do to the same data", "", MECHANICAL, ""]
    lines += _table(_mechanical_rows(sim))
    if sim.impact is not None:
        lines += [""] + impact_mod.markdown_sections(sim.impact, limit=limit, where=where, heading="####")
    lines += ["", "### Payments after a level: observed under the actual policy", "", ASSUMED, ""]
    paid = _paid_rows(sim)
    lines += _table(paid) if paid else ["No level was executed in the range on either side."]
    return "\n".join(lines) + "\n"


def _side_by_side(title: str, figures: dict[str, tuple]) -> str:
    """Two bars per label, actual above candidate, on one scale; the title is shown above the chart."""
    rows = [Row(f"{label} {which}", (Segment(which, value, str(value)),), str(value))
            for label, pair in figures.items() for which, value in zip(("actual", "candidate"), pair)]
    return str(hbar_chart(rows, ["actual", "candidate"], title=title, show_title=True))


def _html_table(header: list[str], rows) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_html(sim: Simulation, folder: Path, *, stem: str | None = None) -> Path:
    """The comparison as an HTML page with titled charts; deterministic in the simulation's figures."""
    levels = sorted(set(sim.actual.documents) | set(sim.candidate.documents), key=_label_order)
    charts = [_side_by_side("Documents per level: actual and candidate",
                            {n: (sim.actual.documents.get(n, 0), sim.candidate.documents.get(n, 0))
                             for n in levels})]
    # one chart per currency: amounts in different currencies share no scale
    for ccy in sorted(set(sim.actual.fees) | set(sim.candidate.fees)):
        charts.append(_side_by_side(f"Fees charged ({ccy}): actual and candidate",
                                    {ccy: (sim.actual.fees.get(ccy, Decimal("0.00")),
                                           sim.candidate.fees.get(ccy, Decimal("0.00")))}))
    header = ["figure", "actual", "candidate", "difference"]
    mechanical = [(n, x, y, impact_mod.signed(y - x)) for n, x, y in _mechanical_rows(sim)]
    paid = [(n, x, y, impact_mod.signed(y - x)) for n, x, y in _paid_rows(sim)]
    levels_html = totals_html = ""
    if sim.impact is not None:
        levels_html = "<h3>Per level and currency</h3>" + _html_table(
            ["policy", "level", "currency", "figure", "actual", "candidate", "difference"],
            [(r.policy_id, r.label, r.currency, label, getattr(r.before, attr), getattr(r.after, attr),
              impact_mod.signed(getattr(r.after, attr) - getattr(r.before, attr)))
             for r in sim.impact.levels for attr, label, _ in impact_mod.FIGURES
             if getattr(r.before, attr) or getattr(r.after, attr)])
        totals_html = "<h3>Totals per currency</h3>" + _html_table(
            ["currency", "figure", "actual", "candidate", "difference"],
            [(ccy, label, getattr(x, attr), getattr(y, attr), impact_mod.signed(getattr(y, attr) - getattr(x, attr)))
             for ccy, (x, y) in sim.impact.totals().items() for attr, label, _ in impact_mod.FIGURES])
        totals_html += (f"<p>{len(sim.impact.customers)} customer(s), {len(sim.impact.cases)} case(s) and "
                        f"{len(sim.impact.actions)} action(s) differ: every one is listed in the Markdown report "
                        "and the CSV and Parquet files beside it.</p>")
    html = ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>Simulation {escape(sim.schema)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:right}"
            "td:first-child{text-align:left}.chart{display:block;margin:1em 0}</style></head><body>"
            f"<h1>Simulation {escape(sim.schema)}: {sim.start} to {sim.end}</h1>"
            "<h2>What the candidate would do to the same data</h2>"
            f"<p>{escape(MECHANICAL)}</p>"
            + "".join(f"<div>{c}</div>" for c in charts)
            + _html_table(header, mechanical) + levels_html + totals_html
            + "<h2>Payments after a level: observed under the actual policy</h2>"
            f"<p>{escape(ASSUMED)}</p>" + _html_table(header, paid) + "</body></html>\n")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem or report_stem(sim)}.html"
    atomic_write(path, html.encode("utf-8"), fsync=False)
    return path


def report_stem(sim: Simulation) -> str:
    return f"simulate-{sim.schema}-{sim.start}-{sim.end}"


def write_report(sim: Simulation, folder: Path) -> list[Path]:
    """The complete comparison: `<stem>.md`, `<stem>.html`, and `<stem>.<table>.csv|.parquet` for the
    levels, customers, cases and actions (every one). The Markdown report comes first."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = report_stem(sim)
    md = folder / f"{stem}.md"
    atomic_write(md, markdown(sim).encode("utf-8"), fsync=False)
    written = [md, write_html(sim, folder, stem=stem)]
    if sim.impact is not None:
        written += impact_mod.write_tables(sim.impact, folder / stem)
    return written
