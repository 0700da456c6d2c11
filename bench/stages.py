"""`dunning bench`: time each stage of one daily run at realistic scale.

Each stage runs in its own process so its wall time and peak memory (max RSS)
are its own. Baselines are measured in the same run on the same files:
- `ctas_baseline`: a bare `create table as select * from read_parquet(...)`,
  what ingestion is compared with;
- `baseline_query`: one bare query computing, per contract, the oldest-first
  open balance and the oldest overdue due date, what the SQL models are
  compared with.
Figures go in notes and docs, never into test assertions.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

END = date(2026, 6, 30)

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


def _peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _settings(workdir: Path, database: str):
    from pipeline.config.settings import Settings

    return Settings.load(data_dir=workdir / "data", database=workdir / database, outbox=workdir / "outbox")


def stage_generate(workdir: Path, contracts: int) -> dict:
    from bench.sample_company import generate_company

    marker = workdir / "data" / f".generated-{contracts}"
    if marker.exists():
        return {"skipped": "data already generated", **json.loads(marker.read_text())}
    started = time.perf_counter()
    counts = generate_company(workdir / "data", end=END, contracts=contracts, fmt="parquet")
    marker.write_text(json.dumps(counts))
    return {"seconds": round(time.perf_counter() - started, 2), **counts}


def stage_ctas_baseline(workdir: Path) -> dict:
    import duckdb

    db = workdir / "ctas.duckdb"
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    started = time.perf_counter()
    for name in ("customers", "contracts", "invoices", "payments", "suspensions"):
        con.execute(f"create table {name} as select * from read_parquet(?)", [str(workdir / "data" / f"{name}.parquet")])
    seconds = time.perf_counter() - started
    con.close()
    db.unlink()
    return {"seconds": round(seconds, 2)}


def stage_ingest(workdir: Path) -> dict:
    from pipeline.engine import run as pipeline_run

    settings = _settings(workdir, "bench.duckdb")
    settings.database.unlink(missing_ok=True)
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
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


def stage_sql_models(workdir: Path) -> dict:
    from pipeline.engine import run as pipeline_run
    from pipeline.warehouse.state import ensure_state

    settings = _settings(workdir, "bench.duckdb")
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        ensure_state(con)
        started = time.perf_counter()
        result = pipeline_run.plan_day(con, END, pipeline_run.RunMode.LIVE)
        seconds = time.perf_counter() - started
    models = sum(result.model_seconds.values())
    return {"seconds": round(models, 2), "plan_day_seconds": round(seconds, 2),
            "cases_opened": result.cases_opened, "actions": result.actions,
            "levels_skipped": result.levels_skipped,
            "models": {k: round(v, 3) for k, v in result.model_seconds.items()}}


def stage_render(workdir: Path, letters: int, workers: int) -> dict:
    from bench.render import bench_render

    return bench_render(n=letters, workers=workers)


def stage_email(workdir: Path, messages: int) -> dict:
    from bench.smtp import bench_dispatch, bench_smtp

    return {"transport_only": bench_smtp(messages), "dispatch": bench_dispatch(workdir, messages)}


def stage_simulate(workdir: Path, days: int, separate_days: int) -> dict:
    """A candidate policy over `days` past days in one simulation, next to separate daily runs
    (each: connect, ingest, one day), measured for `separate_days` days and scaled to `days`."""
    from datetime import timedelta

    from pipeline.engine import run as pipeline_run
    from pipeline.engine.simulate import simulate

    settings = _settings(workdir, "simulate.duckdb")
    settings.database.unlink(missing_ok=True)
    start = END - timedelta(days=days - 1)
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        started = time.perf_counter()
        pipeline_run.load_inputs(con, settings)
        ingest = time.perf_counter() - started
        sim = simulate(con, settings, settings.policy_file, start, END, name="bench")
        actions = con.execute("select count(*) from sim_bench.action_ledger").fetchall()[0][0]
    total = time.perf_counter() - started
    separate = []
    for n in range(separate_days):
        started = time.perf_counter()
        with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
            pipeline_run.load_inputs(con, settings)
            pipeline_run.plan_day(con, start + timedelta(days=n), pipeline_run.RunMode.SIMULATE)
        separate.append(time.perf_counter() - started)
    per_run = sum(separate) / len(separate)
    return {"days": days, "ingest_seconds": round(ingest, 2), "simulation_seconds": round(sim.seconds, 2),
            "total_seconds": round(total, 2), "ledger_rows": actions,
            "separate_run_seconds_each": round(per_run, 2),
            "separate_runs_estimate_seconds": round(per_run * days, 1),
            "ratio_separate_to_simulation": round(per_run * days / total, 2)}


STAGES = {
    "generate": lambda w, a: stage_generate(w, a["contracts"]),
    "ctas_baseline": lambda w, a: stage_ctas_baseline(w),
    "ingest": lambda w, a: stage_ingest(w),
    "baseline_query": lambda w, a: stage_baseline_query(w),
    "sql_models": lambda w, a: stage_sql_models(w),
    "render": lambda w, a: stage_render(w, a["letters"], a["workers"]),
    "email": lambda w, a: stage_email(w, a.get("messages", 1000)),
    "simulate": lambda w, a: stage_simulate(w, a.get("days", 90), a.get("separate_days", 3)),
}


def run_benchmark(workdir: Path, *, contracts: int, letters: int, workers: int, messages: int = 1000,
                  stages: list[str] | None = None):
    """Yield one dict per stage, each measured in a fresh process (`stages`: a subset, in order)."""
    unknown = sorted(set(stages or []) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; stages: {', '.join(STAGES)}")
    workdir = Path(workdir).resolve()
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    args = {"contracts": contracts, "letters": letters, "workers": workers, "messages": messages}
    results = {}
    default = [s for s in STAGES if s != "simulate"]  # its scale is its own: --stage simulate
    for name in (s for s in STAGES if (s in stages if stages else s in default)):
        out = subprocess.run([sys.executable, "-m", "bench.stages", name, str(workdir), json.dumps(args)],
                             check=True, capture_output=True, text=True)
        line = json.loads(out.stdout.strip().splitlines()[-1])
        results[name] = line
        if name == "ingest" and "ctas_baseline" in results:
            line["ratio_to_ctas"] = round(line["seconds"] / results["ctas_baseline"]["seconds"], 2)
        if name == "sql_models" and "baseline_query" in results:
            line["ratio_to_baseline"] = round(line["seconds"] / results["baseline_query"]["seconds"], 2)
        yield line


def _main() -> None:
    name, workdir, args = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    out = STAGES[name](workdir, args)
    out = {"stage": name, **out, "peak_rss_mib": _peak_rss_mib()}
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    _main()
