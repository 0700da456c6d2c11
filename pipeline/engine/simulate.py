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
levels as (
    select level_no, currency, count(*) as documents,
           count(*) filter (where channel in ('letter', 'registered_letter')) as letters,
           count(*) filter (where channel = 'registered_letter') as registered
    from l where action = 'reminder' group by all
),
paid as (
    select level_no, currency, cast(sum(amount_recovered) as decimal(18, 2)) as paid
    from recovered_after_level($end, $days)
    where executed_on >= $start
    group by all
),
fees as (select currency, sum(fee) as fees from l group by all),
ended as (
    select count(distinct contract_id) as contracts_ended from contract_terminations
    where executed_on between $start and $end
)
select 'level' as kind, level_no, currency, coalesce(v.documents, 0), coalesce(v.letters, 0),
       coalesce(v.registered, 0), coalesce(p.paid, 0) as amount
from levels v full join paid p using (level_no, currency)
union all select 'fees', null, currency, null, null, null, fees from fees
union all select 'ended', null, null, contracts_ended, null, null, null from ended
"""


@dataclass
class Figures:
    documents: dict[int, int] = field(default_factory=dict)
    letters: dict[str, int] = field(default_factory=dict)         # per currency
    registered: dict[str, int] = field(default_factory=dict)      # per currency
    postage: dict[str, Decimal] = field(default_factory=dict)     # per currency
    fees: dict[str, Decimal] = field(default_factory=dict)        # per currency
    paid_after_level: dict[int, dict[str, Decimal]] = field(default_factory=dict)
    contracts_ended: int = 0


@dataclass
class Simulation:
    schema: str
    start: date
    end: date
    paid_within_days: int
    actual: Figures
    candidate: Figures
    seconds: float


def schema_for(name: str) -> str:
    slug = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")[:40] or "candidate"
    return schemas.checked(f"sim_{slug}")


def figures(con, schema: str, start: date, end: date, settings: Settings, days: int) -> Figures:
    """One side's figures: `main` (what actually happened) or a simulation schema."""
    out = Figures()
    params = {"start": start, "end": end, "days": days}
    if schema == "main":
        rows = con.execute(_METRICS_SQL, params).fetchall()
    else:
        with schemas.in_schema(con, schema):
            rows = con.execute(_METRICS_SQL, params).fetchall()
    postage = settings.postage
    for kind, level, currency, documents, letters, registered, amount in rows:
        if kind == "level":
            # every level done in the range shows what was paid after it, also one without a reminder
            # (a payment is credited to the last level before it, an end_contract level included)
            out.paid_after_level.setdefault(level, {})[currency] = amount
            if not documents:
                continue
            out.documents[level] = out.documents.get(level, 0) + documents
            out.letters[currency] = out.letters.get(currency, 0) + letters
            out.registered[currency] = out.registered.get(currency, 0) + registered
            cost = (letters - registered) * postage.get("letter", {}).get(currency, Decimal(0)) + \
                registered * postage.get("registered_letter", {}).get(currency, Decimal(0))
            out.postage[currency] = out.postage.get(currency, Decimal("0.00")) + cost
        elif kind == "fees":
            out.fees[currency] = amount
        else:
            out.contracts_ended = documents
    return out


def simulate(con, settings: Settings, candidate: Path, start: date, end: date, *, name: str | None = None,
             paid_within_days: int = 14, on_day=None) -> Simulation:
    """Run `candidate` (a policy file) over `start`..`end` in its own schema; inputs must be loaded."""
    policies = policy_mod.load_policy_file(candidate)
    schema = schema_for(name or Path(candidate).stem)
    started = time.perf_counter()
    schemas.seed(con, schema, start)
    with schemas.in_schema(con, schema):
        policy_mod.load_into_duckdb(con, policies)
    run_in_schema(con, schema, start, end, mode=RunMode.SIMULATE, on_day=on_day)
    seconds = time.perf_counter() - started
    return Simulation(schema, start, end, paid_within_days,
                      actual=figures(con, "main", start, end, settings, paid_within_days),
                      candidate=figures(con, schema, start, end, settings, paid_within_days),
                      seconds=seconds)


