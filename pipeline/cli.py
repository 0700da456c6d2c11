"""`dunning`: the command line of the pipeline (typer + rich).

Every command takes its dates as parameters; the only place the calendar is
read is the default of `demo --end`, printed so the run can be repeated.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Optional
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from rich.text import Text

from pipeline.warehouse import catalog
from pipeline.reporting import summary as report
from pipeline.engine import run as pipeline_run
from pipeline.config.settings import PROJECT_ROOT, Settings

app = typer.Typer(help="Dunning pipeline: overdue receivables to reminders, exactly once.", no_args_is_help=True)
console = Console()
BUSINESS_TIMEZONE = "Europe/Berlin"

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="Project config (default: dunning.yaml).")]
DateOpt = Annotated[datetime, typer.Option(formats=["%Y-%m-%d"])]


# Exit codes of `dunning run` and `dunning dispatch` (README, "Exit codes"): 0 done; 1 nothing sent
# (`dispatch` on a day the fresh-data gate held); 2 refused, settings that cannot work, or a state
# that breaks a promise guarding sending (nothing sent); 3 done, but documents of this run failed or
# need review (listed, view dispatch_review); 4 another process is still sending a shard of the
# documents (this run sent nothing; run it again when that one has finished).
EXIT_SETTINGS = 2
EXIT_DOCUMENTS_FAILED = 3
EXIT_DISPATCH_BUSY = 4


def _dispatch_busy(exc: Exception) -> typer.Exit:
    console.print(Text(f"NOTHING SENT: {exc}", style="bold red"), soft_wrap=True)
    return typer.Exit(EXIT_DISPATCH_BUSY)


def _settings(config: Path | None) -> Settings:
    from pydantic import ValidationError

    try:
        return Settings.load(config)
    except ValidationError as exc:  # the settings hide input values: a URL may carry credentials
        console.print(Text(f"invalid settings: {exc}", style="bold red"), soft_wrap=True)
        raise typer.Exit(EXIT_SETTINGS) from None


def _lint_policy(settings: Settings) -> None:
    """The policy linter before a live day plans: warnings printed, an error stops the day (exit 2)."""
    from pipeline.config.policy import PolicyError
    from pipeline.config.policy_lint import PolicyLintError, before_a_live_day

    try:
        findings = before_a_live_day(settings, _read_only(settings.database))
    except PolicyError as exc:
        console.print(Text(str(exc), style="bold red"), soft_wrap=True)
        raise typer.Exit(EXIT_SETTINGS) from None
    except PolicyLintError as exc:
        _print_findings(exc.findings)
        console.print(Text("nothing planned or sent: fix the policy file first", style="bold red"))
        raise typer.Exit(EXIT_SETTINGS) from None
    _print_findings(findings)


def _print_findings(findings) -> None:
    for finding in findings:
        console.print(Text(str(finding), style="bold red" if finding.severity == "error" else "yellow"),
                      soft_wrap=True)


def _read_only(database: Path):
    """A read-only connection to the pipeline's database for a look before the run, or None."""
    import duckdb

    if not Path(database).is_file():
        return None
    try:
        return duckdb.connect(str(database), read_only=True)
    except duckdb.Error:
        return None  # locked by a running pipeline: the checks that need it are skipped


def _check_channels(settings: Settings) -> None:
    """Every configured channel usable, before anything is planned or marked; else exit 2."""
    from pipeline.delivery.channels.setup import ChannelConfigError, check_channels

    try:
        check_channels(settings)
    except ChannelConfigError as exc:
        console.print(Text(f"NOTHING SENT: {exc}", style="bold red"), soft_wrap=True)
        raise typer.Exit(EXIT_SETTINGS) from None


def _exit_if_documents_failed(summary) -> None:
    """Exit 3 if a document of this dispatch failed or needs review (the others went out)."""
    if summary is not None and not summary.clean:
        console.print(Text(f"{summary.failed} document(s) failed and {summary.needs_review} need review in this "
                           "run; every other document went out (see the list above and view dispatch_review)",
                           style="bold yellow"), soft_wrap=True)
        raise typer.Exit(EXIT_DOCUMENTS_FAILED)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


