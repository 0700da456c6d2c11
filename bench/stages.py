"""`dunning bench`: time each stage of a daily run at realistic scale, and the targets of issue 17.

Each stage runs in its own process (`python -m bench.stages NAME WORKDIR ARGS_JSON`) so its
wall time and peak memory (max RSS) are its own. The process prints exactly one JSON line on
stdout (its result); its progress goes to stderr, which the parent leaves on the terminal, and
the product's log lines go to WORKDIR/logs/NAME.log. Baselines are measured in the same run on
the same files:
- `ctas_baseline`: a bare `create table as select * from read_parquet(...)`, what ingestion is
  compared with;
- `baseline_query`: one bare query computing, per contract, the oldest-first open balance and
  the oldest overdue due date (BASELINE_SQL), what the SQL models of a day are compared with.
  The two SQL stages below time it again in their own connection, just before and just after
  their day, and their ratio uses the faster of those two (`_measured_day`): a baseline from
  minutes earlier, under another load, made a 3.0x day look like 2.0x in one run. One pair of
  timings still varies by a fifth or more here (the same models on the same database: 2.14x to
  2.67x in six runs), so each stage times the day's models SQL_TRIALS times, the bare query
  between them, and reports the trial of the median ratio with every trial beside it.

Two days of SQL models, both live days on END over the same files:
- `sql_models`, the first day: plan_day(END) on a freshly ingested database, so all history
  appears on one day (about 580k cases opened at once at 1M contracts). No company lives it.
- `steady_day`, a day in the life: its own database is ingested and backfilled over the
  `warmup_days` days before END (unmeasured, `--catch-up none`), then plan_day(END) is
  measured in a new connection, as a daily run starts (and as the first day is measured).
  The warm-up's first day is such an all-at-once day; its cases take their next
  levels on fixed later days (the default policy: level 2 fourteen days after level 1, level 3
  fourteen after that), so the warm-up lasts 35 days by default and END sees every level in
  its ordinary daily rhythm. Measured at 100k contracts: 224 cases opened, 3,714 invoices
  and 2,134 payments booked, 1,959 actions (levels 1, 2 and 3 for 279, 273 and 376 cases),
  against 58,292 cases opened on the first day; about ten times that at 1M.
  The sample company normally starts contracts on days 1..28 only, so the 30th (END) issued
  no invoices; the bench generates with `any_start_day=True` (bench/sample_company.py), so
  contracts start on any day and END bills like any other day.

Issue 17's targets (bench/summary.py renders them, with pass/miss): the day's SQL models <= 2x
the bare query (first and steady day), rendering >= 3x the naive way, email dispatch within
1.5x of the bare SMTP transport, < 150 MiB per render worker, a 90-day simulation <= 30 s at
100k contracts (`simulate_small`, own data in WORKDIR/data-<n>) and <= 5 min at 1M (`simulate`,
the bench's own scale), and a one-invoice scenario of 60 days <= 3 s (`scenario`).
Figures go in notes and docs, never into test assertions.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Callable, Iterator

from bench.progress import Progress

END = date(2026, 6, 30)
# How often each SQL stage times the day's models (`_measured_day`); odd, so one trial is the median.
SQL_TRIALS = 3
# Generated data carries this tag in its marker: data of an older generator is made again.
DATA_SHAPE = "card-reason-codes"

BASELINE_SQL = """
create or replace temp table baseline as
with credits as (
    select contract_id, sum(amount) as credit
    from stg_payments where status = 'settled' and booked_on <= $as_of
    group by contract_id
),
receivables as (
    select contract_id, due_date, amount,
           sum(amount) over (partition by contract_id order by due_date, invoice_date, invoice_id
                             rows between unbounded preceding and current row) as cumulative
    from stg_invoices where invoice_date <= $as_of and amount > 0
)
select r.contract_id,
       sum(least(r.amount, greatest(r.cumulative - coalesce(c.credit, 0), 0))) as open_balance,
       min(r.due_date) filter (where r.cumulative > coalesce(c.credit, 0) and r.due_date < $as_of) as oldest_overdue
