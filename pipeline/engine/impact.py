"""What one policy does differently from another over the same days, read from two ledgers.

`dunning simulate` compares what actually happened (`main`) with a candidate run in
`sim_<name>`; `dunning policy diff` compares the old and the new file, each run in its own
work schema from the same state. Both read the figures here, so they are defined once:

* per policy, level and currency: documents (the level's own document, action `reminder`),
  letters (documents on the `letter` and `registered_letter` channels), postage (letters times
  the `postage` setting of their channel and currency), fees charged, contracts ended (an
  `end_contract` exported, as the view `contract_terminations` counts it) and the cases open
  on the last day at that level (level 0: opened, no level yet); with the difference and the
  totals per currency;
* every action that differs (by its deterministic key: added, removed, or changed in day,
  channel, principal, fee, fees, interest or amount demanded), the cases they belong to and
  cases whose state on the last day differs, and the customers of those cases.

All of these are mechanical consequences: the same inputs (invoices, payments, suspensions)
through the same daily models under another policy. Money is Decimal throughout and every
list is sorted, so the same ledgers give the same report, byte for byte.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

from pipeline.durable_files import atomic_write
from pipeline.warehouse import work_schemas as schemas

ZERO = Decimal("0.00")
LETTER_CHANNELS = ("letter", "registered_letter")

# (attribute, label in reports, is money)
FIGURES = (
    ("documents", "documents", False),
    ("letters", "letters", False),
    ("postage", "postage", True),
    ("fees", "fees", True),
    ("terminations", "contracts ended", False),
    ("open_cases", "open cases on the last day", False),
)
# the figures a case or a customer shows (its state on the last day is shown as text)
CASE_FIGURES = FIGURES[:5]


# The row classes below are plain slotted dataclasses, not frozen ones: a simulation at 1M contracts
# builds millions of them, and a frozen dataclass takes five times as long to construct.
@dataclass(slots=True)
class Counts:
    documents: int = 0
    letters: int = 0
    registered: int = 0  # of the letters; priced as registered letters
    postage: Decimal = ZERO
    fees: Decimal = ZERO
    terminations: int = 0
    open_cases: int = 0

    def __add__(self, other: "Counts") -> "Counts":
        # field by field, without dataclasses.fields() per call: a simulation adds millions of these
        return Counts(self.documents + other.documents, self.letters + other.letters,
                      self.registered + other.registered, self.postage + other.postage, self.fees + other.fees,
                      self.terminations + other.terminations, self.open_cases + other.open_cases)


@dataclass(frozen=True)
class LevelRow:
    policy_id: str
    step: bool  # a failed-collection step (S1) rather than a dunning level (L1)
    level_no: int
    currency: str
    names_before: tuple[str, ...]
    names_after: tuple[str, ...]
    before: Counts
    after: Counts

    @property
    def level(self) -> str:
        return f"{'S' if self.step else 'L'}{self.level_no}"

    @property
    def label(self) -> str:
        """`L2 "First dunning notice"`, or `L2 "Old name" -> "New name"` when the two sides differ."""
        if self.level_no == 0:
            return "L0 (opened, no level yet)"

        def names(n: tuple[str, ...]) -> str:
            return " / ".join(f'"{x}"' for x in n)

        if not self.names_before or not self.names_after or self.names_before == self.names_after:
            return f"{self.level} {names(self.names_after or self.names_before)}".rstrip()
        return f"{self.level} {names(self.names_before)} -> {names(self.names_after)}"


@dataclass(slots=True)
class CaseRow:
    customer_id: str
    customer_name: str
    contract_id: str
    case_id: str
    currency: str
    policy_before: str
    policy_after: str
    levels_before: str  # the levels done in the range, e.g. "L1 2026-03-18, L2 2026-03-25"
    levels_after: str
    end_before: str  # the case on the last day: "open at L2", "closed on 2026-04-02 (balance_cleared)", ""
    end_after: str
    before: Counts
    after: Counts


@dataclass(slots=True)
class CustomerRow:
    customer_id: str
    customer_name: str
    currency: str
    cases: int
    before: Counts
    after: Counts


@dataclass(slots=True)
class ActionRow:
    kind: str  # added (only after), removed (only before), changed
    action_key: str
    case_id: str
    customer_id: str
    contract_id: str
    currency: str
    level_no: int
    action: str
    channel_before: str | None
    channel_after: str | None
    executed_before: date | None
    executed_after: date | None
    fee_before: Decimal | None
    fee_after: Decimal | None
    amount_before: Decimal | None
    amount_after: Decimal | None


@dataclass
class Impact:
    start: date
    end: date
    before: str  # how the two sides are named in reports: "actual"/"candidate", "old"/"new"
    after: str
    levels: list[LevelRow] = field(default_factory=list)
    cases: list[CaseRow] = field(default_factory=list)
    customers: list[CustomerRow] = field(default_factory=list)
    actions: list[ActionRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. letters without a postage rate

    def totals(self) -> dict[str, tuple[Counts, Counts]]:
        out: dict[str, tuple[Counts, Counts]] = {}
        for row in self.levels:
            b, a = out.get(row.currency, (Counts(), Counts()))
            out[row.currency] = (b + row.before, a + row.after)
        return dict(sorted(out.items()))


# ---------------------------------------------------------------------------------------------
# reading the two ledgers


def _qualified(schema: str) -> str:
    return "main" if schema == "main" else schemas.checked(schema)


_ACTIONS_SQL = """
select action_key, case_id, scope, customer_id, contract_id, currency, policy_id, level_no, level_name,
       action, channel, executed_on, principal, fee, fees_total, interest, amount_demanded,
       action = 'reminder' as is_document,
       action = 'reminder' and channel in ('letter', 'registered_letter') as is_letter,
       action = 'reminder' and channel = 'registered_letter' as is_registered,
       -- a contract ends as its schema's contract_terminations says (one definition)
       action_key in (select action_key from {s}.contract_terminations) as is_termination
