"""`dunning bench` end to end at a tiny scale: every stage runs in its own process, stdout holds one
JSON line per stage, and the summary has every target of issue 17 with its baseline, figure and target.
The figures themselves are not asserted (they belong in notes, not tests)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pipeline.cli import app

pytestmark = pytest.mark.slow(25)  # long: each worker starts with its share (tests/conftest.py)

STAGES = ["generate", "ctas_baseline", "ingest", "baseline_query", "sql_models", "steady_day", "render", "email",
          "scenario", "simulate_small", "simulate"]
TARGETS = ["sql_first_day", "sql_steady_day", "render", "render_cpu", "dispatch", "render_worker_rss",
           "simulate_100k", "simulate_1m", "scenario"]


def test_a_tiny_bench_reports_every_target_against_its_baseline(tmp_path):
    result = CliRunner().invoke(app, [
        "bench", "--workdir", str(tmp_path), "--contracts", "300", "--letters", "2", "--messages", "3",
        "--warmup-days", "3", "--sim-contracts", "200", "--days", "3", "--separate-days", "1",
        "--scenario-days", "3", "--main-simulate"])
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_stage = {line["stage"]: line for line in lines}
    assert [line["stage"] for line in lines] == [*STAGES, "summary"], result.stdout
    assert {s: line["error"] for s, line in by_stage.items() if "error" in line} == {}
    assert result.exit_code == 0

    # the steady day is END after its warm-up, on the same files as the first day
    first, steady = by_stage["sql_models"], by_stage["steady_day"]
    assert first["as_of"] == steady["as_of"] and steady["warmup_days"] == 3
    assert steady["cases_opened"] < first["cases_opened"]
    # each SQL day is compared with the bare query timed around it, in its own connection: the faster time
    for day in (first, steady):
        assert day["bare_query_seconds"] == min(day["bare_query_before_after"])
        assert day["ratio_to_baseline"] == round(day["seconds"] / day["bare_query_seconds"], 2)
        # three trials of the day's models (two rehearsed, then the day), each between two bare queries:
        # the one reported is the trial of the median ratio
        trials = day["trials"]
        assert len(trials) == 3
        for trial in trials:
            assert trial["bare_query_seconds"] == min(trial["bare_query_before_after"])
            assert trial["ratio"] == round(trial["models_seconds"] / trial["bare_query_seconds"], 2)
        assert [t["bare_query_before_after"][1] for t in trials[:-1]] == \
            [t["bare_query_before_after"][0] for t in trials[1:]]
        assert sorted(t["ratio"] for t in trials)[1] == day["ratio_to_baseline"]
        assert {"models_seconds": day["seconds"], "bare_query_before_after": day["bare_query_before_after"],
                "bare_query_seconds": day["bare_query_seconds"], "ratio": day["ratio_to_baseline"]} in trials
    # the small simulation has its own data; the main one the bench's
    assert by_stage["simulate_small"]["data"] == "data-200" and (tmp_path / "data-200").is_dir()
    assert by_stage["simulate"]["contracts"] == 300
    # the range and the comparison after it are reported apart, and the summary names both
    for stage in ("simulate_small", "simulate"):
        line = by_stage[stage]
        assert 0 < line["simulation_seconds"] + line["comparison_seconds"] + line["ingest_seconds"] \
            <= line["total_seconds"] + 0.02, line
    assert by_stage["scenario"]["range"]["passed"] and by_stage["scenario"]["one_day"]["passed"]

    rows = by_stage["summary"]["rows"]
    assert [r["key"] for r in rows] == TARGETS
    sql_rows = {r["key"]: r for r in rows if r["key"].startswith("sql_")}
    assert [(r["baseline_value"], r["figure_value"]) for r in sql_rows.values()] == [
        (first["bare_query_seconds"], first["seconds"]), (steady["bare_query_seconds"], steady["seconds"])]
    for row in rows:
        assert row["measure"] and row["baseline"] and row["target"], row
        assert row["baseline_value"] is not None and row["figure_value"] is not None, row
        if row["key"] == "render_cpu":  # the CPU row explains the wall-clock target row
            assert row["result"] == "info"
        else:
            assert row["result"] in ("pass", "MISS") and row["ratio"] is not None, row
    assert (tmp_path / "summary.json").exists()
    md = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert all(r["measure"] in md for r in rows)
    assert f"the comparison with what happened {by_stage['simulate']['comparison_seconds']} s" in md


def test_a_partial_bench_keeps_every_target_row(tmp_path):
    result = CliRunner().invoke(app, ["bench", "--workdir", str(tmp_path), "--contracts", "50",
                                      "--stage", "generate"])
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["stage"] for line in lines] == ["generate", "summary"]
    rows = lines[-1]["rows"]
    assert [r["key"] for r in rows] == TARGETS
    assert {r["result"] for r in rows} == {"not run"}
    assert CliRunner().invoke(app, ["bench", "--workdir", str(tmp_path), "--stage", "nope"]).exit_code == 2
