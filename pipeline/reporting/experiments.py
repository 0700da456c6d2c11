"""Champion/challenger experiments: what each arm did and what it brought in, with the uncertainty.

A policy version with `experiment:` sends a stable, hashed share of its new cases to a challenger
policy (`int_routed_contracts`; `case_register.experiment` and `arm`). Both arms run live. This
report reads the state, per experiment and currency (cash in different currencies is never
added up), as of a day:

- per arm: cases, documents and letters sent, fees charged, cash recovered within N days after
  each level (the analytics macro `recovered_after_level`, the one definition of recovery), the
  share of cases that paid anything in those windows, the mean cash per case with its 95 %
  confidence interval, the mean days from opening to a case closed by payment, and the cost per
  unit recovered (letters x the letter cost given);
- per arm and level: cases that reached the level, cash within N days after it;
- the comparison challenger - champion: the difference of mean cash per case (Welch's
  standard error, normal 95 % interval) and of the recovery rate (two-proportion z-test), with
  the p-value and whether it is significant at 5 %.

Money is exact (Decimal); the statistics (means, intervals, p-values) are floats rounded for
display. Cases are compared as they were assigned, so the difference estimates the effect of the
policy on cases like these; with few cases per arm the intervals are wide, and the report says
"not significant" rather than guessing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

ARMS = ("champion", "challenger")
Z95 = 1.959963984540054


@dataclass
class ArmFigures:
    arm: str
    policy_ids: list[str]
    cases: int
    documents: int
    letters: int
    fees: Decimal
    recovered: Decimal
    paying_cases: int
    per_case: list[Decimal] = field(default_factory=list)  # cash recovered per case (all levels)
    days_to_close: list[int] = field(default_factory=list)  # cases closed by payment: opened -> closed
    by_level: list[tuple[int, int, Decimal]] = field(default_factory=list)  # (level, cases, recovered)

    @property
    def rate(self) -> float:
        return self.paying_cases / self.cases if self.cases else 0.0

    @property
    def mean(self) -> float:
        return float(sum(self.per_case)) / len(self.per_case) if self.per_case else 0.0

    @property
    def variance(self) -> float:
        n = len(self.per_case)
        if n < 2:
            return 0.0
        m = self.mean
        return sum((float(x) - m) ** 2 for x in self.per_case) / (n - 1)

    def mean_interval(self) -> tuple[float, float]:
        n = len(self.per_case)
        half = Z95 * math.sqrt(self.variance / n) if n else 0.0
        return self.mean - half, self.mean + half


@dataclass
class Comparison:
    mean_difference: float
    mean_interval: tuple[float, float]
    mean_p: float
    rate_difference: float
    rate_p: float

    @property
    def significant(self) -> bool:
        return self.mean_p < 0.05 or self.rate_p < 0.05


@dataclass
class ExperimentResult:
    experiment: str
    currency: str
    arms: dict[str, ArmFigures]
    comparison: Comparison | None


def _p_two_sided(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def compare(champion: ArmFigures, challenger: ArmFigures) -> Comparison | None:
    """Challenger - champion; None when an arm has fewer than two cases (nothing to estimate)."""
    if len(champion.per_case) < 2 or len(challenger.per_case) < 2:
        return None
    diff = challenger.mean - champion.mean
    se = math.sqrt(challenger.variance / len(challenger.per_case) + champion.variance / len(champion.per_case))
    mean_p = _p_two_sided(diff / se) if se > 0 else (0.0 if diff else 1.0)
    n1, n2 = champion.cases, challenger.cases
    pooled = (champion.paying_cases + challenger.paying_cases) / (n1 + n2)
    rate_se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    rate_diff = challenger.rate - champion.rate
    rate_p = _p_two_sided(rate_diff / rate_se) if rate_se > 0 else (0.0 if rate_diff else 1.0)
    return Comparison(diff, (diff - Z95 * se, diff + Z95 * se), mean_p, rate_diff, rate_p)


def experiment_report(con, as_of: date, within_days: int = 30) -> list[ExperimentResult]:
    """Every experiment's figures as of `as_of`, per currency, in name order."""
    cases = con.execute(
        """select case_id, experiment, arm, policy_id, currency, opened_on,
                  case when closed_on <= ? and close_reason in ('balance_cleared', 'invoice_settled')
                       then closed_on - opened_on end as days_to_close
           from case_register
           where experiment is not null and opened_on <= ?
           order by experiment, currency, arm, case_id""", [as_of, as_of]).fetchall()
    actions = {case_id: (docs, letters, fees) for case_id, docs, letters, fees in con.execute(
        """select case_id,
                  count(*) filter (where action_is_document(action)),
                  count(*) filter (where action_is_document(action) and channel in ('letter', 'registered_letter')),
                  sum(fee)
           from action_ledger
           where case_id in (select case_id from case_register where experiment is not null)
             and executed_on <= ? and status_is_done(status)
           group by case_id""", [as_of]).fetchall()}
    recovered = con.execute(
        """select case_id, level_no, amount_recovered
           from recovered_after_level(?, ?)
           where case_id in (select case_id from case_register where experiment is not null)""",
        [as_of, within_days]).fetchall()
    cash: dict[str, dict[int, Decimal]] = {}
    for case_id, level_no, amount in recovered:
        cash.setdefault(case_id, {})[level_no] = amount
    results: dict[tuple[str, str], dict[str, ArmFigures]] = {}
    for case_id, experiment, arm, policy_id, currency, _opened, days_to_close in cases:
        arms = results.setdefault((experiment, currency), {
            a: ArmFigures(a, [], 0, 0, 0, Decimal("0.00"), Decimal("0.00"), 0) for a in ARMS})
        f = arms[arm]
        if policy_id not in f.policy_ids:
            f.policy_ids.append(policy_id)
        f.cases += 1
        levels = cash.get(case_id, {})
        case_cash = sum(levels.values(), Decimal("0.00"))
        f.per_case.append(case_cash)
        f.recovered += case_cash
        f.paying_cases += case_cash > 0
        docs, letters, fees = actions.get(case_id, (0, 0, Decimal("0.00")))
        f.documents += docs
        f.letters += letters
        f.fees += fees
        if days_to_close is not None:
            f.days_to_close.append(days_to_close)
        for level_no, amount in levels.items():
            f.by_level.append((level_no, 1, amount))
    out = []
    for (experiment, currency), arms in sorted(results.items()):
        for f in arms.values():
            merged: dict[int, list] = {}
            for level_no, n, amount in f.by_level:
                slot = merged.setdefault(level_no, [0, Decimal("0.00")])
                slot[0] += n
                slot[1] += amount
            f.by_level = [(lv, n, amount) for lv, (n, amount) in sorted(merged.items())]
        out.append(ExperimentResult(experiment, currency, arms, compare(arms["champion"], arms["challenger"])))
    return out


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def format_report(results: list[ExperimentResult], as_of: date, within_days: int,
                  letter_cost: Decimal = Decimal("0")) -> str:
    """The report as Markdown: per experiment and currency, the arms, the levels, the comparison."""
    if not results:
        return f"# Experiments on {as_of}\n\nNo case has been assigned to an experiment yet.\n"
    lines = [f"# Experiments on {as_of}", "",
             f"Cash recovered: payments booked within {within_days} days after each level while the case was "
             "open (recovered_after_level). Mean per case with its 95 % confidence interval. Cost per unit "
             f"recovered: letters x {letter_cost} divided by the cash recovered.", ""]
    for r in results:
        lines += [f"## {r.experiment} ({r.currency})", "",
                  "| arm | policy | cases | documents | letters | fees | cash recovered | paying cases | "
                  "mean per case [95 % CI] | mean days to close | cost per unit recovered |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
        for arm in ARMS:
            f = r.arms[arm]
            low, high = f.mean_interval()
            days = f"{sum(f.days_to_close) / len(f.days_to_close):.1f}" if f.days_to_close else "–"
            cost = letter_cost * f.letters
            per_unit = f"{(cost / f.recovered):.4f}" if f.recovered else "–"
            lines.append(f"| {arm} | {', '.join(f.policy_ids) or '–'} | {f.cases} | {f.documents} | {f.letters} | "
                         f"{_money(f.fees)} | {_money(f.recovered)} | {f.paying_cases} ({f.rate:.1%}) | "
                         f"{f.mean:.2f} [{low:.2f}, {high:.2f}] | {days} | {per_unit} |")
        lines += ["", "| arm | level | cases reaching it | cash within the window |", "|---|---:|---:|---:|"]
        for arm in ARMS:
            lines += [f"| {arm} | {lv} | {n} | {_money(amount)} |" for lv, n, amount in r.arms[arm].by_level]
        lines.append("")
        c = r.comparison
        if c is None:
            lines.append("Comparison: each arm needs at least two cases.")
        else:
            verdict = "significant at 5 %" if c.significant else "not significant at 5 %"
            lines.append(f"Challenger - champion: mean cash per case {c.mean_difference:+.2f} "
                         f"[{c.mean_interval[0]:+.2f}, {c.mean_interval[1]:+.2f}], p = {c.mean_p:.4f}; "
                         f"recovery rate {c.rate_difference:+.1%}, p = {c.rate_p:.4f}: {verdict}.")
        lines.append("")
    return "\n".join(lines)