from receivables r left join credits c using (contract_id)
group by r.contract_id
"""

# The one-invoice scenario of `dunning test-policy` (the "3 s for 60 days").
SCENARIO_FIRST_DAY = date(2026, 3, 1)
SCENARIO_YAML = """\
name: one invoice, {days} day(s)
policy:
  policies:
    - handle: std
      default: true
      versions:
        - effective_from: 2020-01-01
          levels:
            - {{name: R1, timing: {{after: due_date, days: 7}}}}
            - {{name: R2, timing: {{after: previous_level, days: 14}}}}
inputs:
  customers: [{{customer_id: CU1}}]
  contracts:
    - {{contract_id: CT1}}
  invoices:
    - {{invoice_id: I1, contract_id: CT1, amount: "100.00", invoice_date: 2026-03-01, due_date: 2026-03-10}}
run: {{from: {first}, to: {last}}}
expect:
  actions:{actions}
"""
# what the policy does to it: R1 seven days after the due date, R2 fourteen days after R1
SCENARIO_ACTIONS = ((date(2026, 3, 17), 1), (date(2026, 3, 31), 2))

P: Progress = Progress("bench")  # replaced by the stage's own in _main


def _peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _settings(workdir: Path, database: str, data: str = "data"):
    from pipeline.config.settings import Settings

    return Settings.load(data_dir=workdir / data, database=workdir / database, outbox=workdir / "outbox")


def _fresh(path: Path) -> None:
    for stale in (path, Path(f"{path}.wal")):
        stale.unlink(missing_ok=True)


def _data_dir(contracts: int, main_contracts: int) -> str:
    """The bench's data folder is `data`; another scale has its own, `data-<n>`."""
    return "data" if contracts == main_contracts else f"data-{contracts}"


def _generate(workdir: Path, data: str, contracts: int) -> dict:
    from bench.sample_company import generate_company

    marker = workdir / data / f".generated-{contracts}-{DATA_SHAPE}"
    if marker.exists():
        P.say(f"{data}/ already holds {contracts:,} contracts: not generated again")
        return {"skipped": "data already generated", **json.loads(marker.read_text())}
    for old in (workdir / data).glob(".generated-*"):
        old.unlink()
    started = time.perf_counter()
    counts = generate_company(workdir / data, end=END, contracts=contracts, fmt="parquet", any_start_day=True,
                              progress=P.say)
    marker.write_text(json.dumps(counts))
    return {"seconds": round(time.perf_counter() - started, 2), **counts}


def stage_generate(workdir: Path, contracts: int) -> dict:
    return _generate(workdir, "data", contracts)


def stage_ctas_baseline(workdir: Path) -> dict:
    import duckdb

    db = workdir / "ctas.duckdb"
    _fresh(db)
    con = duckdb.connect(str(db))
    started = time.perf_counter()
    for name in ("customers", "contracts", "invoices", "payments", "suspensions"):
        P.say(f"create table {name}")
        con.execute(f"create table {name} as select * from read_parquet(?)",
                    [str(workdir / "data" / f"{name}.parquet")])
    seconds = time.perf_counter() - started
    con.close()
    db.unlink()
    return {"seconds": round(seconds, 2)}


def stage_ingest(workdir: Path) -> dict:
    from pipeline.engine import run as pipeline_run

    settings = _settings(workdir, "bench.duckdb")
    _fresh(settings.database)
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        P.say("ingesting the five tables into bench.duckdb")
        started = time.perf_counter()
        _, reports = pipeline_run.load_inputs(con, settings)
        seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "rows_loaded": sum(r.rows_loaded for r in reports),
            "rows_quarantined": sum(r.rows_quarantined for r in reports)}


def stage_baseline_query(workdir: Path) -> dict:
    import duckdb

    con = duckdb.connect(str(workdir / "bench.duckdb"))
    started = time.perf_counter()
    con.execute(BASELINE_SQL, {"as_of": END})
    seconds = time.perf_counter() - started
    rows = con.execute("select count(*) from baseline").fetchall()[0][0]
    con.close()
    return {"seconds": round(seconds, 2), "contracts": rows}


