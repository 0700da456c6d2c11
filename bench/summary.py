"""Issue 17's targets, each against its baseline, from the stage results of one `dunning bench` run.

Every target is a row, whether or not its stages ran in this run (then it says "not run"):
measure, baseline (what it is compared with, measured in the same run), figure, ratio,
target and result (pass, MISS, info for a row without a target, not run, error).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable


@dataclass
class Row:
    key: str
    measure: str
    baseline: str  # what the figure is compared with, and its value
    figure: str
    ratio: float | None
    target: str
    result: str  # pass | MISS | info | not run | error
    note: str = ""
    baseline_value: float | None = None
    figure_value: float | None = None
    unit: str = ""


_INDICATIVE = "pass/MISS only indicative: the target is for"


def _n(n: int | None) -> str:
    return f"{n:,}" if isinstance(n, int) else "?"


def _ok(value: float | None, test: Callable[[float], bool]) -> str:
    return "pass" if value is not None and test(value) else "MISS"


def _missing(key: str, measure: str, baseline: str, target: str, stages: list[str],
             results: dict[str, dict], how: str = "") -> Row | None:
    """A row for a target whose stages did not run, or failed; None when they all have results."""
    failed = [s for s in stages if "error" in results.get(s, {})]
    absent = [s for s in stages if s not in results]
    if not failed and not absent:
        return None
    if failed:
        note, result = "; ".join(f"{s}: {results[s]['error']}" for s in failed), "error"
    else:
        note, result = f"stage(s) {', '.join(absent)} not in this run{how}", "not run"
    return Row(key, measure, baseline, "—", None, target, result, note)


def _sql_row(key: str, day: str, stage: str, results: dict[str, dict]) -> Row:
    measure = f"SQL models of the day, {day}"
    baseline, target = "bare query", "≤ 2×"
    row = _missing(key, measure, baseline, target, [stage], results)
    if row:
        return row
    r = results[stage]
    b = r["bare_query_seconds"]  # timed in the stage itself, around its day (bench/stages.py)
    ratio = round(r["seconds"] / b, 2) if b else None
    history = (f"END after {r['warmup_days']} days of history; " if "warmup_days" in r
               else "END on a fresh database (all history at once); ")
    note = (f"{history}{_n(r['cases_opened'])} cases opened, {_n(r['actions'])} actions, "
            f"{_n(r.get('invoices_issued'))} invoices and {_n(r.get('payments_booked'))} payments booked that day; "
            f"plan_day {r['plan_day_seconds']} s; baseline: the bare oldest-first balance query, timed in the "
            f"same connection just before and after the day (the faster of {r['bare_query_before_after']})")
    trials = r.get("trials") or []
    if len(trials) > 1:
        ratios = ", ".join(f"{t['ratio']}×" for t in trials)
        note += (f"; the median of {len(trials)} trials of the day's models, ratios {ratios} "
                 f"(the last one the day itself, the others rehearsed and rolled back)")
    contracts = results.get("generate", {}).get("contracts")
    if contracts and contracts != 1_000_000:
        note += f"; {_INDICATIVE} 1,000,000 contracts, this run has {contracts:,}"
    return Row(key, measure, f"{baseline}: {b} s", f"{r['seconds']} s", ratio, target,
               _ok(ratio, lambda x: x <= 2.0), note, b, r["seconds"], "s")


def _simulate_row(key: str, stage: str, nominal: str, limit: float, results: dict[str, dict], how: str) -> Row:
    days = results.get(stage, {}).get("days", 90)
    contracts = results.get(stage, {}).get("contracts")
    measure = f"{days}-day simulation, {_n(contracts) if contracts else nominal} contracts"
    target = f"≤ {limit:g} s (90 days, {nominal})"
    baseline = "separate runs"
    row = _missing(key, measure, baseline, target, [stage], results, how)
    if row:
        return row
    r = results[stage]
    est = r.get("separate_runs_estimate_seconds")
    ratio = round(est / r["simulation_seconds"], 2) if est and r["simulation_seconds"] else None
    compared = f", the comparison with what happened {r['comparison_seconds']} s" if "comparison_seconds" in r else ""
    note = (f"the range only (as issue 5 measured it); ingestion {r['ingest_seconds']} s{compared}, with the "
            f"report's figures {r['total_seconds']} s in all; baseline: separate daily runs (connect, ingest, one day) "
            f"scaled to the days")
    scale = int(nominal.replace(",", ""))
    if (r.get("contracts"), r.get("days")) != (scale, 90):
        note += f"; {_INDICATIVE} 90 days at {nominal} contracts"
    return Row(key, measure, f"{baseline}: {est} s" if est is not None else f"{baseline}: not measured",
               f"{r['simulation_seconds']} s", ratio, target, _ok(r["simulation_seconds"], lambda x: x <= limit),
               note, est, r["simulation_seconds"], "s")


def build_summary(results: dict[str, dict]) -> list[Row]:
    """The target rows of issue 17, in the issue's order; `results`: stage name -> its JSON line."""
    rows = [_sql_row("sql_first_day", "first day", "sql_models", results),
            _sql_row("sql_steady_day", "steady day", "steady_day", results)]

    measure = "Rendering letters, fast vs naive (wall)"
    baseline = "naive"
    row = _missing("render", measure, baseline, "≥ 3×", ["render"], results)
    if not row:
        r = results["render"]
        measure = f"Rendering {r['letters']:,} letters, fast vs naive (wall)"
        row = Row("render", measure, f"{baseline}: {r['naive_seconds']} s", f"{r['fast_seconds']} s", r["ratio"],
                  "≥ 3×", _ok(r["ratio"], lambda x: x >= 3.0),
                  f"{r['fast_letters_per_s']} vs {r['naive_letters_per_s']} letters/s; fast: {r['workers']} "
                  f"workers; baseline: the naive loop in one process; load at end "
                  f"{r.get('load_avg_1min_at_end', '?')}", r["naive_seconds"], r["fast_seconds"], "s")
    rows.append(row)

    measure = "Rendering CPU per letter, fast vs naive"
    row = _missing("render_cpu", measure, "naive", "—", ["render"], results)
    if not row:
        r = results["render"]
        row = Row("render_cpu", measure, f"naive: {r['naive_cpu_ms_per_letter']} ms",
                  f"{r['fast_cpu_ms_per_letter']} ms", r["cpu_ratio"], "—", "info",
                  "no target of its own (the wall-clock row is): reuse alone, without the parallelism, "
                  "meaningful on a loaded machine",
                  r["naive_cpu_ms_per_letter"], r["fast_cpu_ms_per_letter"], "ms")
    rows.append(row)

    measure = "Email dispatch vs bare SMTP transport"
    baseline = "transport"
    target = "≤ 1.5×"
    row = _missing("dispatch", measure, baseline, target, ["email"], results)
    if not row:
        t, d = results["email"]["transport_only"], results["email"]["dispatch"]
        ratio = round(t["messages_per_second"] / d["messages_per_second"], 2) if d["messages_per_second"] else None
        row = Row("dispatch", f"Email dispatch vs bare SMTP, {t['messages']:,} messages",
                  f"{baseline}: {t['messages_per_second']} msg/s", f"{d['messages_per_second']} msg/s", ratio,
                  target, _ok(ratio, lambda x: x <= 1.5),
                  f"dispatch time / transport time (their msg/s inverted); baseline: SmtpSender alone over one "
                  f"connection; server received {d.get('server_received')}",
                  t["messages_per_second"], d["messages_per_second"], "msg/s")
    rows.append(row)

    measure = "Peak RSS per render worker"
    baseline = "naive process"
    row = _missing("render_worker_rss", measure, baseline, "< 150 MiB", ["render"], results)
    if not row:
        r = results["render"]
        peak, naive = r["peak_rss_mib_per_worker"], r.get("naive_process_peak_rss_mib")
        row = Row("render_worker_rss", measure, f"{baseline}: {naive} MiB", f"{peak} MiB",
                  round(peak / naive, 2) if naive else None, "< 150 MiB", _ok(peak, lambda x: x < 150),
                  "the highest of the workers; baseline: the naive loop's process", naive, peak, "MiB")
    rows.append(row)

    rows.append(_simulate_row("simulate_100k", "simulate_small", "100,000", 30.0, results,
                              " (--sim-contracts 0 leaves it out)"))
    rows.append(_simulate_row("simulate_1m", "simulate", "1,000,000", 300.0, results,
                              " (add --main-simulate)"))

    measure = "One-invoice scenario (test-policy)"
    baseline = "1 day"
    row = _missing("scenario", measure, baseline, "≤ 3 s (60 days)", ["scenario"], results)
    if not row:
        r = results["scenario"]
        one, rng = r["one_day"], r["range"]
        passed = "expectations met" if one["passed"] and rng["passed"] else \
            f"EXPECTATIONS NOT MET: {(rng['differences'] or one['differences'])[:1]}"
        row = Row("scenario", f"One-invoice scenario, {r['days']} days (test-policy)",
                  f"{baseline}: {one['seconds']} s", f"{rng['seconds']} s",
                  round(rng["seconds"] / one["seconds"], 2) if one["seconds"] else None, "≤ 3 s (60 days)",
                  _ok(rng["seconds"], lambda x: x <= 3.0),
                  f"{r['per_extra_day_seconds']} s per extra day; imports {r['import_seconds']} s (not counted); "
                  f"baseline: the same scenario over 1 day (the fixed costs); {passed}"
                  + (f"; {_INDICATIVE} 60 days" if r["days"] != 60 else ""), one["seconds"], rng["seconds"], "s")
    rows.append(row)
    return rows