from {s}.action_ledger
where executed_on between $start and $end and status_is_done(status)
"""

# the cases that can differ: open at some time in the range; their state on the last day
_CASES_SQL = """
with done as (
    select case_id, max(level_no) as level_no, arg_max(level_name, level_no) as level_name
    from {s}.action_ledger
    where executed_on <= $end and status_is_done(status)
    group by case_id
)
select c.case_id, c.scope, c.customer_id, c.contract_id, c.currency, c.policy_id,
       coalesce(d.level_no, 0) as level_no, d.level_name,
       case when c.closed_on <= $end then c.closed_on end as closed_on,
       case when c.closed_on <= $end then c.close_reason end as close_reason
from {s}.case_register c left join done d using (case_id)
where c.opened_on <= $end and (c.closed_on is null or c.closed_on >= $start)
"""

_COMPARED = ("executed_on", "level_no", "action", "channel", "principal", "fee", "fees_total", "interest",
             "amount_demanded")


def compare(con, before: str, after: str, start: date, end: date, settings, *,
            labels: tuple[str, str] = ("before", "after")) -> Impact:
    """Compare the ledgers of schema `before` and schema `after` (either may be `main`) over start..end."""
    sides = {"before": _qualified(before), "after": _qualified(after)}
    params = {"start": start, "end": end}
    for side, schema in sides.items():
        con.execute(f"create or replace temp table impact_{side}_actions as {_ACTIONS_SQL.format(s=schema)}",
                    params)
        con.execute(f"create or replace temp table impact_{side}_cases as {_CASES_SQL.format(s=schema)}", params)
    try:
        return _read(con, start, end, settings, labels)
    finally:
        for side in sides:
            con.execute(f"drop table if exists impact_{side}_actions")
            con.execute(f"drop table if exists impact_{side}_cases")
        for table in ("impact_differing_actions", "impact_affected_cases", "impact_postage_rates"):
            con.execute(f"drop table if exists {table}")  # fixed names


def _read(con, start: date, end: date, settings, labels: tuple[str, str]) -> Impact:
    impact = Impact(start, end, *labels)
    missing_rates: set[tuple[str, str]] = set()
    _postage_rates(con, settings)

    # per policy, level and currency
    per_level: dict[tuple, dict[str, Counts]] = {}
    names: dict[tuple, dict[str, set[str]]] = {}
    for side in ("before", "after"):
        rows = con.execute(f"""
            select f.*, {_POSTAGE}, f.letters > f.registered and lr.rate is null, f.registered > 0 and rr.rate is null
            from (select policy_id, scope = 'collection' as step, level_no, currency,
                         list(distinct level_name) as level_names,
                         count(*) filter (where is_document) as documents, count(*) filter (where is_letter) as letters,
                         count(*) filter (where is_registered) as registered, sum(fee) as fees,
                         count(*) filter (where is_termination) as terminations
                  from impact_{side}_actions group by all) f
            {_RATES_JOIN}""").fetchall()
        for (policy_id, step, level_no, ccy, level_names, docs, letters, registered, fees, ended, postage,
             no_letter_rate, no_registered_rate) in rows:
            key = (policy_id, step, level_no, ccy)
            per_level.setdefault(key, {})[side] = Counts(docs, letters, registered, postage,
                                                         fees if fees is not None else ZERO, ended, 0)
            names.setdefault(key, {}).setdefault(side, set()).update(level_names)
            missing_rates |= {(channel, ccy) for channel, missing in (("letter", no_letter_rate),
                                                                       ("registered_letter", no_registered_rate))
                              if missing}
        rows = con.execute(f"""
            select policy_id, scope = 'collection', level_no, currency, list(distinct level_name), count(*)
            from impact_{side}_cases where closed_on is null group by all""").fetchall()
        for policy_id, step, level_no, ccy, level_names, n in rows:
            key = (policy_id, step, level_no, ccy)
            found = per_level.setdefault(key, {})
            found[side] = found.get(side, Counts()) + Counts(open_cases=n)
            names.setdefault(key, {}).setdefault(side, set()).update(x for x in level_names if x is not None)
    impact.levels = [
        LevelRow(*key, tuple(sorted(names.get(key, {}).get("before", ()))),
                 tuple(sorted(names.get(key, {}).get("after", ()))),
                 sides.get("before", Counts()), sides.get("after", Counts()))
        for key, sides in sorted(per_level.items())]

    # every action that differs, by its key
    changed = " or ".join(f"b.{c} is distinct from a.{c}" for c in _COMPARED)  # fixed column names
    con.execute(f"""
        create or replace temp table impact_differing_actions as
        select case when b.action_key is null then 'added' when a.action_key is null then 'removed'
                    else 'changed' end as kind,
               action_key, coalesce(a.case_id, b.case_id) as case_id,
               coalesce(a.customer_id, b.customer_id) as customer_id,
               coalesce(a.contract_id, b.contract_id) as contract_id, coalesce(a.currency, b.currency) as currency,
               coalesce(a.level_no, b.level_no) as level_no, coalesce(a.action, b.action) as action,
               b.channel as channel_before, a.channel as channel_after,
               b.executed_on as executed_before, a.executed_on as executed_after,
               b.fee as fee_before, a.fee as fee_after,
               b.amount_demanded as amount_before, a.amount_demanded as amount_after
        from impact_before_actions b full join impact_after_actions a using (action_key)
        where b.action_key is null or a.action_key is null or {changed}""")
    impact.actions = [ActionRow(*r) for r in con.execute(
        "select * from impact_differing_actions order by action_key").fetchall()]

    # the cases and customers affected, their figures added up in DuckDB (hundreds of thousands of
    # cases at 1M contracts): those with a differing action, and those whose state on the last day differs
    names = "main.stg_customers" if _has_customers(con) else "(select null::varchar as customer_id, null::varchar as name)"
    con.execute(_AFFECTED_CASES_SQL.replace("{names}", names))  # a fixed relation name
    impact.cases = [
        CaseRow(*r[:11], Counts(*r[11:18]), Counts(*r[18:25]))
        for r in con.execute("select * from impact_affected_cases "
                             "order by customer_id, currency, contract_id, case_id").fetchall()]
    impact.customers = [
        CustomerRow(*r[:4], Counts(*r[4:11]), Counts(*r[11:18]))
        for r in con.execute(_CUSTOMERS_SQL).fetchall()]
    impact.notes = [f"no postage rate for {channel} in {ccy} (setting postage.{channel}.{ccy}): "
                    "counted as 0.00" for channel, ccy in sorted(missing_rates)]
    return impact


# Postage of a group of actions `f` (its letters, registered ones among them, currency): the letters
# times the rate of their channel and currency (impact_postage_rates; none set counts as 0.00 and
# is noted). The one definition, for the levels and for the cases.
_RATES_JOIN = """left join impact_postage_rates lr on lr.channel = 'letter' and lr.currency = f.currency
    left join impact_postage_rates rr on rr.channel = 'registered_letter' and rr.currency = f.currency"""
_POSTAGE = """coalesce((f.letters - f.registered) * lr.rate, 0) + coalesce(f.registered * rr.rate, 0)
               + cast(0 as decimal(18, 2)) as postage"""


# A case's state on the last day, as reports show it ('' when a side has no such case): closed on
# <day> (<reason>), open with no level yet, or open at its last level done.
_END_TEXT = """case when {t}.case_id is null then ''
     when {t}.closed_on is not null then 'closed on ' || {t}.closed_on || ' (' || coalesce({t}.close_reason, 'None') || ')'
     when coalesce({t}.level_no, 0) = 0 then 'open, no level yet'
     else 'open at ' || case when {t}.scope = 'collection' then 'S' else 'L' end || {t}.level_no
          || ' "' || coalesce({t}.level_name, 'None') || '"' end"""

# per side, the figures of each affected case from its actions: documents, letters, registered
# letters, postage (impact_postage_rates), fees, contracts ended, and the levels done in the range
_CASE_FIGURES = """
{side}_figures as (
    select case_id, any_value(customer_id) as customer_id, any_value(contract_id) as contract_id,
           any_value(currency) as currency,
           count(*) filter (where is_document) as documents,
           count(*) filter (where is_letter) as letters,
           count(*) filter (where is_registered) as registered,
           sum(fee) as fees,
           count(*) filter (where is_termination) as terminations,
           string_agg(case when scope = 'collection' then 'S' else 'L' end || level_no::varchar || ' '
                      || executed_on::varchar, ', ' order by executed_on, level_no) filter (where level_first)
               as levels_done
    from (select *, row_number() over (partition by case_id, level_no order by executed_on, action_key) = 1
                    as level_first
          from impact_{side}_actions
          where case_id in (select case_id from affected))
    group by case_id
),

