"""One daily step and ranges of them: the product's core loop, callable from a notebook.

state(D) = step(state(D-1), inputs visible on D, policy versions in force on D).
A day first rewinds whatever earlier runs computed for it (keeping what was
dispatched), then runs the SQL models and writes the day's decisions. The live
run, a re-run, a backfill and a simulation all use this one step, so they
cannot disagree.

Run modes (`RunMode`) say what a day's decisions are, separately from whether
documents are sent now:
- `live`: the day as it happens. Its documents are `planned` for dispatch, sent
  at once (`run_day`) or later by `dunning dispatch` / the next live day.
- `backfill`: a past day recomputed (`pipeline.engine.backfill`). Recorded as
  `not_dispatched`, never sent; the user chooses how live days catch up.
- `simulate`: a candidate policy or a scenario. Recorded, never sent.

One service orders a live day: plan -> dispatch -> publish (`run_day`, and the
Dagster assets call the same three functions in the same order). A live day
before the latest day computed is refused (`RunRefused`): recomputing it would
discard the later days, which only a backfill through the latest day does.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import Enum
from functools import cache
from pathlib import Path

import duckdb

from pipeline.engine import checks
from pipeline.warehouse import catalog
from pipeline.config import policy as policy_mod
from pipeline.failed_collections.reference import load_reference, report_unknown_codes
from pipeline.warehouse.analytics import ensure_analytics
from pipeline.warehouse.ingest import TableReport, ingest, quarantine_stop
from pipeline.reporting.publish import publish
from pipeline.config.settings import Settings
from pipeline.warehouse.range_days import Computed, RangeDays
from pipeline.warehouse.sql_runner import run_daily_models
from pipeline.warehouse.state import apply_day, ensure_state, rewind_to

log = logging.getLogger(__name__)


class RunMode(str, Enum):
    LIVE = "live"
    BACKFILL = "backfill"
    SIMULATE = "simulate"

    @property
    def sends(self) -> bool:
        """Whether the mode's documents are ever dispatched (only a live day's are)."""
        return self is RunMode.LIVE


class RunRefused(ValueError):
    """A run that would lose state the user did not ask to lose; the message names what to run."""


class SendRefused(RuntimeError):
    """Nothing of the day is sent: the state breaks a promise; the message names the rows."""


def refuse_broken_state(con, as_of: date) -> None:
    """Raise `SendRefused` unless the state keeps the promises every sending path checks first
    (`checks.send_guard_failures`): `dunning run`, `dunning dispatch`, the daily documents step
    and the sharded documents job, before anything is recovered, snapshotted or sent."""
    broken = checks.send_guard_failures(con, as_of)
    if broken:
        raise SendRefused("Nothing sent: the state breaks its promises: " + " | ".join(broken))


def latest_day(con) -> date | None:
    """The latest day whose state has been computed (live or backfill) in this schema."""
    return con.execute("select max(as_of) from run_log").fetchall()[0][0]


def refuse_before_latest(con, day: date, *, what: str, recompute_from: date | None = None) -> None:
    """Refuse to recompute up to `day` when later days exist: that would discard them.

    The message names the command that does what the user wants: a backfill from
    `recompute_from` (default `day`) through the latest day.
    """
    latest = latest_day(con)
    if latest is None or day >= latest:
        return
    first = recompute_from or day
    raise RunRefused(
        f"{what} {day} would discard the {(latest - day).days} later day(s) computed up to {latest}. "
        f"To recompute {first} to {latest}, run `dunning backfill --from {first} --to {latest} "
        f"--catch-up none|highest|each` (in Dagster: backfill the partitions {first}...{latest} as one run). "
        f"To look at a past day, use `dunning explain CASE_ID --as-of {day}` or state_as_of('{day}').")


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
    # what the day's dispatch did (pipeline.delivery.dispatch.DispatchSummary), if it ran
    dispatch: object | None = None
    # what a user should know about the day (also logged): e.g. contracts waiting for their policy
    warnings: list[str] = field(default_factory=list)
    # whom the day's models ran for: every customer, or in a range (pipeline.warehouse.range_days) only
    # the customers touched that day (`customers_computed` of them), or nobody (balances carried)
    computed: Computed = Computed.ALL
    customers_computed: int | None = None


@cache
def without_transparent_huge_pages() -> bool:
    """Turn transparent huge pages off for this process (Linux; elsewhere it does nothing). True if done.

    The setting is the process's: every later allocation of it, and the processes it starts
    (inherited, kept across exec), are backed by ordinary pages.

    Where THP is on for memory a program asks it for (`madvise`, the usual default), the kernel may
    compact memory to back each fresh allocation with huge pages, and a process holding a large
    DuckDB database gets them. On the 2-core bench machine that made copying a range's 650 MB of
    invoices into memory take 9.7 s instead of 0.3 s, and a 90-day simulation at 100k contracts
    51-52 s instead of 55-57 s. It changes no result, only how the kernel backs this process's memory.
    """
    if sys.platform != "linux":
        return False
    try:
        off = ctypes.CDLL(None, use_errno=True).prctl(
            *(ctypes.c_ulong(v) for v in (_PR_SET_THP_DISABLE, 1, 0, 0, 0))) == 0  # it reads unsigned longs
    except (OSError, AttributeError):  # no prctl in this C library: the kernel's setting stays
        off = False
    if not off:
        log.debug("transparent huge pages stay as the kernel sets them (prctl refused or missing)")
    return off


_PR_SET_THP_DISABLE = 41  # linux/prctl.h


@contextmanager
def connect(database: Path | str, memory_limit: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the dunning database (one read-write process at a time) and close it reliably.

    `memory_limit` comes from Settings, where a pattern validates it (SET takes no parameters).
    DUNNING_DUCKDB_THREADS caps DuckDB's threads (default: one per core); the test suite sets 1,
    since it already runs one process per core. Transparent huge pages are turned off for the process
    first (`without_transparent_huge_pages`).
    """
    without_transparent_huge_pages()
    if str(database) != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(database))
    if memory_limit:
        con.execute(f"set memory_limit = '{memory_limit}'")
    threads = os.environ.get("DUNNING_DUCKDB_THREADS", "")
    if threads:
        if not threads.isdigit() or int(threads) < 1:
            raise ValueError(f"DUNNING_DUCKDB_THREADS must be a whole number of threads, not {threads!r}")
        con.execute(f"set threads = {int(threads)}")
    try:
        yield con
    finally:
        con.close()


