"""`dunning`: the command line of the pipeline (typer + rich).

Every command takes its dates as parameters; the only place the calendar is
read is the default of `demo --end`, printed so the run can be repeated.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Optional
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
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


def _settings(config: Path | None) -> Settings:
    return Settings.load(config)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


def _run_days(settings: Settings, start: date, end: date, *, send: bool) -> list[pipeline_run.DayResult]:
    """Live days in order (plan -> dispatch -> publish); a day before the latest one is refused."""
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        _, reports = pipeline_run.load_inputs(con, settings)
        _print_ingest(reports)
        with _progress() as progress:
            task = progress.add_task("days", total=(end - start).days + 1)

            def on_day(r: pipeline_run.DayResult) -> None:
                progress.update(task, advance=1, description=f"{r.as_of}  actions {r.actions:>4}  docs {r.documents_written:>4}")

            try:
                return pipeline_run.run_range(con, start, end, settings, send=send, on_day=on_day)
            except pipeline_run.RunRefused as exc:
                progress.stop()
                console.print(Text(str(exc), style="bold red"), soft_wrap=True)
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
    refused, naming the backfill that recomputes it and every later day.
    """
    settings = _settings(config)
    results = _run_days(settings, as_of.date(), as_of.date(), send=dispatch)
    r = results[-1]
    console.print(f"{r.as_of}: opened {r.cases_opened}, closed {r.cases_closed}, actions {r.actions}, "
                  f"skipped levels {r.levels_skipped}, documents {r.documents_written}")
    if r.dispatch_blocked:
        console.print(Text(f"NOTHING SENT: {r.dispatch_blocked}", style="bold red"))
    _print_review(settings)


def _print_review(settings: Settings) -> None:
    """List the actions a person must look at (failed or of unknown outcome), if any."""
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        rows = con.execute("select action_key, channel, status, attempts, reason, last_error "
                           "from dispatch_review").fetchall()
    if not rows:
        return
    table = Table("action", "channel", "status", "attempts", "reason", "last error",
                  title=f"{len(rows)} action(s) to review (view dispatch_review)", title_style="bold yellow")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


@app.command()
def dispatch(
    as_of: Annotated[datetime, typer.Option("--as-of", formats=["%Y-%m-%d"], help="The run's day.")],
    config: ConfigOpt = None,
) -> None:
    """Deliver what is due without recomputing: recover a crashed run, send rendered and retry failed actions."""
    from pipeline.delivery.dispatch import dispatch as dispatch_pending

    settings = _settings(config)
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        blocked = con.execute("select dispatch_blocked from run_log where as_of = ? order by run_number desc "
                              "limit 1", [as_of.date()]).fetchall()
        if blocked and blocked[0][0]:
            console.print(Text(f"NOTHING SENT: {blocked[0][0]}", style="bold red"))
            raise typer.Exit(1)
        summary = dispatch_pending(con, as_of.date(), settings)
        pipeline_run.publish_day(con, settings, as_of.date())  # the analysts see the new statuses
    console.print(f"{as_of.date()}: rendered {summary.rendered}, sent {summary.sent}, letters {summary.letters}, "
                  f"failed {summary.failed}, needs review {summary.needs_review}, recovered {summary.recovered}")
    _print_review(settings)


