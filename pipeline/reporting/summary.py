"""Short summaries of the dunning state for people: the CLI's closing table and Dagster metadata."""

from __future__ import annotations

from datetime import date


def open_cases_per_level(con) -> list[tuple[str, int, str, int]]:
    """Open cases per policy and level: (policy, level number, level name, cases). Policies are kept
    apart, as levels of the same number are different levels; a level renamed between versions shows
    its first name in sort order."""
    return con.execute(
        """select policy_id, current_level, coalesce(min(current_level_name), 'opened, no level yet'), count(*)
           from cases where is_open group by policy_id, current_level order by policy_id, current_level"""
    ).fetchall()


def overdue_per_currency(con, as_of: date) -> list[tuple[str, int, object, object]]:
    return con.execute(
        """select currency, count(*) filter (where overdue_amount > 0), sum(overdue_amount), sum(open_amount)
           from contract_balances where as_of = ? group by currency order by currency""",
        [as_of],
    ).fetchall()


def documents_written(con) -> int:
    return con.execute("select count(*) from action_ledger where status = 'sent'").fetchall()[0][0]


def documents_per_kind(con) -> list[tuple[str, int]]:
    """Sent documents per kind: a reminder counts under its channel, other documents under their action."""
    return con.execute(
        """select case when action = 'reminder' then coalesce(channel, 'outbox') else action end as kind, count(*)
           from action_ledger where status = 'sent' group by kind order by kind"""
    ).fetchall()


def day_summary_markdown(con, as_of: date, locale: str = "en") -> str:
    """Open cases per level and what is overdue per currency, money formatted for `locale` (Babel,
    with CLDR's currency spacing: ``DKK 63,124.87`` in English, ``63.124,87 DKK`` in German)."""
    from pipeline.delivery.render.formatting import format_money

    lines = ["| policy | level | open cases |", "|---|---|---:|"]
    lines += [f"| {policy} | {lv} {name} | {n} |" for policy, lv, name, n in open_cases_per_level(con)]
    lines += ["", "| currency | contracts overdue | overdue | open |", "|---|---:|---:|---:|"]
    lines += [f"| {c} | {n} | {format_money(o or 0, c, locale)} | {format_money(t or 0, c, locale)} |"
              for c, n, o, t in overdue_per_currency(con, as_of)]
    return "\n".join(lines)