def _run_days(settings: Settings, start: date, end: date, *, send: bool) -> list[pipeline_run.DayResult]:
    """Live days in order (plan -> dispatch -> publish); a day before the latest one is refused."""
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        _print_ingest(_load_inputs(con, settings))
        with _progress() as progress:
            task = progress.add_task("days", total=(end - start).days + 1)

            def on_day(r: pipeline_run.DayResult) -> None:
                progress.update(task, advance=1, description=f"{r.as_of}  actions {r.actions:>4}  docs {r.documents_written:>4}")

            from pipeline.delivery.channels.setup import ChannelConfigError
            from pipeline.delivery.shards import DispatchBusy

            try:
                return pipeline_run.run_range(con, start, end, settings, send=send, on_day=on_day)
            except pipeline_run.RunRefused as exc:
                progress.stop()
                console.print(Text(str(exc), style="bold red"), soft_wrap=True)
                raise typer.Exit(2) from None
            except pipeline_run.SendRefused as exc:  # the day is planned; nothing of it is sent
                progress.stop()
                console.print(Text(str(exc).replace("Nothing sent", "NOTHING SENT", 1), style="bold red"),
                              soft_wrap=True)
                raise typer.Exit(2) from None
            except ChannelConfigError as exc:  # checked before anything is marked sending
                progress.stop()
                console.print(Text(f"NOTHING SENT: {exc}", style="bold red"), soft_wrap=True)
                raise typer.Exit(EXIT_SETTINGS) from None
            except DispatchBusy as exc:  # the day is planned; another process sends documents
                progress.stop()
                raise _dispatch_busy(exc) from None


def _load_inputs(con, settings: Settings, *, stopped: str = "NOTHING PLANNED OR SENT"):
    """Ingest the configured files; returns the reports. A whole input file that is unusable stops the
    command with its message (naming the file) and exit code 2, before anything is computed."""
    from pipeline.warehouse.ingest import IngestError

    try:
        return pipeline_run.load_inputs(con, settings)[1]
    except IngestError as exc:
        console.print(Text(f"{stopped}: {exc}", style="bold red"), soft_wrap=True)
        raise typer.Exit(2) from None


def _print_ingest(reports) -> None:
    table = Table("table", "read", "loaded", "quarantined", title="Ingestion")
    for r in reports:
        table.add_row(r.table, str(r.rows_read), str(r.rows_loaded), str(r.rows_quarantined))
    console.print(table)


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Folder to write the sample files to.")] = Path("var/sample"),
    end: DateOpt = datetime(2026, 6, 30),
    contracts: int = 400,
    seed: int = 7,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
    bad_rows: bool = False,
) -> None:
    """Generate a deterministic sample company (customers, contracts, invoices, payments, suspensions)."""
    from bench.sample_company import generate_company

    counts = generate_company(out, end=end.date(), contracts=contracts, seed=seed, fmt=fmt, bad_rows=bad_rows)
    console.print(f"wrote {counts} to {out}")


@app.command()
def run(
    as_of: Annotated[datetime, typer.Option("--as-of", formats=["%Y-%m-%d"], help="The day to run.")],
    dispatch: Annotated[bool, typer.Option(
        help="Send the day's documents now; with --no-dispatch they stay planned for `dunning dispatch`.")] = True,
    config: ConfigOpt = None,
) -> None:
    """Run one live day: ingest, compute, record actions, dispatch them, publish the analysts' copy.

    The latest day may be run again (nothing already sent is sent twice); an earlier day is
    refused, naming the backfill that recomputes it and every later day. Exit codes: 0 done;
    2 refused, or a channel's settings cannot work (nothing planned or sent), or the planned
    state breaks a promise that guards sending (planned, nothing sent); 3 done, but
    documents of this run failed or need review (every other document went out); 4 planned, but
    another process is still sending a shard of the documents (nothing sent by this run).
    """
    settings = _settings(config)
    if dispatch:
        _check_channels(settings)
    _lint_policy(settings)
    results = _run_days(settings, as_of.date(), as_of.date(), send=dispatch)
    r = results[-1]
    console.print(f"{r.as_of}: opened {r.cases_opened}, closed {r.cases_closed}, actions {r.actions}, "
                  f"skipped levels {r.levels_skipped}, documents {r.documents_written}")
    if r.dispatch is not None:
        console.print(f"{r.as_of}: {r.dispatch.line()}", soft_wrap=True, markup=False)
    if r.dispatch_blocked:
        console.print(Text(f"NOTHING SENT: {r.dispatch_blocked}", style="bold red"))
    _print_review(settings)
    _exit_if_documents_failed(r.dispatch)


def _print_review(settings: Settings) -> None:
    """List the actions a person must look at (failed or of unknown outcome), if any."""
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        rows = con.execute("select action_key, channel, status, attempts, reason, last_error "
                           "from dispatch_review").fetchall()
    if not rows:
        return
    # fold, never cut: the key is what `dunning resolve` needs, the error what to fix
    table = Table(*(Column(name, overflow="fold") for name in ("action", "channel", "status", "attempts", "reason",
                                                               "last error")),
                  title=f"{len(rows)} action(s) to review (view dispatch_review)", title_style="bold yellow")
    for row in rows:
        # Text(): keys and errors come from the data (brackets are not markup); control characters
        # (a NUL in an id) are shown escaped, not sent to the terminal
        table.add_row(*(Text("" if v is None else "".join(
            c if c.isprintable() else ascii(c)[1:-1] for c in str(v))) for v in row))
    console.print(table)


