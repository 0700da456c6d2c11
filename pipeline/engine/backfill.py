"""Backfills: recompute past days, say what differs from what was done, decide how live catches up.

A backfill runs the ordinary daily step over past days (never dispatching:
a document dated in the past is never sent), under the policy versions in
force on each day or under one version the user names. Dispatched rows and
exports a live day recorded stay in the ledger as the record of what happened;
everything else in the range is recomputed with the same keys.

The days are recomputed in a work schema seeded with the state before the
first day (`pipeline.warehouse.work_schemas`), so what was really sent in the range does not
steer the recomputation. The difference report compares that result with the
ledger rows of the range as they were; a recomputed case that opened the same target as a live case
on another day takes the live case's id first (`_continue_live_cases`), so what was sent counts as
done. Then the result is adopted: it
replaces the range's state, except for rows that record a dispatch (sent,
prepared, failed, ...) and exports a live day recorded (an end_contract listed
in contract_terminations, ...): they left the system and stay as the record of
what happened (`KEPT_BY_BACKFILL`).

After a backfill, levels it recorded as not dispatched may be levels no
customer ever received. The user chooses how the next live days treat them,
and the choice is stored in `backfill_runs` (the one run last, by `sequence_no`, holds):
- `none`: they count as done, nothing is sent for them;
- `highest`: the highest of them is sent once on the next live day;
- `each`: they are sent one level per live day, lowest first.
A catch-up sending is a new ledger row `<key>+catch_up`, dated the live day
and without a fee (the fee was recorded with the original level). The daily
models plan it (`sql/intermediate/int_catch_up_actions.sql`) and it passes the
same gates and amounts as any level: it demands what is owed on the day it is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pipeline.warehouse import catalog
from pipeline.engine.run import DayResult, RunMode, RunRefused, refuse_before_latest, run_days
from pipeline.config.settings import Settings

CATCH_UP_MODES = ("none", "highest", "each")

_COMPARED = ("executed_on", "level_no", "principal", "fee", "fees_total", "interest", "amount_demanded")


@dataclass
class BackfillResult:
    backfill_id: str
    days: list[DayResult]
    differences: dict[str, int]


class BackfillError(ValueError):
    """A backfill that cannot run as asked; the message says why."""


WORK_SCHEMA = "backfill_work"

# The ledger rows a backfill never replaces: what was handed to someone (status_is_dispatch_record)
# and exports a live day recorded (a backfill records none: its exports are not_dispatched), which
# the export views listed. Unlike a re-run of the latest day (`state.rewind_to`), which decides that
# day's exports again, a backfill recomputes days whose exports were taken up long ago.
KEPT_BY_BACKFILL = "(status_is_dispatch_record(status) or (action_is_export(action) and status_is_exported(status)))"


def backfill(con, start: date, end: date, settings: Settings, *, catch_up: str,
             policy_version: str | None = None, on_day=None) -> BackfillResult:
    """Recompute `start`..`end` (inputs loaded), record the differences, adopt the result."""
    from pipeline.warehouse import work_schemas as schemas

    if catch_up not in CATCH_UP_MODES:
        raise BackfillError(f"catch-up must be one of {', '.join(CATCH_UP_MODES)}, not {catch_up!r}")
    if end < start:
        raise BackfillError(f"the backfill ends ({end}) before it starts ({start})")
    try:  # adopting the range replaces everything from `start` on: it must reach the latest day
        refuse_before_latest(con, end, what=f"A backfill from {start} that ends on", recompute_from=start)
    except RunRefused as exc:
        raise BackfillError(str(exc)) from None
    if policy_version is not None:
        known = con.execute("select count(*) from policy_versions where policy_version = ?",
                            [policy_version]).fetchall()[0][0]
        if not known:
            raise BackfillError(f"no policy version {policy_version!r} (see the policy_versions table)")
    number = con.execute("select count(*) + 1 from backfill_runs where first_day = ? and last_day = ?",
                         [start, end]).fetchall()[0][0]
    backfill_id = f"bf-{start.isoformat()}-{end.isoformat()}-{number}"
    # a clean recomputation from the state before `start`: what was sent in the range does not
    # steer it, so the report can say what should (not) have happened
    schemas.seed(con, WORK_SCHEMA, start)
    results = run_in_schema(con, WORK_SCHEMA, start, end, policy_version=policy_version, on_day=on_day)
    _continue_live_cases(con, start)
    # the differences, the adoption and the run's record in one transaction: a backfill stopped in
    # between (an error, Ctrl-C, a kill) leaves no difference rows under an id that its retry, which
    # numbers itself from backfill_runs, takes again, and never adopted days without their catch-up choice
    con.execute("begin transaction")
    try:
        counts = _record_differences(con, backfill_id, start, end)
        before = con.execute("select count(*) from action_ledger where executed_on between ? and ?",
                             [start, end]).fetchall()[0][0]
        after = con.execute(f"select count(*) from {WORK_SCHEMA}.action_ledger where executed_on between ? and ?",
                            [start, end]).fetchall()[0][0]
        _adopt(con, start)
        # numbered in the order backfills run: the latest one's catch-up choice is the one in force
        con.execute("""insert into backfill_runs (backfill_id, first_day, last_day, policy_version, catch_up,
                                                  actions_before, actions_after, differences, sequence_no)
                       select ?, ?, ?, ?, ?, ?, ?, ?, coalesce(max(sequence_no), 0) + 1 from backfill_runs""",
                    [backfill_id, start, end, policy_version, catch_up, before, after, sum(counts.values())])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    catalog.apply_comments(con)
    return BackfillResult(backfill_id, results, counts)


def run_in_schema(con, schema: str, start: date, end: date, *, policy_version: str | None = None,
                  mode: RunMode = RunMode.BACKFILL, on_day=None) -> list[DayResult]:
    """The ordinary daily step, day by day, against a seeded work schema (never dispatching).

    It reads only the invoices and payments that can matter to the range
    (`pipeline.warehouse.range_inputs`), and writes `open_receivables`, which holds the
    latest day only, once for the last day.
    """
    from pipeline.warehouse.range_inputs import narrowed_inputs
    from pipeline.warehouse.work_schemas import in_schema

    con.execute("create temp table if not exists forced_policy_versions (policy_version varchar)")
    con.execute("delete from forced_policy_versions")
    # A range writes a day's state some 90 times in a row; checkpointing the file after every
    # few days of it cost up to a fifth of the time. One checkpoint follows the range instead.
    con.execute("set checkpoint_threshold = '4GB'")
    results = []
    try:
        with narrowed_inputs(con, schema, start, end), in_schema(con, schema):
            if policy_version is not None:
                con.execute("insert into forced_policy_versions values (?)", [policy_version])
            results = run_days(con, start, end, mode, on_day=on_day)
    finally:
        con.execute("delete from forced_policy_versions")
        con.execute("reset checkpoint_threshold")
    con.execute("checkpoint")
    return results


# The pairs of a live case and a recomputed case that may continue it: a live case opened in the range
# that has something a customer or a downstream system received (KEPT_BY_BACKFILL), whose id the
# recomputation does not have (it opened the same target on another day: a corrected due date, a late
# payment, another version's grace), and a recomputed case of the same scope and target, opened in the
# range under an id the live days never had, whose open period overlaps it. Collection cases are left
# out: their details carry their id (a collection request's URL), which a rename cannot rewrite.
_OVERLAPPING_CASES = f"""
with live as (
    select r.case_id, r.scope, r.target_id, r.opened_on, r.closed_on
    from main.case_register r
    where r.opened_on >= $start and r.scope <> 'collection'
      and r.case_id not in (select case_id from {WORK_SCHEMA}.case_register)
      and exists (select 1 from main.action_ledger l where l.case_id = r.case_id and {KEPT_BY_BACKFILL})
),

