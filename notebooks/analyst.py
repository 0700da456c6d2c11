# /// script
# requires-python = ">=3.11"
# dependencies = ["duckdb>=1.4.4", "marimo==0.25.2"]
# ///
"""The analysts' first questions, answered from the published copy (a marimo notebook).

Opens `dunning_analyst.duckdb` read-only and reads only its views and macros:
`aging`, `open_cases`, and the macros the daily report reads (`aging_as_of`,
`state_as_of`, `key_figures_as_of`, and `recovered_after_level`, which
`level_outcomes` sums), so its figures are the report's. Runs offline:

    make analyst-notebook                                  # var/analyst/dunning_analyst.duckdb
    .venv/bin/marimo run --no-sandbox notebooks/analyst.py -- --db PATH   # a copy elsewhere
    .venv/bin/python notebooks/analyst.py --db PATH        # headless: every cell once

(or DUNNING_ANALYST_DB=PATH). On a laptop with only the copied folder and this
file, `uvx marimo run --sandbox analyst.py -- --db PATH` installs what the header
below names.

It needs only `duckdb` (1.4 or later) and `marimo`.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="Dunning: the analysts' copy")

with app.setup:
    import os
    from decimal import Decimal
    from pathlib import Path

    import duckdb
    import marimo as mo


@app.function
def rows(con, sql, params=()):
    """A query's rows as dicts (column name: value), values as DuckDB returns them."""
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


@app.function
def table(data):
    """A read-only table; amounts keep their two decimals."""
    shown = [{k: str(v) if isinstance(v, Decimal) else v for k, v in r.items()} for r in data]
    return mo.ui.table(shown, selection=None, pagination=True, page_size=20) if shown else mo.md("_(none)_")


@app.cell
def _():
    mo.md(r"""
    # Dunning: the analysts' copy

    What is overdue today, who is at the highest level and what they owe, what each level
    recovered, and how things stood on any past day: the figures of the daily report, from
    the same views and macros.
    """)
    return


@app.cell
def _():
    # --db PATH (after `--` with `marimo run`), else DUNNING_ANALYST_DB, else the repository's var/analyst
    db_path = Path(mo.cli_args().get("db") or os.environ.get("DUNNING_ANALYST_DB")
                   or mo.notebook_dir() / ".." / "var" / "analyst" / "dunning_analyst.duckdb")
    return (db_path,)


@app.cell
def _(db_path):
    if not Path(db_path).is_file():
        _missing = f"No analysts' copy at `{db_path}`: run `make demo` (or `dunning run`), or pass `--db PATH`."
        if not mo.running_in_notebook():
            raise FileNotFoundError(_missing)  # headless: an error, not a quiet stop
        mo.stop(True, mo.md(_missing))
    # read-only: the pipeline replaces the file after each run; an open session keeps working
    con = duckdb.connect(str(db_path), read_only=True)
    first_day, latest_day = con.execute("select min(as_of), max(as_of) from run_log").fetchone()
    return con, first_day, latest_day


@app.cell
def _(first_day, latest_day):
    day_picker = mo.ui.date(start=first_day, stop=latest_day, value=latest_day, label="A past day")
    days_picker = mo.ui.slider(1, 90, value=30, show_value=True, label="Paid within N days after the level")
    mo.hstack([day_picker, days_picker], justify="start")
    return day_picker, days_picker


@app.cell
def _(day_picker):
    as_of_day = day_picker.value
    return (as_of_day,)


@app.cell
def _(days_picker):
    paid_within_days = days_picker.value
    return (paid_within_days,)


@app.cell
def _(con):
    # the aging of the latest day run, per currency, buckets in their natural order (not due first)
    aging_today = rows(con, "select as_of, currency, bucket, receivables, open_amount from aging "
                            "order by currency, bucket")
    overdue_today = rows(con, """select currency, sum(receivables) as receivables, sum(open_amount) as open_amount
                                 from aging where bucket <> 'not due' group by currency order by currency""")
    return aging_today, overdue_today


@app.cell
def _(aging_today, latest_day, overdue_today):
    mo.vstack([
        mo.md(f"## Overdue per currency and bucket, {latest_day}"),
        table(overdue_today),
        table(aging_today),
    ])
    return


@app.cell
def _(con):
    # each policy's open cases at the highest level any open case of it has reached, largest amount first
    highest_level = rows(con, """
        select policy_id, current_level, current_level_name, customer_name, contract_id, case_id, currency,
               amount_owed, overdue_amount, fees_total, last_level_on
        from open_cases
        qualify current_level = max(current_level) over (partition by policy_id)
        order by policy_id, amount_owed desc, case_id""")
    return (highest_level,)


@app.cell
def _(highest_level, latest_day):
    mo.vstack([mo.md(f"## Who is at the highest level, and what they owe on {latest_day}"), table(highest_level)])
    return


@app.cell
def _(con, latest_day, paid_within_days):
    # cash booked within N days after each level (recovered_after_level, the one definition), by latest_day
    recovered = rows(con, """
        select policy_id, level_no, arg_max(level_name, executed_on) as level_name, currency,
               count(*) as cases_reached, cast(sum(payments) as bigint) as payments,
               cast(sum(amount_recovered) as decimal(18, 2)) as amount_recovered
        from recovered_after_level(?, ?)
        group by policy_id, level_no, currency
        order by policy_id, level_no, currency""", [latest_day, paid_within_days])
    return (recovered,)


@app.cell
def _(paid_within_days, recovered):
    mo.vstack([mo.md(f"## Cash recovered within {paid_within_days} days after each level"), table(recovered)])
    return


@app.cell
def _(as_of_day, con):
    # the state of a past day: open cases per level (as the daily report counts them), aging, key figures
    levels_on_day = rows(con, """
        select policy_id, current_level, coalesce(min(current_level_name), 'opened, no level yet') as level_name,
               count(*) as open_cases
        from state_as_of(?) where is_open group by policy_id, current_level order by 1, 2""", [as_of_day])
    aging_on_day = rows(con, "select currency, bucket, receivables, open_amount from aging_as_of(?)", [as_of_day])
    key_figures_on_day = rows(con, """
        select currency, policy_id, cases_opened, cases_closed, cases_open, fees_earned
        from key_figures_as_of(?) order by currency, policy_id""", [as_of_day])
    cases_on_day = rows(con, """
        select case_id, contract_id, customer_id, currency, status, current_level, current_level_name,
               last_level_on, last_amount_demanded, closed_on, close_reason
        from state_as_of(?) order by case_id""", [as_of_day])
    return aging_on_day, cases_on_day, key_figures_on_day, levels_on_day


@app.cell
def _(aging_on_day, as_of_day, cases_on_day, key_figures_on_day, levels_on_day):
    mo.vstack([
        mo.md(f"## How things stood on {as_of_day}"),
        mo.md("Open cases per level"), table(levels_on_day),
        mo.md("Aging"), table(aging_on_day),
        mo.md("Key figures"), table(key_figures_on_day),
        mo.md("Every case opened by then"), table(cases_on_day),
    ])
    return


if __name__ == "__main__":
    app.run()
