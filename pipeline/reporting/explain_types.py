"""What `dunning explain` shows, shared by the dunning and the failed-collection explanations.

The dataclasses, the readers of rows and money, the fees (read from the ledger) and the
text format. `pipeline.reporting.explain` fills an `Explanation` for a dunning case and
`pipeline.failed_collections.explain` for a collection case; neither imports the other's
rules, which live in the SQL models (`marts/case_outlook`, `collections/collection_case_outlook`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal


class ExplainError(LookupError):
    """The case or day cannot be explained; the message says why."""


@dataclass
class LevelStep:
    level_no: int
    level_name: str
    action: str            # reminder / level_skipped
    status: str            # ledger status, or "not run" for a day the pipeline has not recorded
    scheduled_on: date | None
    executed_on: date
    level_due_date: date | None
    # the level ran (status_is_done: not held by the fresh-data gate, not skipped); not compared, so a
    # step reads as the ledger row it is
    done: bool = field(default=True, compare=False)


@dataclass
class Suspension:
    scope: str             # global / customer / contract / invoice / pause flag
    target_id: str
    from_date: date | None
    to_date: date | None   # the day dunning resumes; None = open-ended


@dataclass
class NextAction:
    level_no: int
    level_name: str
    scheduled_on: date     # anchor + days, as things stand on the as-of day
    runs_on: date | None   # None: waits for an event (payment, confirmation, lifted pause)
    held_by: list[str] = field(default_factory=list)


@dataclass
class Explanation:
    case_id: str
    as_of: date
    scope: str
    target_id: str
    contract_id: str
    customer_id: str
    currency: str
    policy_id: str
    policy_version: str
    policy_scope: str | None   # None: the case's version is missing from the database
    grace_days: int | None
    opened_on: date
    closed_on: date | None = None
    close_reason: str | None = None
    followed_invoice_id: str | None = None
    followed_invoice_number: str | None = None
    followed_due_date: date | None = None
    days_overdue: int | None = None
    overdue_amount: Decimal | None = None
    balance: Decimal | None = None
    threshold: Decimal | None = None
    fees_total: Decimal = Decimal("0.00")
    history: list[LevelStep] = field(default_factory=list)
    suspensions: list[Suspension] = field(default_factory=list)
    dunning_disabled: bool = False
    awaiting_confirmation: str | None = None   # the action key of the unconfirmed manual reminder
    # whether what the next level demands reaches the threshold (the outlook model's below_threshold
    # and nothing_overdue); None: not known (a closed case)
    threshold_reached: bool | None = None
    demanded_amount: Decimal | None = None     # what the next level demands, when not the overdue amount
    next_action: NextAction | None = None
    version_in_file: bool = True   # False: edited or removed from the policy file since; kept for this case

    @property
    def is_open(self) -> bool:
        return self.closed_on is None

    @property
    def current_level(self) -> LevelStep | None:
        """The last level executed up to the as-of day (its actions share the level)."""
        done = [s for s in self.history if s.done and s.action != "level_skipped"]
        return max(done, key=lambda s: (s.level_no, s.executed_on)) if done else None


STEP_COLUMNS = ("level_no", "level_name", "action", "status", "scheduled_on", "executed_on", "level_due_date")


def recorded_steps(con, case_id: str, as_of: date) -> list[LevelStep]:
    """The case's ledger rows up to the end of `as_of`: what the runs recorded, including what a re-run
    of the day kept (a dispatch record its new plan no longer has)."""
    return [LevelStep(**s) for s in rows(
        con, f"""select {", ".join(STEP_COLUMNS)}, status_is_done(status) as done from action_ledger
                  where case_id = ? and executed_on <= ? order by executed_on, level_no, action_key""",
        [case_id, as_of])]


def planned_steps(con, case_id: str, as_of: date, planned: str) -> list[LevelStep]:
    """The plan of `as_of` (`planned`: planned_actions or planned_collection_actions, a fixed name)
    where the ledger has not recorded it by then: a day not run (a later day may have run the same
    level), or inputs changed since (status "not run")."""
    assert planned in ("planned_actions", "planned_collection_actions")
    return [LevelStep(**s) for s in rows(
        con, f"""select {", ".join(c for c in STEP_COLUMNS if c != "status")}, 'not run' as status,
                         status_is_done(status) as done
                  from {planned}
                  where case_id = ?
                    and action_key not in (select action_key from action_ledger where executed_on <= ?)
                  order by level_no, action_key""", [case_id, as_of])]


def fees_so_far(con, case_id: str, as_of: date, planned: str) -> Decimal:
    """The fees charged up to the end of `as_of`: the case's rows of the `fee_ledger` view, plus
    the fees of the day's planned rows (`planned`: planned_actions or planned_collection_actions,
    a fixed name) when the day has not run (its keys are not in the ledger by then)."""
    assert planned in ("planned_actions", "planned_collection_actions")
    total = con.execute(f"""select coalesce(sum(fee), 0) from (
                               select fee from fee_ledger where case_id = $c and executed_on <= $d
                               union all
                               select p.fee from {planned} p
                               where p.case_id = $c
                                 and p.action_key not in (select action_key from action_ledger
                                                          where executed_on <= $d))""",
                        {"c": case_id, "d": as_of}).fetchone()[0]
    return money(total)


def rows(con, sql: str, params=None) -> list[dict]:
    cur = con.execute(sql, params or [])
    return [dict(zip([d[0] for d in cur.description], r)) for r in cur.fetchall()]


def money(v) -> Decimal | None:
    return None if v is None else Decimal(v).quantize(Decimal("0.01"))


def fmt_money(v: Decimal | None, ccy: str) -> str:
    return "-" if v is None else f"{v:,.2f} {ccy}"


def format_explanation(e: Explanation) -> str:
    lines = [("Case", f"{e.case_id} as of {e.as_of}"),
             ("Status", f"open since {e.opened_on}" if e.is_open
              else f"closed on {e.closed_on} ({e.close_reason}), opened {e.opened_on}"),
             ("Policy", f"{e.policy_id}, version {e.policy_version} " + (
                 f"({e.policy_scope} scope, grace period {e.grace_days} days"
                 + ("" if e.version_in_file else "; edited or removed from the policy file since, kept for this case")
                 + ")" if e.policy_scope else "(missing from the database)")),
             ("Dunned", {"contract": f"contract {e.contract_id}, customer {e.customer_id}",
                         "customer": f"customer {e.customer_id}, all contracts in {e.currency}",
                         "collection": f"failed collection {e.target_id} (payment or mandate) of contract "
                                       f"{e.contract_id}, customer {e.customer_id}"}.get(
                 e.scope, f"invoice {e.target_id} of contract {e.contract_id}, customer {e.customer_id}"))]
    if e.is_open:
        days = f"{e.days_overdue} day{'' if e.days_overdue == 1 else 's'}"
        lines += [("Follows", f"invoice {e.followed_invoice_number} ({e.followed_invoice_id}), due "
                              f"{e.followed_due_date}, {days} overdue"),
                  ("Overdue", fmt_money(e.overdue_amount, e.currency)
                              + ("" if e.demanded_amount is None else
                                 f"; the next level demands {fmt_money(e.demanded_amount, e.currency)} "
                                 "(what falls due by its own due date)")
                              + f" against threshold {fmt_money(e.threshold, e.currency)}"
                              + ("" if e.threshold_reached is None
                                 else " (reached)" if e.threshold_reached else " (below: the case waits)")),
                  ("Balance", fmt_money(e.balance, e.currency)),
                  ("Fees so far", fmt_money(e.fees_total, e.currency))]
    c = e.current_level
    lines.append(("Current level", f"L{c.level_no} {c.level_name}, executed {c.executed_on}, "
                                   f"due date {c.level_due_date}" if c else "none yet"))
    for i, s in enumerate(e.history):
        lines.append(("History" if i == 0 else "", f"{s.executed_on}  L{s.level_no} {s.level_name}  "
                                                   f"{s.action} ({s.status})"))
    if e.is_open:
        sus = [s.scope + ("" if s.scope == "global" else f" {s.target_id}")
               + (f" from {s.from_date}" if s.from_date else "") + (f" until {s.to_date}" if s.to_date else "")
               for s in e.suspensions]
        lines.append(("Suspensions", "; ".join(sus) or "none"))
        lines.append(("Manual", f"awaiting confirmation of {e.awaiting_confirmation}" if e.awaiting_confirmation
                      else "nothing awaiting confirmation"))
    n = e.next_action
    if not e.is_open:
        nxt = f"none: the case closed on {e.closed_on} ({e.close_reason})"
    elif e.policy_scope is None:
        nxt = "none: the case's policy version is missing from the database, so no level can run"
    elif n is None:
        nxt = "none: every level has run; the case stays open until it is cleared"
    else:
        nxt = f"L{n.level_no} {n.level_name}, scheduled {n.scheduled_on}" + (
            "" if n.runs_on is None else f", runs on {n.runs_on}" if n.runs_on <= n.scheduled_on or not n.held_by
            else f", runs on {n.runs_on}, at once when dunning resumes")
        nxt += "" if n.runs_on else ", no date yet: it waits"
        nxt += "".join(f"\n{'':15}held by {h}" for h in n.held_by)
    lines.append(("Next action", nxt))
    return "\n".join(f"{k:<15}{v}" for k, v in lines)