def load_inputs(con, settings: Settings) -> tuple[policy_mod.PolicyFile, list[TableReport]]:
    """Load the policy file and ingest the billing files; shared by every kind of run."""
    policies = policy_mod.load_policy_file(settings.policy_file)
    ensure_state(con)
    # all or nothing: a file that stops ingestion (IngestError) leaves the policies, the input tables
    # and the quarantine as the previous load left them, not some tables replaced and others not
    con.execute("begin transaction")
    try:
        policy_mod.load_into_duckdb(con, policies)
        reports = ingest(con, settings.data_dir, policies.handles)
        # reason codes of failed collections (reference data, replaced on every run) and their views
        load_reference(con)
        report_unknown_codes(con)
        # the analysts' objects that read the inputs exist once the inputs do (a fresh database)
        created = ensure_analytics(con, replace=False)
        if created:
            catalog.apply_comments(con, created, own_transaction=False)
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")
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


def plan_day(con, as_of: date, mode: RunMode = RunMode.LIVE, *, settings: Settings | None = None,
             open_receivables: bool = True, range_days: RangeDays | None = None) -> DayResult:
    """Compute one day's state and record its actions in the ledger. Inputs must be loaded.

    A live day's actions are `planned` (to be dispatched); a backfill's or simulation's
    are recorded as `not_dispatched`: a document dated in the past is never sent. A live
    day before the latest day computed is refused (`RunRefused`). With `settings`, a
    live day first checks that payment data is fresh; if not, its actions are `held`.
    `open_receivables=False`: leave that table (the latest day's) to a later day of a range.
    `range_days`: a day of a range that is not live (`RangeDays`, its days in order): the same
    models run only for the customers whose results can differ from the day before, and the
    others' balances are carried (pipeline/warehouse/range_days.py).
    """
    mode = RunMode(mode)
    if mode is RunMode.LIVE:
        refuse_before_latest(con, as_of, what="Re-running the live day")
        # too many input rows quarantined (settings.ingestion): stop before anything is planned or sent
        stopped = quarantine_stop(con, settings.ingestion) if settings is not None else None
        if stopped:
            raise RunRefused(stopped)
    blocked = stale_payments(con, as_of, settings) if mode.sends and settings is not None else None
    if blocked:
        log.warning(blocked)
    # One transaction from the rewind to the run log: a crash (or kill) in between leaves the day as
    # the previous run recorded it, never rewound without its re-planned rows (which `dunning
    # dispatch` would then find nothing to send for).
    if range_days is not None and mode is RunMode.LIVE:
        raise ValueError("a live day is always computed whole: range_days is for backfills and simulations")
    con.execute("begin transaction")
    try:
        if range_days is None or range_days.rewinds(as_of):
            rewind_to(con, as_of)
        computed = range_days.plan(con, as_of) if range_days is not None else Computed.ALL
        seconds: dict[str, float] = {}
        warnings: list[str] = []
        if computed is Computed.NONE:  # nothing of anyone's can differ from the day before
            counts = {"cases_opened": 0, "cases_closed": 0, "actions": 0, "levels_skipped": 0}
        else:
            with range_days.restricted(con, computed) if range_days is not None else nullcontext():
                seconds = run_daily_models(con, as_of, live=mode.sends)
                warnings = waiting_contract_warnings(con, as_of)
            # a narrowed day's int_open_receivables holds its recomputed customers only
            counts = apply_day(con, as_of, mode.value, held=blocked is not None,
                               open_receivables=open_receivables and computed is Computed.ALL,
                               balances=range_days is None)
        if range_days is not None:
            range_days.after_day(con, as_of, computed)
            if open_receivables and computed is not Computed.ALL:
                range_days.write_open_receivables(con, as_of)
        run_number = con.execute(
            "select coalesce(max(run_number), 0) + 1 from run_log where as_of = ?", [as_of]
        ).fetchall()[0][0]
        con.execute(
            """insert into run_log (as_of, run_number, mode, cases_opened, cases_closed, actions_planned,
                                    levels_skipped, documents_sent, dispatch_blocked)
               values (?, ?, ?, ?, ?, ?, ?, 0, ?)""",
            [as_of, run_number, mode.value, counts["cases_opened"],
             counts["cases_closed"], counts["actions"], counts["levels_skipped"], blocked],
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    for warning in warnings:
        log.warning(warning)
    return DayResult(as_of, documents_written=0, model_seconds=seconds, dispatch_blocked=blocked,
                     warnings=warnings, computed=computed,
                     customers_computed=range_days.recomputed if range_days is not None else None, **counts)


def waiting_contract_warnings(con, as_of: date) -> list[str]:
    """One line per policy whose contracts wait for a version in force (int_waiting_contracts)."""
    rows = con.execute("""select policy_id, first_version_on, count(*), list(contract_id order by contract_id)[1:5]
                          from int_waiting_contracts group by all order by policy_id""").fetchall()
    out = []
    for policy_id, first_on, count, sample in rows:
        until = f"until its first version takes effect on {first_on}" if first_on else "(no version in force)"
        more = f" and {count - len(sample)} more" if count > len(sample) else ""
        out.append(f"{count} contract(s) name policy {policy_id}, which has no version in force on {as_of}: "
                   f"not dunned {until} ({', '.join(sample)}{more}); an explicit policy never falls back to "
                   "routing rules or the default")
    return out


def dispatch_day(con, as_of: date, settings: Settings, result: DayResult | None = None) -> int:
    """Render and deliver every live action still planned up to `as_of`; returns documents written.

    Sends nothing while today's run was blocked by the fresh-data gate, and refuses to send from a
    state that breaks its promises (`SendRefused`, `refuse_broken_state`).
    """
    from pipeline.delivery.dispatch import dispatch  # rendering libraries load only when used

    blocked = dispatch_blocked(con, as_of)
    if blocked:
        log.warning("dispatch skipped: %s", blocked)
        return 0
    refuse_broken_state(con, as_of)
    summary = dispatch(con, as_of, settings)
    if result is not None:
        result.dispatch = summary
    record_documents(con, as_of, summary.rendered)
    return summary.rendered


def dispatch_blocked(con, as_of: date) -> str | None:
    """Why the day's latest run may send nothing (the fresh-data gate), or None."""
    blocked = con.execute(
        "select dispatch_blocked from run_log where as_of = ? order by run_number desc limit 1", [as_of]
    ).fetchall()
    return blocked[0][0] if blocked else None


def record_documents(con, as_of: date, written: int) -> None:
    """Count the documents a dispatch wrote on the day's latest run."""
    con.execute(
        """update run_log set documents_sent = documents_sent + ?
           where as_of = ? and run_number = (select max(run_number) from run_log where as_of = ?)""",
        [written, as_of, as_of],
    )


def publish_day(con, settings: Settings, as_of: date) -> Path | None:
    """Column comments and the analysts' read-only copy; the last step of every run.

    The copy is stamped with `as_of`, or with the latest day when `as_of` was never run
    (a `dunning dispatch` for another day); nothing is published before the first run.
    """
    catalog.apply_comments(con)
    if latest_day(con) is None:
        return None
    recorded = con.execute("select count(*) from run_log where as_of = ?", [as_of]).fetchall()[0][0]
    return publish(con, settings, as_of if recorded else None)  # pipeline/reporting/publish.py


def run_day(con, as_of: date, settings: Settings, *, send: bool = True, publish_copy: bool = True) -> DayResult:
    """One live day in the one order: plan -> dispatch (unless `send=False`) -> publish.

    Without sending, the day's documents stay `planned` for `dunning dispatch` or the
    next live day. `publish_copy=False`: a range publishes once, after its last day.
    """
    result = plan_day(con, as_of, RunMode.LIVE, settings=settings)
    if send and not result.dispatch_blocked:
        result.documents_written = dispatch_day(con, as_of, settings, result)
    if publish_copy:
        publish_day(con, settings, as_of)
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
    mode: RunMode = RunMode.LIVE,
    send: bool = True,
    publish_copy: bool | None = None,
    on_day: Callable[[DayResult], None] | None = None,
) -> list[DayResult]:
    """Run days in date order with one database connection and one ingestion.

    A live range publishes the analysts' copy once, after its last day. `mode=SIMULATE`
    records the days without ever sending and publishes nothing (scenarios, test worlds);
    a backfill of past days is `pipeline.engine.backfill.backfill`, which also reports the differences.
    A range that is not live computes each day from the day before and that day's changes
    (`RangeDays`); `open_receivables` then holds the last day's.
    """
    mode = RunMode(mode)
    if publish_copy is None:
        publish_copy = mode is RunMode.LIVE
    results = []
    if mode is RunMode.LIVE:
        for day in days(start, end):
            result = run_day(con, day, settings, send=send, publish_copy=False)
            results.append(result)
            if on_day:
                on_day(result)
    else:
        results = run_days(con, start, end, mode, settings=settings, on_day=on_day)
    if publish_copy:
        publish_day(con, settings, end)
    return results


def run_days(con, start: date, end: date, mode: RunMode, *, settings: Settings | None = None,
             on_day: Callable[[DayResult], None] | None = None) -> list[DayResult]:
    """Plan the days of a range that is not live, in order, each from the day before plus its changes
    (`RangeDays`, pipeline/warehouse/range_days.py). Inputs, schema and forced versions in place."""
    mode = RunMode(mode)
    if mode is RunMode.LIVE:
        raise ValueError("live days are run one by one (run_day): each is computed whole and dispatched")
    results = []
    range_days = RangeDays.begin(con, start, end)
    try:
        for day in days(start, end):
            result = plan_day(con, day, mode, settings=settings, open_receivables=day == end,
                              range_days=range_days)
            results.append(result)
            if on_day:
                on_day(result)
    finally:  # a range that stops early still writes the contract balances of the days it committed
        range_days.close(con, completed=results[-1].as_of if results else None)
    return results
