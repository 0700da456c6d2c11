"""One daily step and ranges of them: the product's core loop, callable from a notebook.

state(D) = step(state(D-1), inputs visible on D, policy versions in force on D).
A day first rewinds whatever earlier runs computed for it (keeping what was
dispatched), then runs the SQL models, writes the day's decisions and, on a
live day, dispatches. The live run, a re-run and a backfill all use this one
step, so they cannot disagree.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb

from pipeline import catalog, policy as policy_mod
from pipeline.failed_collections.reference import load_reference, report_unknown_codes
from pipeline.ingest import TableReport, ingest
from pipeline.publish import publish
from pipeline.settings import Settings
from pipeline.sql_runner import run_daily_models
from pipeline.state import apply_day, ensure_state, rewind_to

log = logging.getLogger(__name__)


@dataclass
class DayResult:
    as_of: date
    cases_opened: int
    cases_closed: int
    actions: int
    levels_skipped: int
    documents_written: int
    model_seconds: dict[str, float] = field(default_factory=dict)
    # why nothing was sent today (the fresh-data gate), or None
    dispatch_blocked: str | None = None


@contextmanager
def connect(database: Path | str, memory_limit: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the dunning database (one read-write process at a time) and close it reliably.

    `memory_limit` comes from Settings, where a pattern validates it (SET takes no parameters).
    """
    if str(database) != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(database))
    if memory_limit:
        con.execute(f"set memory_limit = '{memory_limit}'")
    try:
        yield con
    finally:
        con.close()


def load_inputs(con, settings: Settings) -> tuple[policy_mod.PolicyFile, list[TableReport]]:
    """Load the policy file and ingest the billing files; shared by every kind of run."""
    policies = policy_mod.load_policy_file(settings.policy_file)
    ensure_state(con)
    policy_mod.load_into_duckdb(con, policies)
    reports = ingest(con, settings.data_dir, policies.handles)
    # reason codes of failed collections (reference data, replaced on every run) and their views
    load_reference(con)
    report_unknown_codes(con)
    return policies, reports


def stale_payments(con, as_of: date, settings: Settings) -> str | None:
    """Why dispatch must wait (the newest payment visible on `as_of` is too old), or None.

    Dunning on stale payment data sends reminders to customers who have paid; a
    missing or late payments export is the usual cause.
    """
    max_age = settings.dispatch.max_payment_age_days
    if max_age is None:
        return None
    newest = con.execute("select max(booked_on) from stg_payments where booked_on <= ?", [as_of]).fetchall()[0][0]
    if newest is not None and (as_of - newest).days <= max_age:
        return None
    seen = f"the newest payment was booked on {newest}" if newest else "there are no payments at all"
    return (f"payment data is stale on {as_of}: {seen}, more than {max_age} day(s) before; nothing is "
            "sent today (state is computed, the day's actions are held and decided again on the next run)")


def plan_day(con, as_of: date, *, live: bool = True, settings: Settings | None = None,
             open_receivables: bool = True) -> DayResult:
    """Compute one day's state and record its actions in the ledger. Inputs must be loaded.

    A live day's actions are `planned` (to be dispatched); a backfill's are recorded
    as `not_dispatched`: a document dated in the past is never sent. With `settings`,
    a live day first checks that payment data is fresh; if not, its actions are `held`.
    `open_receivables=False`: leave that table (the latest day's) to a later day of a range.
    """
    blocked = stale_payments(con, as_of, settings) if live and settings is not None else None
    if blocked:
        log.warning(blocked)
    rewind_to(con, as_of)
    seconds = run_daily_models(con, as_of, live=live)
    counts = apply_day(con, as_of, "live" if live else "backfill", held=blocked is not None,
                       open_receivables=open_receivables)
    run_number = con.execute(
        "select coalesce(max(run_number), 0) + 1 from run_log where as_of = ?", [as_of]
    ).fetchall()[0][0]
    con.execute(
        """insert into run_log (as_of, run_number, mode, cases_opened, cases_closed, actions_planned,
                                levels_skipped, documents_sent, dispatch_blocked)
           values (?, ?, ?, ?, ?, ?, ?, 0, ?)""",
        [as_of, run_number, "live" if live else "backfill", counts["cases_opened"],
         counts["cases_closed"], counts["actions"], counts["levels_skipped"], blocked],
    )
    return DayResult(as_of, documents_written=0, model_seconds=seconds, dispatch_blocked=blocked, **counts)


def dispatch_day(con, as_of: date, settings: Settings) -> int:
    """Render and deliver every live action still planned up to `as_of`; returns documents written.

    Sends nothing while today's run was blocked by the fresh-data gate.
    """
    from pipeline.dispatch import dispatch_outbox  # rendering libraries load only when used

    blocked = con.execute(
        "select dispatch_blocked from run_log where as_of = ? order by run_number desc limit 1", [as_of]
    ).fetchall()
    if blocked and blocked[0][0]:
        log.warning("dispatch skipped: %s", blocked[0][0])
        return 0
    written = dispatch_outbox(con, as_of, settings)
    con.execute(
        """update run_log set documents_sent = documents_sent + ?
           where as_of = ? and run_number = (select max(run_number) from run_log where as_of = ?)""",
        [written, as_of, as_of],
    )
    return written


def run_day(con, as_of: date, settings: Settings, *, dispatch: bool = True) -> DayResult:
    """Plan one day and, on a live day, dispatch its documents."""
    result = plan_day(con, as_of, live=dispatch, settings=settings)
    if dispatch and not result.dispatch_blocked:
        result.documents_written = dispatch_day(con, as_of, settings)
    return result


def days(start: date, end: date) -> list[date]:
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def run_range(
    con,
    start: date,
    end: date,
    settings: Settings,
    *,
    dispatch: bool,
    on_day: Callable[[DayResult], None] | None = None,
) -> list[DayResult]:
    """Run days in date order with one database connection and one ingestion."""
    results = []
    for day in days(start, end):
        result = run_day(con, day, settings, dispatch=dispatch)
        results.append(result)
        if on_day:
            on_day(result)
    catalog.apply_comments(con)
    publish(con, settings, end)  # the analysts' read-only copy (pipeline/publish.py)
    return results
