"""`dunning explain CASE_ID`: why a dunning case is where it is, as of a day.

The answer must be the product's own, so no rule is re-implemented here: the
day's SQL models run as temp tables (`run_daily_models`) and the facts are read
from them. Temp tables live only in this connection and DuckDB allows them on a
read-only connection, so `main` opens the database read-only: explaining never
changes the state. Like any DuckDB reader it cannot open the file while a run
holds it, and a run cannot start during the seconds an explanation takes.

The state shown is the end of the as-of day: its closures, openings and the
level it executed (from `planned_actions`, with the ledger's status if the day
was run). For what comes next, that level must count as the last one: the case's
`int_active_cases` row is rewritten as the next day's `int_case_progress` would
read it from the ledger, and `int_pending_levels` is re-run. The pick among the
reachable levels mirrors `levels_due` (the highest whose day has come); the
gates (suspension, threshold, manual confirmation) come from `int_active_cases`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb

from pipeline.sql_runner import run_daily_models, run_model


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
    next_action: NextAction | None = None
    version_in_file: bool = True   # False: edited or removed from the policy file since; kept for this case

    @property
    def is_open(self) -> bool:
        return self.closed_on is None

    @property
    def current_level(self) -> LevelStep | None:
        """The last level executed up to the as-of day (its actions share the level)."""
        done = [s for s in self.history if s.action != "level_skipped"]
        return max(done, key=lambda s: (s.level_no, s.executed_on)) if done else None


def _rows(con, sql: str, params=None) -> list[dict]:
    cur = con.execute(sql, params or [])
    return [dict(zip([d[0] for d in cur.description], r)) for r in cur.fetchall()]


def _money(v) -> Decimal | None:
    return None if v is None else Decimal(v).quantize(Decimal("0.01"))


_STEP = "level_no, level_name, action, status, scheduled_on, executed_on, level_due_date"


def explain_case(con, case_id: str, as_of: date | None = None) -> Explanation:
    reg = _rows(con, "select * from case_register where case_id = ?", [case_id])
    if not reg:
        raise ExplainError(f"no dunning case {case_id!r} in the case register")
    r = reg[0]
    last_run = con.execute("select max(as_of) from run_log").fetchone()[0]
    as_of = as_of or last_run
    if as_of is None:
        raise ExplainError("the pipeline has not run yet; give --as-of")
    if last_run is not None and as_of > last_run:
        raise ExplainError(f"the pipeline has run up to {last_run}; {as_of} has no recorded state yet")
    if as_of < r["opened_on"]:
        raise ExplainError(f"case {case_id} opened on {r['opened_on']}; it did not exist on {as_of}")
    pv = _rows(con, "select scope, grace_days from policy_versions where policy_version = ?", [r["policy_version"]])
    e = Explanation(case_id, as_of, r["scope"], r["target_id"], r["contract_id"], r["customer_id"], r["currency"],
                    r["policy_id"], r["policy_version"], *(pv[0].values() if pv else (None, None)), r["opened_on"])
    e.version_in_file = bool(_rows(con, "select in_file from policy_versions where policy_version = ?",
                                   [r["policy_version"]])[0]["in_file"]) if pv else False
    e.history = [LevelStep(**s) for s in _rows(
        con, f"select {_STEP} from action_ledger where case_id = ? and executed_on < ? order by executed_on, level_no",
        [case_id, as_of])]
    if r["closed_on"] is not None and r["closed_on"] < as_of:   # closed before the day: nothing to compute
        e.closed_on, e.close_reason = r["closed_on"], r["close_reason"]
        return e
    run_daily_models(con, as_of)
    if e.scope == "collection":  # a failed collection: its facts are in the col_* models
        from pipeline.failed_collections.explain import explain_collection

        return explain_collection(con, e, as_of)
    closing = con.execute("select close_reason from int_case_closures where case_id = ?", [case_id]).fetchall()
    if closing:   # decided before the day's actions
        e.closed_on, e.close_reason = as_of, closing[0][0]
        return e
    active = _rows(con, """select a.*, t.followed_invoice_number, t.followed_paused, t.open_amount,
                                  t.contract_id as followed_contract_id, b.balance as contract_balance
                           from int_active_cases a
                           join int_dunning_targets t on t.scope = a.scope and t.target_id = a.target_id
                           left join int_contract_balances b on b.contract_id = a.contract_id
                           where a.case_id = ?""", [case_id])
    if not active:
        raise ExplainError(f"the models do not show case {case_id} open on {as_of} (inputs changed since it ran?)")
    a = active[0]
    e.followed_invoice_id, e.followed_invoice_number = a["followed_invoice_id"], a["followed_invoice_number"]
    e.followed_due_date, e.days_overdue = a["followed_due_date"], a["days_overdue"]
    e.overdue_amount, e.threshold = _money(a["overdue_amount"]), _money(a["threshold"])
    e.balance = _money(a["contract_balance"] if e.scope == "contract" else a["open_amount"])
    e.dunning_disabled = bool(a["dunning_disabled"])
    e.suspensions = [Suspension(**s) for s in _rows(con, """
        select s.scope, coalesce(s.target_id, '*') as target_id, s.from_date, s.to_date
        from stg_suspensions s join int_suspensions_in_force f
          on f.scope = s.scope and f.target_id = coalesce(s.target_id, '*')
        where s.from_date <= $d and (s.to_date is null or s.to_date > $d)
          and (s.scope = 'global' or (s.scope = 'customer' and s.target_id = $cu)
               or (s.scope = 'contract' and s.target_id = $ct) or (s.scope = 'invoice' and s.target_id = $inv))
        order by s.scope, s.from_date""",
        {"d": as_of, "cu": e.customer_id, "ct": a["followed_contract_id"], "inv": e.followed_invoice_id})]
    if a["followed_paused"]:
        e.suspensions.append(Suspension("pause flag", e.followed_invoice_id, None, None))
    today = _rows(con, """select p.level_no, p.level_name, p.action, coalesce(l.status, 'not run') as status,
                                  p.scheduled_on, p.executed_on, p.level_due_date, p.channel, p.fees_total,
                                  p.action_key, l.confirmed_on
                           from planned_actions p left join action_ledger l using (action_key)
                           where p.case_id = ? order by p.level_no, p.action_key""", [case_id])
    e.history += [LevelStep(**{k: t[k] for k in _STEP.split(", ")}) for t in today]
    executed = [t for t in today if t["action"] != "level_skipped"]
    e.fees_total = _money(executed[0]["fees_total"] if executed else a["fees_total"])
    if a["awaiting_confirmation"]:   # the model's flag; the ledger names the document
        keys = con.execute("""select action_key from action_ledger where case_id = ? and channel = 'manual'
                              and status <> 'skipped' and executed_on < ?
                              and (confirmed_on is null or confirmed_on > ?) order by executed_on""",
                           [case_id, as_of, as_of]).fetchall()
        e.awaiting_confirmation = keys[0][0] if keys else "a manual reminder"
    if executed:
        t = executed[0]   # a level may run several actions; they share level, due date and fees
        manual = [x["action_key"] for x in executed
                  if x["channel"] == "manual" and (x["confirmed_on"] is None or x["confirmed_on"] > as_of)]
        e.awaiting_confirmation = e.awaiting_confirmation or (manual[0] if manual else None)
        # the state the next day's int_case_progress reads from the ledger, then the pending levels from it
        con.execute("""create or replace temp table int_active_cases as
                       select * replace (?::integer as last_level_no, ?::date as last_level_due_date,
                                         (awaiting_confirmation or ?) as awaiting_confirmation)
                       from int_active_cases where case_id = ?""",
                    [t["level_no"], t["level_due_date"], e.awaiting_confirmation is not None, case_id])
        run_model(con, "intermediate/int_pending_levels", {"as_of": as_of})
    pending = _rows(con, """select level_no, level_name, scheduled_on from int_pending_levels
                            where case_id = ? and reachable order by level_no""", [case_id])
    e.next_action = _next_action(e, pending, earliest=as_of + timedelta(days=1))
    return e


def _next_action(e: Explanation, pending: list[dict], earliest: date) -> NextAction | None:
    """The next reachable level, its day, and what holds it (gates as in levels_due, read from the models)."""
    if not pending:
        return None
    day = max(earliest, min(p["scheduled_on"] for p in pending))
    held, resumes = [], day
    for s in e.suspensions:
        what = "pause flag on the followed invoice" if s.scope == "pause flag" else (
            f"{s.scope} suspension" + ("" if s.scope == "global" else f" of {s.target_id}"))
        if s.to_date is None:
            held.append(what + ("" if s.scope == "pause flag" else " (no end date)"))
        elif s.to_date > day:
            held.append(f"{what} until {s.to_date}")
            resumes = max(resumes, s.to_date)   # on resumption a level whose time has come runs at once
    dated = sum(1 for s in e.suspensions if s.to_date is not None and s.to_date > day)
    if e.awaiting_confirmation:
        held.append(f"confirmation of the manual reminder {e.awaiting_confirmation} "
                    "(later levels move by the days until it is confirmed)")
    if e.overdue_amount <= 0:
        held.append("nothing is overdue")
    elif e.overdue_amount < e.threshold:
        held.append(f"overdue amount {_fmt_money(e.overdue_amount, e.currency)} is below the threshold "
                    f"{_fmt_money(e.threshold, e.currency)}")
    if e.dunning_disabled:
        held.append(f"dunning is disabled for customer {e.customer_id}")
    runs_on = resumes if len(held) == dated else None   # anything else waits for an event, not a date
    # as levels_due: the highest reachable level whose day has come on that day
    at = runs_on or day
    chosen = max((p for p in pending if p["scheduled_on"] <= at), key=lambda p: p["level_no"], default=pending[0])
    return NextAction(chosen["level_no"], chosen["level_name"], chosen["scheduled_on"], runs_on, held)


def _fmt_money(v: Decimal | None, ccy: str) -> str:
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
                  ("Overdue", f"{_fmt_money(e.overdue_amount, e.currency)} against threshold "
                              f"{_fmt_money(e.threshold, e.currency)}"
                              + (" (reached)" if 0 < e.overdue_amount >= e.threshold else " (below: the case waits)")),
                  ("Balance", _fmt_money(e.balance, e.currency)),
                  ("Fees so far", _fmt_money(e.fees_total, e.currency))]
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


def main(database: Path, case_id: str, as_of: date | None) -> int:
    try:
        con = duckdb.connect(str(database), read_only=True)
    except duckdb.Error as exc:
        print(f"cannot open {database} read-only: {exc}", file=sys.stderr)
        return 1
    try:
        print(format_explanation(explain_case(con, case_id, as_of)))
        return 0
    except ExplainError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except duckdb.Error as exc:   # not a dunning database, or one from an older version
        print(f"cannot explain from {database}: {exc}", file=sys.stderr)
        return 1
    finally:
        con.close()