{side}_counts as (
    select f.*, {postage}
    from {side}_figures f
    {rates_join}
)"""

_AFFECTED_CASES_SQL = f"""
create or replace temp table impact_affected_cases as
with states as (
    select coalesce(b.case_id, a.case_id) as case_id, b.case_id is not null as in_before,
           a.case_id is not null as in_after,
           b.customer_id as state_customer_before, b.contract_id as state_contract_before,
           b.currency as state_currency_before, a.customer_id as state_customer_after,
           a.contract_id as state_contract_after, a.currency as state_currency_after,
           coalesce(b.policy_id, '') as policy_before, coalesce(a.policy_id, '') as policy_after,
           b.case_id is not null and b.closed_on is null as open_before,
           a.case_id is not null and a.closed_on is null as open_after,
           {_END_TEXT.format(t="b")} as end_before,
           {_END_TEXT.format(t="a")} as end_after
    from impact_before_cases b full join impact_after_cases a using (case_id)
),

affected as (
    select case_id from impact_differing_actions
    union
    select case_id from states where end_before <> end_after
),
{_CASE_FIGURES.format(side="before", postage=_POSTAGE, rates_join=_RATES_JOIN)},
{_CASE_FIGURES.format(side="after", postage=_POSTAGE, rates_join=_RATES_JOIN)},