recomputed as (
    select case_id, scope, target_id, opened_on, closed_on
    from {WORK_SCHEMA}.case_register
    where opened_on >= $start and scope <> 'collection'
      and case_id not in (select case_id from main.case_register)
),

final as (
    select l.case_id as live_id, r.case_id as recomputed_id,
           l.opened_on as live_opened_on, r.opened_on as recomputed_opened_on
    from live l
    join recomputed r using (scope, target_id)
    where r.opened_on <= coalesce(l.closed_on, date '9999-12-31')
      and l.opened_on <= coalesce(r.closed_on, date '9999-12-31')
)

select live_id, recomputed_id from final
order by live_opened_on, live_id, recomputed_opened_on, recomputed_id
"""


def continued_cases(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """One recomputed case for each live case at most, and the reverse: the live cases in the order
    they opened, each taking the earliest overlapping recomputed case no earlier live case took.

    `pairs`: (live id, recomputed id), in that order (`_OVERLAPPING_CASES`: by the live case's opening
    day, then the recomputed one's). A live case whose overlapping cases are all taken closes."""
    taken: set[str] = set()
    paired: dict[str, str] = {}
    for live_id, recomputed_id in pairs:
        if live_id not in paired and recomputed_id not in taken:
            paired[live_id] = recomputed_id
            taken.add(recomputed_id)
    return list(paired.items())


def _continue_live_cases(con, start: date) -> int:
    """Give each recomputed case that continues a live case (`continued_cases`) the live case's id, in
    the work schema, before the comparison and the adoption; returns how many.

    A case's id carries its opening day, so a backfill from before a live case opened that opens the
    same target on another day would otherwise make a second case: the live one closed with its sent
    levels, the recomputed one adopted with the same levels again as `not_dispatched`, their fees
    counted a second time, and a catch-up sending a level the customer already has, under another
    payment reference (`payment_reference(case_id)`). Under the live id the recomputed levels meet
    the sent ones on their keys: what was sent stays the record (`_adopt`), the report says how the
    level moved (`changed`), and the case keeps its reference.
    """
    w = WORK_SCHEMA
    pairs = continued_cases(con.execute(_OVERLAPPING_CASES, {"start": start}).fetchall())
    if not pairs:
        return 0
    con.execute("create or replace temp table continued_cases as "
                "select unnest(?::varchar[]) as live_id, unnest(?::varchar[]) as recomputed_id",
                [[p[0] for p in pairs], [p[1] for p in pairs]])
    # a key is the case id, then '/': the rest of it (level or step, action) stays
    con.execute(f"""update {w}.action_ledger set case_id = c.live_id,
                        action_key = c.live_id || substr(action_ledger.action_key, length(c.recomputed_id) + 1)
                    from continued_cases c where action_ledger.case_id = c.recomputed_id""")
    # it opened on the earlier of the two days: the live case's sent levels never precede it
    con.execute(f"""update {w}.case_register
                    set case_id = c.live_id, opened_on = least(case_register.opened_on, l.opened_on)
                    from continued_cases c join main.case_register l on l.case_id = c.live_id
                    where case_register.case_id = c.recomputed_id""")
    con.execute("drop table continued_cases")
    return len(pairs)


def _adopt(con, start: date) -> None:
    """Make the recomputed days the live state; rows that record a dispatch or a live export stay as they are.
    Inside the caller's transaction (`backfill`)."""
    w = WORK_SCHEMA
    # rows that record what was handed to someone or exported stay as they are (KEPT_BY_BACKFILL)
    con.execute(f"delete from action_ledger where executed_on >= ? and not {KEPT_BY_BACKFILL}", [start])
    con.execute("""delete from case_register c where opened_on >= ?
                   and not exists (select 1 from action_ledger l where l.case_id = c.case_id)""", [start])
    con.execute("update case_register set closed_on = null, close_reason = null where closed_on >= ?", [start])
    # a case the recomputation continues takes its policy version and routing from it: the levels
    # adopted below are that version's (a case kept by dispatched rows would otherwise show the
    # old version next to the new version's levels, and plan no further level of either)
    con.execute(f"""insert into case_register by name select * from {w}.case_register
                    on conflict (case_id) do update set policy_id = excluded.policy_id,
                        policy_version = excluded.policy_version, routed_by = excluded.routed_by,
                        opened_on = excluded.opened_on""")
    con.execute(f"""update case_register r set closed_on = s.closed_on, close_reason = s.close_reason
                    from {w}.case_register s
                    where r.case_id = s.case_id and r.closed_on is null and s.closed_on is not null""")
    # a case kept only by documents really sent, which the recomputation never opened, ends here
    # (never before it opened: a case opened inside the range closes on its opening day)
    con.execute(f"""update case_register set closed_on = greatest(opened_on, ?), close_reason = 'not_in_backfill'
                    where closed_on is null and case_id not in (select case_id from {w}.case_register)""",
                [start])
    con.execute(f"insert into action_ledger by name select * from {w}.action_ledger where executed_on >= ? "
                "on conflict do nothing", [start])
    con.execute("delete from contract_balances where as_of >= ?", [start])
    con.execute(f"insert into contract_balances by name select * from {w}.contract_balances where as_of >= ?",
                [start])
    con.execute(f"create or replace table open_receivables as select * from {w}.open_receivables")
    con.execute(f"""insert into run_log by name
                    select * replace (run_number + coalesce((select max(m.run_number) from run_log m
                                                             where m.as_of = w.as_of), 0) as run_number)
                    from {w}.run_log w where as_of >= ?""", [start])


def _record_differences(con, backfill_id: str, start: date, end: date) -> dict[str, int]:
    changed = " or ".join(f"b.{c} is distinct from a.{c}" for c in _COMPARED)  # fixed column names
    con.execute(
        f"""insert into backfill_differences
            select $id, kind, action_key, case_id, level_no, action, before_status, before_executed_on,
                   after_executed_on, before_amount, after_amount, before_fee, after_fee
            from (
                select case when b.action_key is null then 'would_have_happened'
                            when a.action_key is null then 'would_not_have_happened'
                            else 'changed' end as kind,
                       coalesce(a.action_key, b.action_key) as action_key,
                       coalesce(a.case_id, b.case_id) as case_id,
                       coalesce(a.level_no, b.level_no) as level_no,
                       coalesce(a.action, b.action) as action,
                       b.status as before_status, b.executed_on as before_executed_on,
                       a.executed_on as after_executed_on, b.amount_demanded as before_amount,
                       a.amount_demanded as after_amount, b.fee as before_fee, a.fee as after_fee
                from (select * from main.action_ledger
                      where executed_on between $start and $end and status_is_done(status)) b
                full join (select * from {WORK_SCHEMA}.action_ledger
                           where executed_on between $start and $end and status_is_done(status)) a using (action_key)
                where b.action_key is null or a.action_key is null or {changed}
            )
            order by action_key""",
        {"id": backfill_id, "start": start, "end": end},
    )
    rows = con.execute("select kind, count(*) from backfill_differences where backfill_id = ? group by kind",
                       [backfill_id]).fetchall()
    return {kind: n for kind, n in rows}


# the difference report's columns: (column of backfill_differences, header in the Markdown report)
_REPORT_COLUMNS = (("kind", "kind"), ("action_key", "action"), ("case_id", "case"), ("level_no", "level"),
                   ("action", "action type"), ("before_status", "was"), ("before_executed_on", "on"),
                   ("after_executed_on", "would be on"), ("before_amount", "amount was"),
                   ("after_amount", "would be"), ("before_fee", "fee was"), ("after_fee", "would be"))


def _difference_rows(con, backfill_id: str, limit: int | None = None) -> list[tuple]:
    """The backfill's differences in report order (action key, then kind), all of them unless `limit`."""
    columns = ", ".join(c for c, _ in _REPORT_COLUMNS)  # fixed column names
    return con.execute(
        f"select {columns} from backfill_differences where backfill_id = ? order by action_key, kind"
        + (" limit ?" if limit is not None else ""),
        [backfill_id] + ([limit] if limit is not None else [])).fetchall()


def differences_markdown(con, backfill_id: str, limit: int | None = None, where: str | None = None) -> str:
    """The difference report as Markdown: counts per kind, then every difference (or the first `limit`,
    for a terminal: the last line then says how many more there are and where, `where` or the table)."""
    from pipeline.engine.impact import md_cell

    counts = dict(con.execute("select kind, count(*) from backfill_differences where backfill_id = ? "
                              "group by kind order by kind", [backfill_id]).fetchall())
    lines = [f"## Backfill {backfill_id}: differences from the ledger", "",
             "| kind | actions |", "|---|---:|"]
    for kind in ("would_have_happened", "would_not_have_happened", "changed"):
        lines.append(f"| {kind} | {counts.get(kind, 0)} |")
    total = sum(counts.values())
    lines.append(f"| total | {total} |")
    rows = _difference_rows(con, backfill_id, limit)
    if rows:
        # the level is in the key (`.../L2/...`); the case and action type are columns of the CSV
        shown = [i for i, (c, _) in enumerate(_REPORT_COLUMNS) if c not in ("case_id", "level_no", "action")]
        lines += ["", "| " + " | ".join(_REPORT_COLUMNS[i][1] for i in shown) + " |",
                  "|---|---|---|---|---|---:|---:|---:|---:|"]
        lines += ["| " + " | ".join(md_cell("" if row[i] is None else row[i]) for i in shown) + " |"
                  for row in rows]
        if total > len(rows):
            lines.append(f"\n... {total - len(rows)} more: every one in "
                         + (where or f"table backfill_differences (backfill_id = '{backfill_id}')"))
    return "\n".join(lines) + "\n"


def differences_csv(con, backfill_id: str) -> str:
    """Every difference of the backfill as CSV (the columns of `backfill_differences`, exact decimals)."""
    from pipeline.engine.impact import csv_text

    rows = _difference_rows(con, backfill_id)
    return csv_text([("backfill_id", "")] + [(c, "") for c, _ in _REPORT_COLUMNS],
                    [[backfill_id, *row] for row in rows])


def report_paths(path) -> tuple:
    """The Markdown report at `path` and its CSV beside it (`report.md` -> `report.csv`)."""
    from pathlib import Path

    path = Path(path)
    csv_path = path.with_suffix(".csv")
    if csv_path == path:
        csv_path = path.with_name(path.name + ".differences.csv")
    return path, csv_path


def write_report(con, backfill_id: str, path) -> tuple:
    """Write the complete difference report: Markdown at `path`, CSV beside it; returns both paths."""
    from pipeline.durable_files import atomic_write

    md_path, csv_path = report_paths(path)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(md_path, differences_markdown(con, backfill_id).encode("utf-8"), fsync=False)
    atomic_write(csv_path, differences_csv(con, backfill_id).encode("utf-8"), fsync=False)
    return md_path, csv_path