@app.command()
def backfill(
    start: Annotated[datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="First day.")],
    end: Annotated[datetime, typer.Option("--to", formats=["%Y-%m-%d"], help="Last day.")],
    catch_up: Annotated[str, typer.Option(
        "--catch-up", help="How the next live days treat levels this backfill records but nobody received: "
                           "none (count them as done), highest (send the highest once), each (one per day).")],
    policy_version: Annotated[Optional[str], typer.Option(
        "--policy-version", help="Recompute under this version instead of the versions in force.")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Also write the difference report (Markdown) here.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Recompute past days in order (never sending), report what differs from the ledger."""
    from pipeline.engine.backfill import BackfillError, backfill as run_backfill, differences_markdown

    settings = _settings(config)
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        _, reports = pipeline_run.load_inputs(con, settings)
        _print_ingest(reports)
        with _progress() as progress:
            task = progress.add_task("days", total=(end.date() - start.date()).days + 1)
            try:
                result = run_backfill(con, start.date(), end.date(), settings, catch_up=catch_up,
                                      policy_version=policy_version,
                                      on_day=lambda r: progress.update(task, advance=1, description=f"{r.as_of}"))
            except BackfillError as exc:
                console.print(f"[red]{exc}[/red]")
                raise typer.Exit(2) from None
        markdown = differences_markdown(con, result.backfill_id)
        pipeline_run.publish_day(con, settings, end.date())  # the analysts' copy follows every run
    console.print(f"{len(result.days)} days, {sum(r.actions for r in result.days)} actions, nothing sent; "
                  f"catch-up for the next live days: {catch_up}")
    console.print(markdown)
    if report:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(markdown, encoding="utf-8")


@app.command()
def simulate(
    candidate: Annotated[Path, typer.Option("--policy", help="The candidate policy file.")],
    start: Annotated[datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="First day.")],
    end: Annotated[datetime, typer.Option("--to", formats=["%Y-%m-%d"], help="Last day.")],
    name: Annotated[Optional[str], typer.Option(help="Schema name suffix (default: the file name).")] = None,
    paid_within: Annotated[int, typer.Option(help="Days after a level in which payments count for it.")] = 14,
    out: Annotated[Optional[Path], typer.Option(help="Folder for the HTML report (default: reports_dir).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Run a candidate policy over past days in its own schema and compare with what happened."""
    from pipeline.config.policy import PolicyError
    from pipeline.engine.simulate import markdown, simulate as run_simulation, write_html

    settings = _settings(config)
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        pipeline_run.load_inputs(con, settings)
        with _progress() as progress:
            task = progress.add_task("days", total=(end.date() - start.date()).days + 1)
            try:
                sim = run_simulation(con, settings, candidate, start.date(), end.date(), name=name,
                                     paid_within_days=paid_within,
                                     on_day=lambda r: progress.update(task, advance=1, description=f"{r.as_of}"))
            except PolicyError as exc:
                console.print(f"[red]{exc}[/red]")
                raise typer.Exit(2) from None
    console.print(markdown(sim))
    console.print(f"schema {sim.schema} ({sim.seconds:.1f} s); report: "
                  f"{write_html(sim, out or Path(settings.reports_dir))}")


policy_app = typer.Typer(help="Work with policy files.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

@policy_app.command("validate")
def policy_validate(files: Annotated[list[Path], typer.Argument(help="Policy files to check.")]) -> None:
    """Validate policy files; errors name the file, the key and what is allowed."""
    from pipeline.config.policy import PolicyError, load_policy_file

    failed = False
    for path in files:
        try:
            policies = load_policy_file(path)
        except PolicyError as exc:
            console.print(f"[red]{exc}[/red]", soft_wrap=True)
            failed = True
            continue
        versions = ", ".join(p.version_id(v) for p in policies.policies for v in p.versions)
        console.print(f"{path}: valid ({versions})", soft_wrap=True)
    if failed:
        raise typer.Exit(1)
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
    config: ConfigOpt = None,
) -> None:
    """What changes between two policy files, and which open cases keep a version the new file drops."""
    from pipeline.config.policy import PolicyError
    from pipeline.config.policy_diff import main as diff_main

    try:
        lines = diff_main(old, new, _settings(config).database)
    except PolicyError as exc:
        console.print(f"[red]{exc}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    for line in lines:
        console.print(line, soft_wrap=True, markup=False)


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
    t = Table("level", "open cases", title=f"Open cases per level on {as_of}")
    for lv, name, n in levels:
        t.add_row(f"{lv} {name}", str(n))
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
    contracts: int = 1_000_000,
    letters: int = 1000,
    workers: int = 2,
    workdir: Path = Path("var/bench"),
    messages: int = 1000,
    stage: Annotated[Optional[list[str]], typer.Option("--stage", help="Only these stages (repeatable).")] = None,
) -> None:
    """Time each stage of one daily run at scale (one JSON object per stage)."""
    from bench.stages import run_benchmark

    for line in run_benchmark(workdir, contracts=contracts, letters=letters, workers=workers, messages=messages,
                              stages=stage):
        print(json.dumps(line), flush=True)


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