final as (
    select coalesce(b.customer_id, a.customer_id, s.state_customer_after, s.state_customer_before) as customer_id,
           coalesce(n.name, '') as customer_name,
           coalesce(b.contract_id, a.contract_id, s.state_contract_after, s.state_contract_before) as contract_id,
           x.case_id,
           coalesce(b.currency, a.currency, s.state_currency_after, s.state_currency_before) as currency,
           coalesce(s.policy_before, '') as policy_before, coalesce(s.policy_after, '') as policy_after,
           coalesce(b.levels_done, '') as levels_before, coalesce(a.levels_done, '') as levels_after,
           coalesce(s.end_before, '') as end_before, coalesce(s.end_after, '') as end_after,
           coalesce(b.documents, 0) as documents_before, coalesce(b.letters, 0) as letters_before,
           coalesce(b.registered, 0) as registered_before,
           coalesce(b.postage, cast(0 as decimal(18, 2))) as postage_before,
           coalesce(b.fees, cast(0 as decimal(18, 2))) as fees_before,
           coalesce(b.terminations, 0) as terminations_before,
           case when coalesce(s.open_before, false) then 1 else 0 end as open_cases_before,
           coalesce(a.documents, 0) as documents_after, coalesce(a.letters, 0) as letters_after,
           coalesce(a.registered, 0) as registered_after,
           coalesce(a.postage, cast(0 as decimal(18, 2))) as postage_after,
           coalesce(a.fees, cast(0 as decimal(18, 2))) as fees_after,
           coalesce(a.terminations, 0) as terminations_after,
           case when coalesce(s.open_after, false) then 1 else 0 end as open_cases_after
    from affected x
    left join states s using (case_id)
    left join before_counts b using (case_id)
    left join after_counts a using (case_id)
    left join {{names}} n
      on n.customer_id = coalesce(b.customer_id, a.customer_id, s.state_customer_after, s.state_customer_before)
)