def _bare_query_seconds(con) -> float:
    """BASELINE_SQL timed in the stage's own connection, a moment from the day it is compared with.

    The `baseline_query` stage runs minutes earlier, in another process: on a shared machine
    the load changes in between and flatters or spoils the ratio (measured here: 4.59 s under
    load against 2.99 s on a quiet machine). The SQL stages therefore time the bare query again
    right before and right after their day and keep the faster of the two: the ratio errs
    against the models, never for them."""
    started = time.perf_counter()
    con.execute(BASELINE_SQL, {"as_of": END})
    seconds = time.perf_counter() - started
    con.execute("drop table if exists temp.main.baseline")
    return seconds


def _rehearsed_models_seconds(con) -> float:
    """The day's models as plan_day(END) runs them on a live day, in a transaction rolled back:
    the database is left as it was, so the day measured after it is the same day."""
    from pipeline.warehouse.sql_runner import run_daily_models

    con.execute("begin transaction")
    try:
        return sum(run_daily_models(con, END, live=True).values())
    finally:
        con.execute("rollback")


def _measured_day(con) -> dict:
    """The day's models timed SQL_TRIALS times, each between two timings of the bare query on the same
    connection: rehearsed (`_rehearsed_models_seconds`) and, the last time, plan_day(END), live, which
    the day's other figures describe. Reported: the trial of the median ratio, and every trial."""
    from pipeline.engine import run as pipeline_run

    bare = [_bare_query_seconds(con)]
    models = []
    for n in range(SQL_TRIALS - 1):
        P.say(f"rehearsal {n + 1}/{SQL_TRIALS - 1}: the day's models, rolled back")
        models.append(_rehearsed_models_seconds(con))
        bare.append(_bare_query_seconds(con))
    P.say("the day itself")
    started = time.perf_counter()
    result = pipeline_run.plan_day(con, END, pipeline_run.RunMode.LIVE)
    seconds = time.perf_counter() - started
    models.append(sum(result.model_seconds.values()))
    bare.append(_bare_query_seconds(con))
    trials = [{"models_seconds": round(m, 2), "bare_query_before_after": [round(bare[i], 2), round(bare[i + 1], 2)],
               "bare_query_seconds": round(min(bare[i], bare[i + 1]), 2)} for i, m in enumerate(models)]
    for trial in trials:
        trial["ratio"] = _ratio(trial["models_seconds"], trial["bare_query_seconds"])
    median = sorted(trials, key=lambda t: (t["ratio"] is None, t["ratio"] or 0))[(len(trials) - 1) // 2]
    return {**_day_figures(con, result, seconds), "seconds": median["models_seconds"],
            "bare_query_seconds": median["bare_query_seconds"],
            "bare_query_before_after": median["bare_query_before_after"], "trials": trials}


def _day_figures(con, result, seconds: float) -> dict:
    """What a measured day did: model seconds, cases, actions, and the bookings it saw."""
    channels = dict(con.execute("select channel, count(*) from action_ledger where executed_on = ? "
                                "group by channel order by channel", [result.as_of]).fetchall())
    levels = {f"L{lv}": n for lv, n in con.execute(
        "select level_no, count(distinct case_id) from action_ledger where executed_on = ? "
        "group by level_no order by level_no", [result.as_of]).fetchall()}
    invoices = con.execute("select count(*) from stg_invoices where invoice_date = ?", [result.as_of]).fetchall()[0][0]
    payments = con.execute("select count(*) from stg_payments where booked_on = ?", [result.as_of]).fetchall()[0][0]
    open_cases = con.execute("select count(*) from cases where closed_on is null").fetchall()[0][0]
    return {"seconds": round(sum(result.model_seconds.values()), 2), "plan_day_seconds": round(seconds, 2),
            "as_of": result.as_of.isoformat(), "cases_opened": result.cases_opened,
            "cases_closed": result.cases_closed, "open_cases": open_cases, "actions": result.actions,
            "cases_per_level": levels, "actions_per_channel": channels,
            "levels_skipped": result.levels_skipped, "invoices_issued": invoices, "payments_booked": payments,
            "models": {k: round(v, 3) for k, v in sorted(result.model_seconds.items(), key=lambda kv: -kv[1])}}


def stage_sql_models(workdir: Path) -> dict:
    """The first day: END on a fresh database, all history at once."""
    from pipeline.engine import run as pipeline_run
    from pipeline.warehouse.state import ensure_state

    settings = _settings(workdir, "bench.duckdb")
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        ensure_state(con)
        planned = con.execute("select count(*) from run_log").fetchall()[0][0]
        note = {}
        if planned:  # `--stage sql_models` again without `ingest`: END is re-run, not a first day
            note = {"warning": "bench.duckdb had days planned already (run the ingest stage first): "
                               "this measured a re-run of END, not a first day"}
            P.say(note["warning"])
        P.say(f"plan_day({END}) on the freshly ingested database, between two bare queries")
        return {**_measured_day(con), **note}


def stage_steady_day(workdir: Path, warmup_days: int) -> dict:
    """A day in the life: ingest and backfill `warmup_days` days before END (unmeasured), then END."""
    from pipeline.engine import run as pipeline_run
    from pipeline.engine.backfill import backfill

    settings = _settings(workdir, "steady.duckdb")
    _fresh(settings.database)
    start = END - timedelta(days=warmup_days)
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        P.say("ingesting into steady.duckdb (not measured)")
        started = time.perf_counter()
        pipeline_run.load_inputs(con, settings)
        ingest = time.perf_counter() - started
        warmup = 0.0
        if warmup_days:
            P.say(f"warm-up (not measured): backfill {start} to {END - timedelta(days=1)}, {warmup_days} days")
            started, done = time.perf_counter(), []

            def on_day(r) -> None:
                done.append(r)
                P.step(len(done), warmup_days, f"warm-up day {r.as_of}: {r.cases_opened} cases opened, "
                                               f"{r.actions} actions")

            backfill(con, start, END - timedelta(days=1), settings, catch_up="none", on_day=on_day)
            warmup = time.perf_counter() - started
    # a daily run connects afresh (a Dagster run, `dunning run`), as the first day's stage does: the
    # day is measured in a new connection, not in the one whose buffers the warm-up filled
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        P.say(f"plan_day({END}) after {warmup_days} days of history, in a new connection "
              "(measured, between two bare queries)")
        figures = _measured_day(con)
    _fresh(settings.database)  # as large as bench.duckdb, and every run makes it again
    return {**figures, "warmup_days": warmup_days, "setup_ingest_seconds": round(ingest, 2),
            "warmup_seconds": round(warmup, 2)}


def stage_render(workdir: Path, letters: int, workers: int) -> dict:
    from bench.render import bench_render

    P.say(f"{letters} letters the fast way ({workers} workers), then the naive way (one process)")
    return bench_render(n=letters, workers=workers)


def stage_email(workdir: Path, messages: int) -> dict:
    from bench.smtp import bench_dispatch, bench_smtp

    P.say(f"bare SMTP transport, {messages} messages")
    transport = bench_smtp(messages)
    P.say(f"the product's dispatch, {messages} messages")
    return {"transport_only": transport, "dispatch": bench_dispatch(workdir, messages)}


def _simulate(workdir: Path, data: str, database: str, days: int, separate_days: int) -> dict:
    """A candidate policy over `days` past days in one simulation, next to separate daily runs
    (each: connect, ingest, one day), measured for `separate_days` days and scaled to `days`."""
    import inspect

    from pipeline.engine import run as pipeline_run
    from pipeline.engine.simulate import simulate

    settings = _settings(workdir, database, data)
    _fresh(settings.database)
    start = END - timedelta(days=days - 1)
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        P.say(f"ingesting {data}/")
        started = time.perf_counter()
        pipeline_run.load_inputs(con, settings)
        ingest = time.perf_counter() - started
        P.say(f"simulating {start} to {END}, {days} days")
        done: list = []
        kwargs = {}
        if "on_day" in inspect.signature(simulate).parameters:
            def on_day(r) -> None:
                done.append(r)
                P.step(len(done), days, f"simulated day {r.as_of}: {r.actions} actions")
            kwargs["on_day"] = on_day
        sim = simulate(con, settings, settings.policy_file, start, END, name="bench", **kwargs)
        actions = con.execute("select count(*) from sim_bench.action_ledger").fetchall()[0][0]
    total = time.perf_counter() - started
    out = {"days": days, "ingest_seconds": round(ingest, 2), "simulation_seconds": round(sim.seconds, 2),
           "comparison_seconds": round(sim.comparison_seconds, 2), "total_seconds": round(total, 2),
           "ledger_rows": actions}
    separate = []
    for n in range(separate_days):
        P.say(f"separate daily run {n + 1}/{separate_days} (connect, ingest, one day)")
        started = time.perf_counter()
        with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
            pipeline_run.load_inputs(con, settings)
            pipeline_run.plan_day(con, start + timedelta(days=n), pipeline_run.RunMode.SIMULATE)
        separate.append(time.perf_counter() - started)
    _fresh(settings.database)
    if separate:
        per_run = sum(separate) / len(separate)
        out |= {"separate_run_seconds_each": round(per_run, 2),
                "separate_runs_estimate_seconds": round(per_run * days, 1),
                "ratio_separate_to_simulation": round(per_run * days / total, 2)}
    return out


def stage_simulate(workdir: Path, contracts: int, days: int, separate_days: int) -> dict:
    """The simulation at the bench's own scale (data from `generate`)."""
    return {"contracts": contracts, **_simulate(workdir, "data", "simulate.duckdb", days, separate_days)}


def stage_simulate_small(workdir: Path, contracts: int, main_contracts: int, days: int, separate_days: int) -> dict:
    """The simulation at `contracts` (100k by default), with its own generated data."""
    data = _data_dir(contracts, main_contracts)
    generated = _generate(workdir, data, contracts)
    return {"contracts": contracts, "data": data, "generate_seconds": generated.get("seconds", 0.0),
            **_simulate(workdir, data, f"simulate-{contracts}.duckdb", days, separate_days)}


def _scenario_yaml(days: int) -> str:
    last = SCENARIO_FIRST_DAY + timedelta(days=days - 1)
    actions = "".join(f"\n    - {{on: {on}, case: ct-CT1-20260311, level: {level}, action: reminder}}"
                      for on, level in SCENARIO_ACTIONS if on <= last)
    return SCENARIO_YAML.format(days=days, first=SCENARIO_FIRST_DAY, last=last, actions=actions or " []")


def stage_scenario(workdir: Path, days: int) -> dict:
    """`dunning test-policy` on a one-invoice scenario: `days` days, and 1 day (the fixed costs)."""
    started = time.perf_counter()
    from pipeline.scenarios.runner import load_scenario, run_scenario

    imports = time.perf_counter() - started
    out: dict = {"days": days, "import_seconds": round(imports, 2)}
    for label, n in (("one_day", 1), ("range", days)):
        folder = workdir / "scenario" / f"{n}-days"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "one_invoice.yaml"
        path.write_text(_scenario_yaml(n), encoding="utf-8")
        P.say(f"one-invoice scenario over {n} day(s)")
        started = time.perf_counter()
        result = run_scenario(load_scenario(path), folder / "run")
        seconds = time.perf_counter() - started
        out[label] = {"days": n, "seconds": round(seconds, 2), "passed": result.passed,
                      "actions": len(result.actions), "differences": result.differences[:5]}
    out["seconds"] = out["range"]["seconds"]
    out["per_extra_day_seconds"] = round((out["range"]["seconds"] - out["one_day"]["seconds"]) / max(days - 1, 1), 3)
    return out


STAGES: dict[str, Callable[[Path, dict], dict]] = {
    "generate": lambda w, a: stage_generate(w, a["contracts"]),
    "ctas_baseline": lambda w, a: stage_ctas_baseline(w),
    "ingest": lambda w, a: stage_ingest(w),
    "baseline_query": lambda w, a: stage_baseline_query(w),
    "sql_models": lambda w, a: stage_sql_models(w),
    "steady_day": lambda w, a: stage_steady_day(w, a.get("warmup_days", 35)),
    "render": lambda w, a: stage_render(w, a["letters"], a["workers"]),
    "email": lambda w, a: stage_email(w, a.get("messages", 1000)),
    "scenario": lambda w, a: stage_scenario(w, a.get("scenario_days", 60)),
    "simulate_small": lambda w, a: stage_simulate_small(w, a.get("sim_contracts", 100_000), a["contracts"],
                                                        a.get("days", 90), a.get("separate_days", 3)),
    "simulate": lambda w, a: stage_simulate(w, a["contracts"], a.get("days", 90), a.get("separate_days", 3)),
}
# What a stage reads that an earlier stage of the same run makes: a failed one skips these.
NEEDS = {"ctas_baseline": "generate", "ingest": "generate", "baseline_query": "ingest", "sql_models": "ingest",
         "steady_day": "generate", "simulate": "generate"}
# Not in a run without --stage: the simulation at the bench's own scale takes long at 1M.
OPTIONAL = ("simulate",)


def stage_plan(stages: list[str] | None = None, *, main_simulate: bool = False,
               small_simulate: bool = True) -> list[str]:
    """The stages a run measures, in order: `stages` if given, else the default set."""
    unknown = sorted(set(stages or []) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; stages: {', '.join(STAGES)}")
    if stages:
        return [s for s in STAGES if s in stages]
    skip = set(OPTIONAL) - ({"simulate"} if main_simulate else set())
    if not small_simulate:
        skip.add("simulate_small")
    return [s for s in STAGES if s not in skip]


def run_benchmark(workdir: Path, *, contracts: int, letters: int, workers: int, messages: int = 1000,
                  stages: list[str] | None = None, main_simulate: bool = False, sim_contracts: int = 100_000,
                  days: int = 90, separate_days: int = 3, warmup_days: int = 35, scenario_days: int = 60,
                  log: Callable[[str], None] | None = None) -> Iterator[dict]:
    """Yield one dict per stage, each measured in a fresh process (`stages`: a subset, in order).

    A stage that fails yields {"stage", "error"} (its own output is already on stderr) and the
    run goes on, skipping the stages that need what it should have made. `log` hears one line
    as each stage starts and ends.
    """
    plan = stage_plan(stages, main_simulate=main_simulate, small_simulate=sim_contracts > 0)
    workdir = Path(workdir).resolve()
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    args = {"contracts": contracts, "letters": letters, "workers": workers, "messages": messages,
            "sim_contracts": sim_contracts, "days": days, "separate_days": separate_days,
            "warmup_days": warmup_days, "scenario_days": scenario_days}
    say = log or (lambda text: None)
    results: dict[str, dict] = {}
    for number, name in enumerate(plan, start=1):
        need = NEEDS.get(name)
        if need in results and "error" in results[need]:
            line = {"stage": name, "error": f"skipped: stage {need} failed"}
            say(f"[{number}/{len(plan)}] {name}: skipped ({need} failed)")
            results[name] = line
            yield line
            continue
        say(f"[{number}/{len(plan)}] {name} ...")
        started = time.perf_counter()
        # stdout is the stage's one JSON line; stderr (its progress) goes straight to the terminal
        out = subprocess.run([sys.executable, "-m", "bench.stages", name, str(workdir), json.dumps(args)],
                             stdout=subprocess.PIPE, text=True)
        wall = time.perf_counter() - started
        if out.returncode != 0:
            line = {"stage": name, "error": f"exit code {out.returncode} (its output is above; "
                                            f"log: {workdir / 'logs' / (name + '.log')})",
                    "wall_seconds": round(wall, 1)}
        else:
            line = json.loads(out.stdout.strip().splitlines()[-1])
            line["wall_seconds"] = round(wall, 1)
        results[name] = line
        if name == "ingest" and "seconds" in line and "seconds" in results.get("ctas_baseline", {}):
            line["ratio_to_ctas"] = _ratio(line["seconds"], results["ctas_baseline"]["seconds"])
        if name in ("sql_models", "steady_day") and "bare_query_seconds" in line:
            line["ratio_to_baseline"] = _ratio(line["seconds"], line["bare_query_seconds"])
        say(f"[{number}/{len(plan)}] {name}: " + (line["error"] if "error" in line else f"done in {wall:.1f} s"))
        yield line


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def _main() -> None:
    global P
    name, workdir, args = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    # the one JSON line goes to the real stdout; anything else written there (a library's print,
    # a render worker) goes to stderr with the progress
    result_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=workdir / "logs" / f"{name}.log", filemode="w", level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    with Progress(name) as P:
        out = STAGES[name](workdir, args)
    out = {"stage": name, **out, "peak_rss_mib": _peak_rss_mib(), "load_avg_1min": round(os.getloadavg()[0], 2)}
    with os.fdopen(result_fd, "w") as real_stdout:
        real_stdout.write(json.dumps(out, default=str) + "\n")


if __name__ == "__main__":
    _main()