def as_json(rows: list[Row]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def markdown(rows: list[Row], *, command: str = "", load: tuple[float, float, float] | None = None) -> str:
    load = load or os.getloadavg()
    lines = [f"`{command}`" if command else "", f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
             "", "| measure | baseline | figure | ratio | target | result | note |",
             "|---|---|---:|---:|---|---|---|"]
    for r in rows:
        ratio = f"{r.ratio:g}×" if r.ratio is not None else "—"
        lines.append(f"| {r.measure} | {r.baseline} | {r.figure} | {ratio} | {r.target} | {r.result} | {r.note} |")
    return "\n".join(lines).lstrip("\n") + "\n"


def rich_table(rows: list[Row]):
    """The table (without notes, to stay readable in 80 columns) and the notes below it, numbered."""
    from rich.console import Group
    from rich.table import Column, Table
    from rich.text import Text

    load = os.getloadavg()
    table = Table("#", Column("measure", overflow="fold", ratio=3), Column("baseline", overflow="fold", ratio=3),
                  Column("figure", justify="right", no_wrap=True), Column("ratio", justify="right", no_wrap=True),
                  Column("target", overflow="fold", ratio=2), Column("result", no_wrap=True),
                  title=f"Issue 17 targets (load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
    style = {"pass": "green", "MISS": "bold red", "error": "bold red", "not run": "dim", "info": "cyan"}
    notes = []
    for number, r in enumerate(rows, start=1):
        table.add_row(str(number), Text(r.measure), Text(r.baseline), r.figure,
                      f"{r.ratio:g}×" if r.ratio is not None else "—", Text(r.target),
                      Text(r.result, style=style.get(r.result, "")))
        if r.note:
            notes.append(Text(f"{number}. {r.note}"))
    return Group(table, *notes)


def write(rows: list[Row], workdir: Path, *, command: str = "", results: dict[str, dict] | None = None) -> Path:
    """WORKDIR/summary.md (for notes) and summary.json (rows and every stage's line); returns the .md path."""
    workdir = Path(workdir)
    (workdir / "summary.md").write_text(markdown(rows, command=command), encoding="utf-8")
    (workdir / "summary.json").write_text(json.dumps({"command": command, "load_avg": os.getloadavg(),
                                                      "rows": as_json(rows), "stages": results or {}},
                                                     indent=2, default=str), encoding="utf-8")
    return workdir / "summary.md"