select * from final
"""

_CUSTOMERS_SQL = """
select customer_id, any_value(customer_name), currency, count(*),
       sum(documents_before), sum(letters_before), sum(registered_before), sum(postage_before),
       sum(fees_before), sum(terminations_before), sum(open_cases_before),
       sum(documents_after), sum(letters_after), sum(registered_after), sum(postage_after),
       sum(fees_after), sum(terminations_after), sum(open_cases_after)
from impact_affected_cases
group by customer_id, currency
order by customer_id, currency
"""


def _postage_rates(con, settings) -> None:
    """The postage setting as the temp table impact_postage_rates (channel, currency, rate), at the
    scale of its most precise rate (two decimals at least, as money is shown)."""
    rates = [(channel, ccy, Decimal(rate)) for channel in LETTER_CHANNELS
             for ccy, rate in sorted(((settings.postage or {}).get(channel) or {}).items())]
    scale = max([2, *(max(0, -r.as_tuple().exponent) for _, _, r in rates)])
    if scale > 18:
        raise ValueError(f"a postage rate has {scale} decimals: at most 18")
    con.execute(f"create or replace temp table impact_postage_rates "  # scale: a checked integer
                f"(channel varchar, currency varchar, rate decimal(38, {scale}))")
    if rates:
        con.executemany("insert into impact_postage_rates values (?, ?, ?)", rates)


def _has_customers(con) -> bool:
    return bool(con.execute("select count(*) from duckdb_tables() where database_name = current_database() "
                            "and schema_name = 'main' and table_name = 'stg_customers'").fetchall()[0][0])


# ---------------------------------------------------------------------------------------------
# showing it


def signed(value) -> str:
    """A difference with its sign: +5.00, -1, 0 (money keeps its two decimals)."""
    if isinstance(value, Decimal):
        return f"+{value}" if value > 0 else str(value) if value < 0 else str(ZERO + value)
    return f"+{value}" if value > 0 else str(value)


def md_cell(value) -> str:
    """A Markdown table cell: pipes escaped, line breaks flattened (names come from the data)."""
    text = "" if value is None else str(value)
    return " ".join(text.split()).replace("|", "\\|")


def _md_row(values) -> str:
    return "| " + " | ".join(md_cell(v) for v in values) + " |"


def change(before, after) -> str:
    """`5.00` when equal, else `5.00 -> 15.00 (+10.00)`."""
    if before == after:
        return str(before)
    return f"{before} -> {after} ({signed(after - before)})"


def _more(lines: list[str], total: int, shown: int, where: str | None) -> None:
    if total > shown:
        lines.append("")
        lines.append(f"... {total - shown} more" + (f": every one in {where}" if where else ""))


def markdown_sections(impact: Impact, *, limit: int | None = None, where: str | None = None,
                      heading: str = "###") -> list[str]:
    """The impact as Markdown: per level and currency, totals, customers, cases, actions.

    `limit` caps the customers, cases and actions listed (for a terminal); `where` names the
    files that hold all of them.
    """
    b, a = impact.before, impact.after
    lines = [f"{heading} Per level and currency", ""]
    if impact.levels:
        lines += [f"| policy | level | currency | figure | {b} | {a} | difference |",
                  "|---|---|---|---|---:|---:|---:|"]
        for row in impact.levels:
            for attr, label, _ in FIGURES:
                x, y = getattr(row.before, attr), getattr(row.after, attr)
                if x or y:
                    lines.append(_md_row((row.policy_id, row.label, row.currency, label, x, y, signed(y - x))))
    else:
        lines.append("No level was executed and no case was open in the range on either side.")
    lines += ["", f"{heading} Totals per currency", ""]
    totals = impact.totals()
    if totals:
        lines += [f"| currency | figure | {b} | {a} | difference |", "|---|---|---:|---:|---:|"]
        for ccy, (x, y) in totals.items():
            for attr, label, _ in FIGURES:
                lines.append(_md_row((ccy, label, getattr(x, attr), getattr(y, attr),
                                      signed(getattr(y, attr) - getattr(x, attr)))))
    else:
        lines.append("Nothing in either ledger.")
    for note in impact.notes:
        lines += ["", f"Note: {note}."]

    lines += ["", f"{heading} Customers affected: {len(impact.customers)}", ""]
    if impact.customers:
        lines += ["| customer | name | currency | cases | " + " | ".join(lbl for _, lbl, _ in CASE_FIGURES) + " |",
                  "|---|---|---|---:|" + "---:|" * len(CASE_FIGURES)]
        shown = impact.customers[:limit] if limit is not None else impact.customers
        for c in shown:
            lines.append(_md_row((c.customer_id, c.customer_name, c.currency, c.cases,
                                  *(change(getattr(c.before, attr), getattr(c.after, attr))
                                    for attr, _, _ in CASE_FIGURES))))
        _more(lines, len(impact.customers), len(shown), where)
    else:
        lines.append(f"No customer: {a} and {b} do the same to every case.")

    lines += ["", f"{heading} Cases affected: {len(impact.cases)}", ""]
    if impact.cases:
        lines += [f"| case | customer | currency | levels ({b}) | levels ({a}) | on the last day | documents | "
                  "fees | postage | contracts ended |", "|---|---|---|---|---|---|---:|---:|---:|---:|"]
        shown = impact.cases[:limit] if limit is not None else impact.cases
        for c in shown:
            end = c.end_before if c.end_before == c.end_after else \
                f"{c.end_before or '(no case)'} -> {c.end_after or '(no case)'}"
            lines.append(_md_row((c.case_id, c.customer_id, c.currency, c.levels_before, c.levels_after, end,
                                  *(change(getattr(c.before, attr), getattr(c.after, attr))
                                    for attr in ("documents", "fees", "postage", "terminations")))))
        _more(lines, len(impact.cases), len(shown), where)

    lines += ["", f"{heading} Actions that differ: {len(impact.actions)}", ""]
    if impact.actions:
        lines += [f"| kind | action | on ({b}) | on ({a}) | channel | fee | amount demanded |",
                  "|---|---|---|---|---|---:|---:|"]
        shown = impact.actions[:limit] if limit is not None else impact.actions
        for r in shown:
            lines.append(_md_row((r.kind, r.action_key, r.executed_before or "", r.executed_after or "",
                                  _pair(r.channel_before, r.channel_after), _pair(r.fee_before, r.fee_after),
                                  _pair(r.amount_before, r.amount_after))))
        _more(lines, len(impact.actions), len(shown), where)
    return lines


def _pair(before, after) -> str:
    if before == after or after is None:
        return "" if before is None else str(before)
    if before is None:
        return str(after)
    return f"{before} -> {after}"


# ---------------------------------------------------------------------------------------------
# files beside the Markdown report: CSV (text, for a spreadsheet) and Parquet (typed)

_MONEY = "decimal(18,2)"


def _figure_columns(prefix_labels: tuple[str, str], figures=FIGURES) -> list[tuple[str, str]]:
    b, a = prefix_labels
    out = []
    for attr, _, money in figures:
        kind = _MONEY if money else "integer"
        out += [(f"{attr}_{b}", kind), (f"{attr}_{a}", kind), (f"{attr}_difference", kind)]
    return out


def _figure_values(before: Counts, after: Counts, figures=FIGURES) -> list:
    out = []
    for attr, _, _ in figures:
        x, y = getattr(before, attr), getattr(after, attr)
        out += [x, y, y - x]
    return out


def tables(impact: Impact) -> dict[str, tuple[list[tuple[str, str]], list[list]]]:
    """The impact as tables (columns with DuckDB types, rows), each sorted: levels, customers, cases, actions."""
    b, a = impact.before, impact.after
    levels_cols = [("policy_id", "varchar"), ("level", "varchar"), ("level_no", "integer"),
                   (f"level_name_{b}", "varchar"), (f"level_name_{a}", "varchar"), ("currency", "varchar"),
                   *_figure_columns((b, a))]
    levels_rows = [[r.policy_id, r.level, r.level_no, " / ".join(r.names_before), " / ".join(r.names_after),
                    r.currency, *_figure_values(r.before, r.after)] for r in impact.levels]
    levels_rows += [["(total)", "", None, "", "", ccy, *_figure_values(x, y)]
                    for ccy, (x, y) in impact.totals().items()]
    case_figs = FIGURES[:5] + (("open_cases", "open on the last day", False),)
    customers_cols = [("customer_id", "varchar"), ("customer_name", "varchar"), ("currency", "varchar"),
                      ("cases", "integer"), *_figure_columns((b, a), case_figs)]
    customers_rows = [[c.customer_id, c.customer_name, c.currency, c.cases, *_figure_values(c.before, c.after,
                                                                                           case_figs)]
                      for c in impact.customers]
    cases_cols = [("customer_id", "varchar"), ("customer_name", "varchar"), ("contract_id", "varchar"),
                  ("case_id", "varchar"), ("currency", "varchar"), (f"policy_{b}", "varchar"),
                  (f"policy_{a}", "varchar"), (f"levels_{b}", "varchar"), (f"levels_{a}", "varchar"),
                  (f"last_day_{b}", "varchar"), (f"last_day_{a}", "varchar"), *_figure_columns((b, a), case_figs)]
    cases_rows = [[c.customer_id, c.customer_name, c.contract_id, c.case_id, c.currency, c.policy_before,
                   c.policy_after, c.levels_before, c.levels_after, c.end_before, c.end_after,
                   *_figure_values(c.before, c.after, case_figs)] for c in impact.cases]
    actions_cols = [("kind", "varchar"), ("action_key", "varchar"), ("case_id", "varchar"),
                    ("customer_id", "varchar"), ("contract_id", "varchar"), ("currency", "varchar"),
                    ("level_no", "integer"), ("action", "varchar"), (f"channel_{b}", "varchar"),
                    (f"channel_{a}", "varchar"), (f"executed_on_{b}", "date"), (f"executed_on_{a}", "date"),
                    (f"fee_{b}", _MONEY), (f"fee_{a}", _MONEY), (f"amount_demanded_{b}", _MONEY),
                    (f"amount_demanded_{a}", _MONEY)]
    actions_rows = [[r.kind, r.action_key, r.case_id, r.customer_id, r.contract_id, r.currency, r.level_no,
                     r.action, r.channel_before, r.channel_after, r.executed_before, r.executed_after,
                     r.fee_before, r.fee_after, r.amount_before, r.amount_after] for r in impact.actions]
    return {"levels": (levels_cols, levels_rows), "customers": (customers_cols, customers_rows),
            "cases": (cases_cols, cases_rows), "actions": (actions_cols, actions_rows)}


def csv_text(columns: list[tuple[str, str]], rows: list[list]) -> str:
    """CSV with a header, `\\n` line ends, exact decimals, ISO dates, empty for missing."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([name for name, _ in columns])
    for row in rows:
        writer.writerow(["" if v is None else v.isoformat() if isinstance(v, date) else str(v) for v in row])
    return buf.getvalue()