def _rows(sim: Simulation) -> list[tuple[str, str, str]]:
    a, c = sim.actual, sim.candidate
    rows = []
    for level in sorted(set(a.documents) | set(c.documents)):
        rows.append((f"documents, level {level}", str(a.documents.get(level, 0)), str(c.documents.get(level, 0))))
    for ccy in sorted(set(a.letters) | set(c.letters)):
        rows.append((f"letters ({ccy})", str(a.letters.get(ccy, 0)), str(c.letters.get(ccy, 0))))
        rows.append((f"postage estimate ({ccy})", str(a.postage.get(ccy, Decimal("0.00"))),
                     str(c.postage.get(ccy, Decimal("0.00")))))
    for ccy in sorted(set(a.fees) | set(c.fees)):
        rows.append((f"fees charged ({ccy})", str(a.fees.get(ccy, Decimal("0.00"))),
                     str(c.fees.get(ccy, Decimal("0.00")))))
    rows.append(("contracts ended", str(a.contracts_ended), str(c.contracts_ended)))
    for level in sorted(set(a.paid_after_level) | set(c.paid_after_level)):
        for ccy in sorted(set(a.paid_after_level.get(level, {})) | set(c.paid_after_level.get(level, {}))):
            rows.append((f"paid within {sim.paid_within_days} days after level {level} ({ccy})",
                         str(a.paid_after_level.get(level, {}).get(ccy, Decimal("0.00"))),
                         str(c.paid_after_level.get(level, {}).get(ccy, Decimal("0.00")))))
    return rows


def markdown(sim: Simulation) -> str:
    lines = [f"## Simulation {sim.schema}: {sim.start} to {sim.end}", "",
             "| figure | actual | candidate |", "|---|---:|---:|"]
    lines += [f"| {name} | {actual} | {cand} |" for name, actual, cand in _rows(sim)]
    return "\n".join(lines) + "\n"


def _side_by_side(title: str, figures: dict[str, tuple]) -> str:
    """Two bars per label, actual above candidate, on one scale."""
    rows = [Row(f"{label} {which}", (Segment(which, value, str(value)),), str(value))
            for label, pair in figures.items() for which, value in zip(("actual", "candidate"), pair)]
    return str(hbar_chart(rows, ["actual", "candidate"], title=title))


def write_html(sim: Simulation, folder: Path) -> Path:
    """The comparison as an HTML page with charts; deterministic in the simulation's figures."""
    levels = sorted(set(sim.actual.documents) | set(sim.candidate.documents))
    charts = [_side_by_side("Documents per level", {f"L{n}": (sim.actual.documents.get(n, 0),
                                                               sim.candidate.documents.get(n, 0)) for n in levels})]
    # one chart per currency: amounts in different currencies share no scale
    for ccy in sorted(set(sim.actual.fees) | set(sim.candidate.fees)):
        charts.append(_side_by_side(f"Fees charged ({ccy})", {ccy: (sim.actual.fees.get(ccy, Decimal("0.00")),
                                                                     sim.candidate.fees.get(ccy, Decimal("0.00")))}))
    table = "".join(f"<tr><td>{escape(n)}</td><td>{escape(a)}</td><td>{escape(c)}</td></tr>"
                    for n, a, c in _rows(sim))
    html = ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>Simulation {escape(sim.schema)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:right}"
            "td:first-child{text-align:left}</style></head><body>"
            f"<h1>Simulation {escape(sim.schema)}: {sim.start} to {sim.end}</h1>"
            + "".join(f"<div>{c}</div>" for c in charts)
            + f"<table><tr><th>figure</th><th>actual</th><th>candidate</th></tr>{table}</table></body></html>\n")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"simulate-{sim.schema}-{sim.start}-{sim.end}.html"
    path.write_text(html, encoding="utf-8")
    return path