@app.command()
def dispatch(
    as_of: Annotated[datetime, typer.Option("--as-of", formats=["%Y-%m-%d"], help="The run's day.")],
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="First send every failed document up to the day back to be rendered and sent "
                               "again (after fixing the data, template or channel that made it fail).")] = False,
    shards: Annotated[Optional[int], typer.Option(
        "--shards", min=1, max=4096, help="Render and send in this many shards (default: dispatch.shards); "
                                          "the result is the same for any number (docs/scaling.md).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Deliver what is due without recomputing: recover a crashed run, send rendered and retry failed actions.

    Exit codes: 0 done; 1 nothing sent (the fresh-data gate held the day); 2 a channel's settings cannot
    work, or the state breaks its promises (nothing sent); 3 done, but documents of this run failed or
    need review; 4 another process is still sending a shard of the documents (nothing sent by this run).
    """
    from pipeline.delivery.dispatch import dispatch as dispatch_pending, retry_failed as send_back
    from pipeline.delivery.shards import DispatchBusy

    settings = _settings(config)
    _check_channels(settings)
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        blocked = con.execute("select dispatch_blocked from run_log where as_of = ? order by run_number desc "
                              "limit 1", [as_of.date()]).fetchall()
        if blocked and blocked[0][0]:
            console.print(Text(f"NOTHING SENT: {blocked[0][0]}", style="bold red"))
            raise typer.Exit(1)
        try:
            pipeline_run.refuse_broken_state(con, as_of.date())
        except pipeline_run.SendRefused as exc:
            console.print(Text(str(exc).replace("Nothing sent", "NOTHING SENT", 1), style="bold red"),
                          soft_wrap=True)
            raise typer.Exit(2) from None
        if retry_failed:
            keys = send_back(con, as_of.date())
            console.print(f"{len(keys)} failed document(s) sent back to be rendered and sent again")
        try:
            summary = dispatch_pending(con, as_of.date(), settings, shards=shards)
        except DispatchBusy as exc:
            raise _dispatch_busy(exc) from None
        pipeline_run.publish_day(con, settings, as_of.date())  # the analysts see the new statuses
    console.print(f"{as_of.date()}: {summary.line()}", soft_wrap=True, markup=False)
    _print_review(settings)
    _exit_if_documents_failed(summary)


@app.command()
def backfill(
    start: Annotated[datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="First day.")],
    end: Annotated[datetime, typer.Option("--to", formats=["%Y-%m-%d"], help="Last day.")],
    catch_up: Annotated[str, typer.Option(
        "--catch-up", help="How the next live days treat levels this backfill records but nobody received: "
                           "none (count them as done), highest (send the highest once), each (one per day).")],
    policy_version: Annotated[Optional[str], typer.Option(
        "--policy-version", help="Recompute under this version instead of the versions in force.")] = None,
    report: Annotated[Optional[Path], typer.Option(
        help="Also write the complete difference report: Markdown here, every difference as CSV beside it "
             "(report.md -> report.csv).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Recompute past days in order (never sending), report what differs from the ledger."""
    from pipeline.engine.backfill import (BackfillError, backfill as run_backfill, differences_markdown,
                                          report_paths, write_report)

    settings = _settings(config)
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        _print_ingest(_load_inputs(con, settings))
        with _day_progress((end.date() - start.date()).days + 1) as on_day:
            try:
                result = run_backfill(con, start.date(), end.date(), settings, catch_up=catch_up,
                                      policy_version=policy_version, on_day=on_day)
            except BackfillError as exc:
                console.print(Text(str(exc), style="red"), soft_wrap=True)
                raise typer.Exit(2) from None
        # the terminal gets the first rows; the report file gets every one
        where = " and ".join(str(p) for p in report_paths(report)) if report else None
        markdown = differences_markdown(con, result.backfill_id, limit=REPORT_ROWS_PRINTED, where=where)
        written = write_report(con, result.backfill_id, report) if report else ()
        pipeline_run.publish_day(con, settings, end.date())  # the analysts' copy follows every run
    console.print(f"{len(result.days)} days, {sum(r.actions for r in result.days)} actions, nothing sent; "
                  f"catch-up for the next live days: {catch_up}", soft_wrap=True, markup=False, highlight=False)
    _print_report(markdown)
    for path in written:
        console.print(f"report: {path}", soft_wrap=True, markup=False, highlight=False)


@app.command()
def simulate(
    candidate: Annotated[Path, typer.Option("--policy", help="The candidate policy file.")],
    start: Annotated[datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="First day.")],
    end: Annotated[datetime, typer.Option("--to", formats=["%Y-%m-%d"], help="Last day.")],
    name: Annotated[Optional[str], typer.Option(help="Schema name suffix (default: the file name).")] = None,
    paid_within: Annotated[int, typer.Option(help="Days after a level in which payments count for it.")] = 14,
    out: Annotated[Optional[Path], typer.Option(
        help="Folder for the report: Markdown, HTML, and every affected customer, case and action as CSV and "
             "Parquet (default: reports_dir).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Run a candidate policy over past days in its own schema and compare with what happened.

    Documents, letters, postage, fees, contracts ended and the customers affected are what the candidate
    does to the same data; payments after a level are those customers really made under the actual policy
    (not a prediction).
    """
    from pipeline.config.policy import PolicyError
    from pipeline.engine.simulate import markdown, simulate as run_simulation, write_report

    settings = _settings(config)
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        _load_inputs(con, settings, stopped="NOTHING SIMULATED")
        with _day_progress((end.date() - start.date()).days + 1) as on_day:
            try:
                sim = run_simulation(con, settings, candidate, start.date(), end.date(), name=name,
                                     paid_within_days=paid_within, on_day=on_day)
            except PolicyError as exc:
                console.print(Text(str(exc), style="red"), soft_wrap=True)
                raise typer.Exit(2) from None
    written = write_report(sim, out or Path(settings.reports_dir))
    _print_report(markdown(sim, limit=REPORT_ROWS_PRINTED, where=f"{written[0]} and the CSV files beside it"))
    console.print(f"schema {sim.schema} ({sim.seconds:.1f} s)", soft_wrap=True, markup=False, highlight=False)
    for path in written:
        console.print(f"report: {path}", soft_wrap=True, markup=False, highlight=False)


# Reports printed by backfill, simulate and policy diff: at most this many rows per list on the
# terminal (the report files hold every one), as plain Markdown: the lines never depend on the
# terminal's width and are never wrapped (a path stays on one line when piped).
REPORT_ROWS_PRINTED = 30


def _print_report(markdown: str) -> None:
    for line in markdown.rstrip("\n").split("\n"):
        console.print(line, soft_wrap=True, markup=False, highlight=False, emoji=False)


@contextmanager
def _day_progress(total: int, label: str = "days"):
    """A progress bar over the days of a range on a terminal; nothing when piped (no bar in a log).
    Yields the `on_day` callback, which may take a description prefix: `on_day(result, prefix)`."""
    if not console.is_terminal:
        yield lambda result, prefix="": None
        return
    with _progress() as progress:
        task = progress.add_task(label, total=total)
        yield lambda result, prefix="": progress.update(task, advance=1, description=f"{prefix}{result.as_of}")


policy_app = typer.Typer(help="Work with policy files.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

@policy_app.command("validate")
def policy_validate(
    files: Annotated[list[Path], typer.Argument(help="Policy files to check.")],
    config: ConfigOpt = None,
) -> None:
    """Validate and lint policy files: errors and warnings name the file, the key and the level.

    Templates are looked up in the configured template folder. With --config, the database it names
    is read too: a new version taking effect before the last day computed is a warning with the open
    cases it concerns. Exit 1 on any error.
    """
    from pipeline.config.policy import PolicyError, load_policy_file
    from pipeline.config.policy_lint import lint

    settings = _settings(config)
    con = _read_only(settings.database) if config is not None else None
    failed = False
    try:
        for path in files:
            try:
                policies = load_policy_file(path)
            except PolicyError as exc:
                console.print(Text(str(exc), style="red"), soft_wrap=True)
                failed = True
                continue
            findings = lint(path, policies, settings.templates, con)
            for finding in findings:
                console.print(Text(str(finding), style="red" if finding.severity == "error" else "yellow"),
                              soft_wrap=True)
            if any(f.severity == "error" for f in findings):
                failed = True
                continue
            versions = ", ".join(p.version_id(v) for p in policies.policies for v in p.versions)
            warned = sum(f.severity == "warning" for f in findings)
            console.print(f"{path}: valid ({versions})" + (f", {_plural(warned, 'warning')}" if warned else ""),
                          soft_wrap=True, markup=False)
    finally:
        if con is not None:
            con.close()
    if failed:
        raise typer.Exit(1)


experiment_app = typer.Typer(help="Champion/challenger experiments.", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")


@experiment_app.command("report")
def experiment_report_cmd(
    as_of: Annotated[Optional[datetime], typer.Option("--as-of", formats=["%Y-%m-%d"],
                                                      help="Day of the figures (default: the last day run).")] = None,
    days: Annotated[int, typer.Option("--days", min=1, max=365,
                                      help="Cash counts when booked within this many days after a level.")] = 30,
    letter_cost: Annotated[str, typer.Option("--letter-cost", help="Cost of one letter, e.g. 0.95.")] = "0",
    out: Annotated[Optional[Path], typer.Option("--out", help="Also write the Markdown report here.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Per experiment, arm and level: cases, documents, letters, fees, cash recovered within N days,
    time to payment and cost per unit recovered, with 95 % intervals and significance."""
    from decimal import Decimal, InvalidOperation

    from pipeline.durable_files import atomic_write
    from pipeline.reporting.experiments import experiment_report, format_report

    try:
        cost = Decimal(letter_cost)
    except InvalidOperation:
        console.print(Text(f"--letter-cost: {letter_cost!r} is not an amount like 0.95", style="bold red"))
        raise typer.Exit(2) from None
    settings = _settings(config)
    con = _read_only(settings.database)
    if con is None:
        console.print(Text(f"no readable database at {settings.database}: run the pipeline first", style="bold red"),
                      soft_wrap=True)
        raise typer.Exit(1)
    try:
        day = as_of.date() if as_of else con.execute("select max(as_of) from run_log").fetchall()[0][0]
        if day is None:
            console.print(Text("no day has been computed yet", style="bold red"))
            raise typer.Exit(1)
        text = format_report(experiment_report(con, day, days), day, days, cost)
    finally:
        con.close()
    if out is not None:
        atomic_write(out, text.encode("utf-8"), fsync=True)
    print(text, end="" if text.endswith("\n") else "\n")


@app.command()
def explain(
    case_id: Annotated[str, typer.Argument(help="Case id, e.g. ct-CT-00000005-20260825.")],
    as_of: Annotated[Optional[datetime], typer.Option("--as-of", formats=["%Y-%m-%d"],
                                                      help="Day to explain (default: the last day run).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Why a case is where it is: receivable, overdue amount, policy, level, suspensions, next action."""
    from pipeline.reporting.explain import main as explain_main

    raise typer.Exit(explain_main(_settings(config).database, case_id, as_of.date() if as_of else None))


@app.command("test-policy")
def test_policy(scenarios: Annotated[list[Path], typer.Argument(help="Scenario files or folders of them.")]) -> None:
    """Run policy scenarios through the real pipeline and report every difference."""
    from pipeline.scenarios.runner import main as run_scenarios_main

    raise typer.Exit(run_scenarios_main(scenarios))


@policy_app.command("diff")
def policy_diff(
    old: Annotated[Path, typer.Argument(help="Policy file in force now.")],
    new: Annotated[Path, typer.Argument(help="Candidate policy file.")],
    days: Annotated[Optional[int], typer.Option(
        help="Impact over the last DAYS days computed in the database (default 30).")] = None,
    start: Annotated[Optional[datetime], typer.Option(
        "--from", formats=["%Y-%m-%d"], help="Impact from this day (with --to) instead of the last days.")] = None,
    end: Annotated[Optional[datetime], typer.Option(
        "--to", formats=["%Y-%m-%d"], help="Last day of the impact (with --from).")] = None,
    impact: Annotated[bool, typer.Option(
        help="Run both files over past days and report the impact (--no-impact: the changes only).")] = True,
    report: Annotated[Optional[Path], typer.Option(
        help="The Markdown report (default: reports_dir/policy-diff-FROM-TO.md); the affected customers, "
             "cases, actions and the levels as CSV and Parquet beside it.")] = None,
    config: ConfigOpt = None,
) -> None:
    """What changes between two policy files, which open cases keep a version the new file drops, and the
    impact: both files through the daily models over past days, in work schemas (the live tables are not
    touched): per level and currency documents, letters, postage, fees, contracts ended and open cases, and
    every customer and case affected. Exit 2 if the impact cannot be computed as asked."""
    from pipeline.config import policy_diff as pd
    from pipeline.config.policy import PolicyError, load_policy_file

    settings = _settings(config)
    try:
        old_file, new_file = load_policy_file(old), load_policy_file(new)
        lines = pd.main(old, new, settings.database)
    except PolicyError as exc:
        console.print(Text(str(exc), style="red"), soft_wrap=True)
        raise typer.Exit(1) from None
    for line in lines:
        console.print(line, soft_wrap=True, markup=False, highlight=False)
    if not impact:
        return
    if (start is None) != (end is None) or (start is not None and days is not None):
        console.print(Text("give --from and --to together, or --days, not both", style="red"))
        raise typer.Exit(2)
    if start is not None:
        first, last = start.date(), end.date()
        if last < first:
            console.print(Text(f"--to {last} is before --from {first}", style="red"))
            raise typer.Exit(2)
    else:
        latest = pd.latest_day(settings.database)
        if latest is None:
            message = (f"impact: no day computed yet in {settings.database}; give --from and --to to choose "
                       "the days")
            console.print(message, soft_wrap=True, markup=False, highlight=False)
            if days is not None:  # asked for explicitly: cannot be done
                raise typer.Exit(2)
            return
        try:
            first, last = pd.last_days(latest, days if days is not None else pd.DEFAULT_DAYS)
        except ValueError as exc:
            console.print(Text(str(exc), style="red"))
            raise typer.Exit(2) from None
    from pipeline.warehouse.ingest import IngestError

    d = pd.diff(old_file, new_file)
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        try:
            pipeline_run.load_inputs(con, settings)
        except (IngestError, PolicyError) as exc:  # the configured inputs or policy file are unusable
            console.print(Text(f"impact not computed: {exc}", style="bold red"), soft_wrap=True)
            raise typer.Exit(2) from None
        with _day_progress(2 * ((last - first).days + 1)) as on_day:
            result = pd.impact(con, settings, old_file, new_file, first, last,
                               on_day=lambda schema, r: on_day(r, f"{schema} "))
    notes = pd.range_notes(d, first, last)
    path = report or Path(settings.reports_dir) / f"policy-diff-{first}-{last}.md"
    written = pd.write_report(path, pd.markdown(old, new, lines, result, notes), result)
    console.print("")
    _print_report(pd.impact_markdown(result, notes, limit=REPORT_ROWS_PRINTED,
                                     where=f"{path} and the CSV files beside it"))
    for p in written:
        console.print(f"report: {p}", soft_wrap=True, markup=False, highlight=False)


@app.command()
def confirm(
    action_key: Annotated[str, typer.Argument(help="Key of the prepared manual document.")],
    on: Annotated[datetime, typer.Option("--on", formats=["%Y-%m-%d"], help="Day it was sent.")],
    config: ConfigOpt = None,
) -> None:
    """Record that a manual document was sent; later levels of its case wait for this."""
    from pipeline.warehouse.state import ConfirmError, confirm_manual

    settings = _settings(config)
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        try:
            confirm_manual(con, action_key, on.date())
        except ConfirmError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    console.print(f"{action_key}: sent on {on.date()}")


@app.command()
def resolve(
    action_key: Annotated[str, typer.Argument(help="Key of an action listed in dispatch_review.")],
    outcome: Annotated[str, typer.Option("--as", help="delivered (it did arrive) or resend.")],
    on: Annotated[datetime, typer.Option("--on", formats=["%Y-%m-%d"], help="Day of the decision.")],
    config: ConfigOpt = None,
) -> None:
    """Settle an action in review after checking the channel: delivered, or send it again."""
    from pipeline.warehouse.state import ConfirmError, resolve_review

    settings = _settings(config)
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        try:
            resolve_review(con, action_key, outcome, on.date())
        except ConfirmError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    console.print(f"{action_key}: {'sent' if outcome == 'delivered' else 'to be sent again by the next dispatch'}")


@app.command()
def demo(
    end: Annotated[Optional[datetime], typer.Option(formats=["%Y-%m-%d"], help="Last day (default: today).")] = None,
    days: int = 90,
    contracts: int = 400,
    config: ConfigOpt = None,
) -> None:
    """Generate the sample company and run its last DAYS days in order, from a fresh database."""
    from bench.sample_company import generate_company

    settings = _settings(config)
    last = end.date() if end else datetime.now(ZoneInfo(BUSINESS_TIMEZONE)).date()
    first = date.fromordinal(last.toordinal() - days + 1)
    console.print(f"[bold]Demo[/bold]: sample company with {contracts} contracts, days {first} to {last}")
    started = time.perf_counter()
    for path in (settings.database, Path(f"{settings.database}.wal")):
        path.unlink(missing_ok=True)
    shutil.rmtree(settings.outbox, ignore_errors=True)
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    generate_company(settings.data_dir, end=last, contracts=contracts, bad_rows=True)
    _run_days(settings, first, last, send=True)
    _print_summary(settings, last)
    console.print(f"daily report: {_write_daily_report(settings, last)[0]} (and report.pdf)", soft_wrap=True)
    console.print(f"done in {time.perf_counter() - started:.1f} s")


def _print_summary(settings: Settings, as_of: date) -> None:
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        levels = report.open_cases_per_level(con)
        currencies = report.overdue_per_currency(con, as_of)
        docs = report.documents_written(con)
        kinds = ", ".join(f"{kind} {n}" for kind, n in report.documents_per_kind(con))
        quarantined = con.execute("select count(*) from quarantine").fetchall()[0][0]
    t = Table("policy", "level", "open cases", title=f"Open cases per level on {as_of}")
    for policy, lv, name, n in levels:
        t.add_row(policy, f"{lv} {name}", str(n))
    console.print(t)
    t = Table("currency", "contracts overdue", "overdue", "open", title="Overdue amounts")
    for ccy, n, overdue, open_ in currencies:
        t.add_row(ccy, str(n), str(overdue), str(open_))
    console.print(t)
    console.print(f"documents written: {docs} ({kinds or 'none'}) in {settings.outbox}", soft_wrap=True)
    console.print(f"quarantined input rows: {quarantined} (see table quarantine)")
    console.print(f"DuckDB file: {settings.database}  (copy it before opening while a run is active)")
    console.print("Dagster UI: make dagster  (then open http://127.0.0.1:3000)")


@app.command()
def docs(out: Path = PROJECT_ROOT / "docs") -> None:
    """Write the table reference (docs/tables.md) and the policy file's JSON Schema."""
    from pipeline.config.policy import json_schema

    (out / "tables.md").write_text(catalog.markdown(), encoding="utf-8")
    (out / "policy.schema.json").write_text(json_schema(), encoding="utf-8")
    console.print(f"wrote {out / 'tables.md'} and {out / 'policy.schema.json'}")


@app.command()
def bench(
    contracts: Annotated[int, typer.Option(help="Contracts of the sample company (in WORKDIR/data).")] = 1_000_000,
    letters: Annotated[int, typer.Option(help="Letters rendered each way (fast and naive).")] = 1000,
    workers: Annotated[int, typer.Option(help="Render workers of the fast way.")] = 2,
    workdir: Path = Path("var/bench"),
    messages: Annotated[int, typer.Option(help="Emails sent by the bare transport and by the dispatch.")] = 1000,
    stage: Annotated[Optional[list[str]], typer.Option(
        "--stage", help="Only these stages (repeatable): generate, ctas_baseline, ingest, baseline_query, "
                        "sql_models, steady_day, render, email, scenario, simulate_small, simulate.")] = None,
    warmup_days: Annotated[int, typer.Option(
        help="Days of history backfilled (not measured) before the steady day.")] = 35,
    sim_contracts: Annotated[int, typer.Option(
        help="Contracts of the simulate_small stage (own data in WORKDIR/data-N); 0 leaves it out.")] = 100_000,
    main_simulate: Annotated[bool, typer.Option(
        "--main-simulate", help="Also simulate at --contracts (the 1M target; long, see above).")] = False,
    days: Annotated[int, typer.Option(help="Days of each simulation.")] = 90,
    separate_days: Annotated[int, typer.Option(
        help="Separate daily runs measured next to each simulation (its baseline).")] = 3,
    scenario_days: Annotated[int, typer.Option(help="Days of the one-invoice scenario.")] = 60,
) -> None:
    """Time each stage of a daily run at scale and check issue 17's targets, each against its baseline.

    Each stage runs in its own process. stdout: one JSON object per stage, then one with the
    summary rows; stderr: progress, then the summary table (measure, baseline, figure, ratio,
    target, pass/MISS), also written to WORKDIR/summary.md and summary.json.

    The default run (1M contracts): generate the sample company (about 1 min, once: the data is
    kept), bare CTAS and ingestion, the bare query, the first day's SQL models, a steady day after a
    35-day backfill (not measured), rendering, email, the one-invoice scenario, and a 90-day
    simulation at 100k contracts: 15-30 minutes on 2 cores, most of it the steady day's warm-up
    (--warmup-days) and the simulation; both shrink as ranges get faster. --main-simulate adds the
    90-day simulation at 1M (10-25 minutes today, target 5).
    Exit code 1 if a stage failed, 2 for an unknown stage.
    """
    import shlex
    import sys

    from bench import summary
    from bench.stages import run_benchmark

    err = Console(stderr=True)
    results: dict[str, dict] = {}
    try:
        for line in run_benchmark(workdir, contracts=contracts, letters=letters, workers=workers,
                                  messages=messages, stages=stage, main_simulate=main_simulate,
                                  sim_contracts=sim_contracts, days=days, separate_days=separate_days,
                                  warmup_days=warmup_days, scenario_days=scenario_days,
                                  log=lambda text: err.print(Text(text, style="bold"), soft_wrap=True)):
            results[line["stage"]] = line
            print(json.dumps(line), flush=True)
    except ValueError as exc:
        err.print(Text(str(exc), style="bold red"))
        raise typer.Exit(2) from None
    rows = summary.build_summary(results)
    print(json.dumps({"stage": "summary", "rows": summary.as_json(rows)}), flush=True)
    err.print(summary.rich_table(rows))
    written = summary.write(rows, workdir, command=shlex.join(["dunning", *sys.argv[1:]]), results=results)
    err.print(f"summary: {written} (and summary.json)", soft_wrap=True)
    if any("error" in line for line in results.values()):
        raise typer.Exit(1)


templates_app = typer.Typer(help="Work with template sets.", no_args_is_help=True)
app.add_typer(templates_app, name="templates")


@templates_app.command("check")
def templates_check(
    root: Annotated[Optional[Path], typer.Option(help="Folder of template sets (default: settings' templates).")] = None,
    set_names: Annotated[Optional[list[str]], typer.Option("--set", help="Only this set (repeatable).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Render every template with sample data (all kinds, locales, PDFs); exit 1 on any error."""
    from pipeline.delivery.templates_check import check_templates, list_templates

    root = root or _settings(config).templates
    problems = check_templates(root, set_names or None)
    checked = len(list_templates(root, set_names or None))
    if problems:
        table = Table("severity", "file", "line", "locale", "problem", title=f"Template problems in {root}")
        for p in problems:
            # Text(): Jinja messages contain brackets that rich would read as markup.
            table.add_row(Text(p.severity, style="red" if p.severity == "error" else "yellow"),
                          Text("/".join(part for part in (p.template_set, p.file) if part)),
                          str(p.line or ""), p.locale, Text(p.message))
        console.print(table)
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    if errors:
        console.print(f"[red]{checked} templates checked, {_plural(errors, 'error')}[/red]")
        raise typer.Exit(1)
    console.print(f"{checked} templates checked, no errors" + (f" ({_plural(warnings, 'warning')})" if warnings else ""))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@app.command()
def preview(
    policy: Annotated[str, typer.Option(help="Policy handle (or name).")],
    locale: Annotated[str, typer.Option(help="Customer locale, e.g. de_DE.")],
    level: Annotated[Optional[int], typer.Option(help="Level number, 1 for the first.")] = None,
    failure_type: Annotated[Optional[str], typer.Option(
        help="soft, hard or technical: preview a step of the failed-collection workflow (with --step).")] = None,
    step: Annotated[Optional[int], typer.Option(help="Step number for --failure-type, 1 for the first.")] = None,
    case: Annotated[Optional[str], typer.Option(help="Use this case's data (its latest reminder) instead of samples.")] = None,
    out: Annotated[Path, typer.Option(help="Folder to write the preview files to.")] = Path("var/preview"),
    config: ConfigOpt = None,
) -> None:
    """Write a level's (or a collection step's) email (.eml), letter (.pdf) and SMS (.txt) for review; sends nothing."""
    from jinja2 import TemplateError

    from pipeline.delivery.preview import preview as make_preview

    if (level is None) == (failure_type is None and step is None) or (failure_type is None) != (step is None):
        console.print(Text("give either --level N, or --failure-type TYPE with --step N", style="red"))
        raise typer.Exit(2)
    try:
        paths = make_preview(_settings(config), policy, level if level is not None else step, locale, out,
                             case_id=case, failure_type=failure_type)
    except (ValueError, TemplateError) as exc:  # bad arguments (PolicyError is one too) or template
        console.print(Text(str(exc), style="red"), soft_wrap=True)
        raise typer.Exit(2) from None
    for path in paths:
        console.print(str(path), soft_wrap=True, markup=False)


def _write_daily_report(settings: Settings, as_of: date) -> tuple[Path, Path]:
    from pipeline.warehouse.analytics import ensure_analytics
    from pipeline.reporting.daily_report import write_report

    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        created = ensure_analytics(con, replace=False)  # a database from before the analyst's macros
        if created:
            catalog.apply_comments(con, created)
        return write_report(con, as_of, settings)


@app.command("report")
def daily_report(
    as_of: Annotated[datetime, typer.Option("--as-of", formats=["%Y-%m-%d"], help="A day that was run.")],
    config: ConfigOpt = None,
) -> None:
    """Write the daily report (HTML and PDF with charts) for a day: aging, levels, recoveries, documents."""
    try:
        html, pdf = _write_daily_report(_settings(config), as_of.date())
    except ValueError as exc:  # not a day that was run
        console.print(Text(str(exc), style="red"), soft_wrap=True)
        raise typer.Exit(2) from None
    console.print(str(html), soft_wrap=True, markup=False)
    console.print(str(pdf), soft_wrap=True, markup=False)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    app()


if __name__ == "__main__":
    main()
