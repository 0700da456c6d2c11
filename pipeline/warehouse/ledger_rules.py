"""What a ledger status and an action kind mean: one definition, read by every model, view and command.

The meanings live in two seed files, `sql/seeds/ledger_statuses.csv` and
`sql/seeds/action_kinds.csv`. They are loaded as the tables `ledger_statuses`
and `action_kinds` (for analysts to join) and turned into DuckDB macros that
every SQL model and view uses instead of spelling out status lists:

- `status_is_done(status)`: the level ran. It counts for the case's progress,
  its fee is charged (`fee_ledger`) and explain shows it as history.
- `status_is_dispatch_record(status)`: a record of something handed to
  someone; a re-run or a backfill never replaces such a row.
- `status_is_sent(status)`: delivered (or confirmed as sent by a person).
- `status_is_exported(status)`: a non-document action the export views list
  (a contract counts as ended when its end_contract is exported).
- `status_is_pending_dispatch(status)`: still to be rendered or sent.
- `action_is_document(action)`, `action_is_export(action)`,
  `action_is_transition(action)`: the action kinds.
- `aging_bucket(is_overdue, days_overdue)`: the aging bucket (sql/seeds/aging_buckets.csv).

The macros carry the values as literals (taken from the seed files, checked
against a strict pattern), so they work in any schema and in the analysts' copy
without a lookup table.
"""

from __future__ import annotations

import csv
import re
from functools import cache
from pathlib import Path

SEEDS = Path(__file__).resolve().parents[2] / "sql" / "seeds"
_VALUE = re.compile(r"^[a-z][a-z_]{0,40}$")

STATUS_FLAGS = ("counts_as_done", "is_dispatch_record", "is_sent", "is_exported", "is_pending_dispatch")
_STATUS_MACROS = {
    "status_is_done": "counts_as_done",
    "status_is_dispatch_record": "is_dispatch_record",
    "status_is_sent": "is_sent",
    "status_is_exported": "is_exported",
    "status_is_pending_dispatch": "is_pending_dispatch",
}
_ACTION_MACROS = {"action_is_document": "document", "action_is_export": "export",
                  "action_is_transition": "transition"}


def _read(name: str) -> list[dict[str, str]]:
    with open(SEEDS / name, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for i, row in enumerate(rows, start=2):
        key = row.get("status") or row.get("action") or ""
        if not _VALUE.match(key):
            raise ValueError(f"{SEEDS / name}, row {i}: {key!r} is not a valid name")
    return rows


@cache
def statuses() -> tuple[dict[str, str], ...]:
    return tuple(_read("ledger_statuses.csv"))


@cache
def aging_buckets() -> tuple[str, ...]:
    """The aging buckets in order, from sql/seeds/aging_buckets.csv (used by views and reports)."""
    with open(SEEDS / "aging_buckets.csv", newline="", encoding="utf-8") as fh:
        return tuple(r["bucket"] for r in csv.DictReader(fh))


def _aging_macro() -> str:
    with open(SEEDS / "aging_buckets.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not re.fullmatch(r"[a-z0-9 -]+", "".join(r["bucket"] for r in rows)):
        raise ValueError(f"{SEEDS / 'aging_buckets.csv'}: bucket names are letters, digits, spaces and -")
    branches = [f"when not is_overdue then '{rows[0]['bucket']}'"]
    branches += [f"when days_overdue <= {int(r['up_to_days'])} then '{r['bucket']}'" for r in rows[1:-1]]
    return (f"create or replace macro aging_bucket(is_overdue, days_overdue) as case {' '.join(branches)} "
            f"else '{rows[-1]['bucket']}' end;")


@cache
def action_kinds() -> tuple[dict[str, str], ...]:
    return tuple(_read("action_kinds.csv"))


def statuses_where(flag: str) -> tuple[str, ...]:
    """The statuses whose `flag` column is true, in seed order (for Python that must name them)."""
    if flag not in STATUS_FLAGS:
        raise KeyError(flag)
    return tuple(r["status"] for r in statuses() if r[flag] == "true")


def actions_of_kind(kind: str) -> tuple[str, ...]:
    return tuple(r["action"] for r in action_kinds() if r["kind"] == kind)


def templated_actions() -> tuple[str, ...]:
    """The document actions rendered from a template (a webhook is a document without one)."""
    return tuple(r["action"] for r in action_kinds() if r["templated"] == "true")


def _in_list(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")" if values else "(null)"


def macro_ddl() -> str:
    """CREATE MACRO statements for the predicates (values checked by `_read`)."""
    out = [f"create or replace macro {name}(status) as coalesce(status in {_in_list(statuses_where(flag))}, false);"
           for name, flag in _STATUS_MACROS.items()]
    out += [f"create or replace macro {name}(action) as coalesce(action in {_in_list(actions_of_kind(kind))}, false);"
            for name, kind in _ACTION_MACROS.items()]
    out.append(_aging_macro())
    return "\n".join(out)


def ensure_ledger_rules(con, *, tables: bool = True) -> None:
    """Create the macros and (re)load the seed tables in the current schema."""
    con.execute(macro_ddl())
    if not tables:
        return
    flags = ", ".join(f"{f} boolean not null" for f in STATUS_FLAGS)
    con.execute(f"create or replace table ledger_statuses (status varchar primary key, {flags}, "
                "description varchar not null)")
    con.executemany("insert into ledger_statuses values (?, ?, ?, ?, ?, ?, ?)",
                    [[r["status"], *(r[f] == "true" for f in STATUS_FLAGS), r["description"]] for r in statuses()])
    con.execute("create or replace table action_kinds (action varchar primary key, kind varchar not null, "
                "templated boolean not null, description varchar not null)")
    con.executemany("insert into action_kinds values (?, ?, ?, ?)",
                    [[r["action"], r["kind"], r["templated"] == "true", r["description"]] for r in action_kinds()])
