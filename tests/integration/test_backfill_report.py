"""`dunning backfill --report FILE`: every difference in the Markdown report and in the CSV beside it;
the terminal shows the first ones and says where the rest are, on lines no terminal width breaks."""

from __future__ import annotations

import csv

from typer.testing import CliRunner

from pipeline.cli import app
from world import World, policy, query

V1 = [("due_date", 7, 7), ("previous_level", 0, 7, {"EUR": "5.00"})]
V2_LEVELS = [{"name": "Early", "timing": {"after": "due_date", "days": 3}, "payment_term_days": 7,
              "fee": {"EUR": "2.50"}}]
CONTRACTS = 16  # two differences each under V2: 32, more than the 30 a terminal shows


def _world(tmp_path) -> World:
    doc = policy(V1)
    doc["policies"][0]["versions"].append({"effective_from": "2027-01-01", "scope": "contract",
                                           "thresholds": {}, "levels": V2_LEVELS})
    w = World(tmp_path, doc)
    for i in range(1, CONTRACTS + 1):
        w.customer(f"CU{i:02d}").contract(f"CT{i:02d}", f"CU{i:02d}").invoice(
            f"I{i:02d}", f"{100 + i}.00", "2026-03-01", "2026-03-15", f"CT{i:02d}", f"CU{i:02d}")
    return w


def test_a_backfill_report_holds_every_difference_in_markdown_and_csv(tmp_path):
    w = _world(tmp_path)
    settings = w.run("2026-03-16", "2026-03-31")
    config = w.write_config()
    v2 = query(settings, "select policy_version from policy_versions where effective_from = '2027-01-01'")[0][0]
    long_name = "backfill reports kept for the auditors with a folder name longer than a terminal line"
    folder = tmp_path / f"{long_name} {long_name}"
    report = folder / "differences.md"
    result = CliRunner().invoke(app, ["backfill", "--from", "2026-03-16", "--to", "2026-03-31", "--catch-up", "none",
                                      "--policy-version", v2, "--report", str(report), "--config", str(config)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    csv_path = folder / "differences.csv"
    # the terminal: counts, the first 30 rows, then where every one is, each path on one line
    start = lines.index("## Backfill bf-2026-03-16-2026-03-31-1: differences from the ledger")
    assert lines[start - 1] == "16 days, 16 actions, nothing sent; catch-up for the next live days: none"
    assert lines[start + 2:start + 9] == [
        "| kind | actions |", "|---|---:|", "| would_have_happened | 0 |", "| would_not_have_happened | 16 |",
        "| changed | 16 |", "| total | 32 |", ""]
    printed = [line for line in lines if line.startswith(("| changed | ct-", "| would_not_have_happened | ct-"))]
    assert len(printed) == 30
    assert printed[:2] == [
        "| changed | ct-CT01-20260316/L1/reminder | not_dispatched | 2026-03-22 | 2026-03-18 | 101.00 | 103.50 "
        "| 0.00 | 2.50 |",
        "| would_not_have_happened | ct-CT01-20260316/L2/reminder | not_dispatched | 2026-03-29 |  | 106.00 |  "
        "| 5.00 |  |"]
    assert lines[-3:] == [f"... 2 more: every one in {report} and {csv_path}",
                          f"report: {report}", f"report: {csv_path}"]

    # the Markdown file: all 32, in key order
    md = report.read_text().splitlines()
    rows = [line for line in md if line.startswith(("| changed | ct-", "| would_not_have_happened | ct-"))]
    assert len(rows) == 32 and rows[:30] == printed
    assert rows[-1] == ("| would_not_have_happened | ct-CT16-20260316/L2/reminder | not_dispatched | 2026-03-29 "
                        "|  | 121.00 |  | 5.00 |  |")
    assert not any(line.startswith("...") for line in md)
    # the CSV: all 32 with the columns of backfill_differences, exact decimals, empty for none
    with open(csv_path, newline="", encoding="utf-8") as fh:
        table = list(csv.reader(fh))
    assert table[0] == ["backfill_id", "kind", "action_key", "case_id", "level_no", "action", "before_status",
                        "before_executed_on", "after_executed_on", "before_amount", "after_amount", "before_fee",
                        "after_fee"]
    assert len(table) == 33
    assert table[-2:] == [
        ["bf-2026-03-16-2026-03-31-1", "changed", "ct-CT16-20260316/L1/reminder", "ct-CT16-20260316", "1",
         "reminder", "not_dispatched", "2026-03-22", "2026-03-18", "116.00", "118.50", "0.00", "2.50"],
        ["bf-2026-03-16-2026-03-31-1", "would_not_have_happened", "ct-CT16-20260316/L2/reminder",
         "ct-CT16-20260316", "2", "reminder", "not_dispatched", "2026-03-29", "", "121.00", "", "5.00", ""]]
    assert [r[2] for r in table[1:]] == [k for (k,) in query(
        settings, "select action_key from backfill_differences order by action_key")]