def write_table(path_stem: Path, name: str, columns: list[tuple[str, str]], rows: list[list],
                *, parquet: bool = True) -> list[Path]:
    """`<stem>.<name>.csv` (and `.parquet`, typed) beside the report; returns the paths written."""
    csv_path = path_stem.with_name(f"{path_stem.name}.{name}.csv")
    atomic_write(csv_path, csv_text(columns, rows).encode("utf-8"), fsync=False)
    written = [csv_path]
    if parquet:
        written.append(_write_parquet(path_stem.with_name(f"{path_stem.name}.{name}.parquet"), columns, rows))
    return written


def _write_parquet(path: Path, columns: list[tuple[str, str]], rows: list[list]) -> Path:
    """Typed Parquet (money as DECIMAL(18,2), dates as DATE), written beside and renamed into place."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"varchar": pa.string(), "integer": pa.int64(), "date": pa.date32(), _MONEY: pa.decimal128(18, 2)}
    schema = pa.schema([(name, types[kind]) for name, kind in columns])
    table = pa.table({name: pa.array([row[i] for row in rows], type=schema.field(name).type)
                      for i, (name, _) in enumerate(columns)}, schema=schema)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def write_tables(impact: Impact, path_stem: Path, *, parquet: bool = True) -> list[Path]:
    written = []
    for name, (columns, rows) in tables(impact).items():
        written += write_table(path_stem, name, columns, rows, parquet=parquet)
    return written
