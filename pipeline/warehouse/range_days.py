"""A range computes each day from the day before plus that day's changes.

A backfill, a simulation and a scenario run the daily step once per day. Run
whole, every day re-reads and re-aggregates the complete history: at 100k
contracts 90 days took about 100 s, most of it recomputing, every day, balances
and cases of customers for whom nothing had happened. `RangeDays` lets the same
step run over only the customers whose results can differ from the day before:

* **Who is recomputed on a day** (`plan`): the customers with an input row
  dated that day (`sql/range/range_changes.sql`, computed once for the range),
  and the customers whose own results of the last day they were computed named
  this day or an earlier one as the next day anything can change for them
  (`sql/range/range_next_changes.sql`, which reads the day's model results: a
  receivable falling due, the end of a grace period, a level's day, a case
  that closed or acted, a held courtesy level, a failed collection). The first
  day of the range, and a day a global input changes (the end of a global
  suspension, a policy version taking or losing effect), are computed whole.
  Only the first day rewinds (`rewinds`). The last day is narrowed like any
  other; `open_receivables` (the latest day's, of every customer) then comes
  from the models it is made of, run again over everyone (`write_open_receivables`).
* **How** (`restricted`): the very same daily models (`sql/intermediate`,
  `sql/collections`, `sql/marts`), with the inputs and the state they read
  (customers, contracts, invoices, payments, cases, ledger) narrowed to those
  customers by temp views of the same names, which DuckDB resolves before the
  schema's own (the inputs from an in-memory copy sorted by customer, from which
  a day takes its customers' rows without reading the rest). Every rule of the
  models is per customer (credit never crosses
  contracts, a customer case stays within one customer; customers sharing a
  mandate are recomputed every day), so the models give those customers
  exactly the rows a whole day gives them. There is one implementation of the
  balance and dunning rules; this module only chooses whom they run for.
* **What is carried**: the other customers open no case, close none and plan
  nothing that day (nothing of theirs changed), and their contract balances
  are the last computed ones, dated the day (`sql/range/range_carried_balances.sql`).
  A day on which nobody is recomputed runs no model at all (the last day runs those of
  `open_receivables`). The range writes
  every contract balance of its days itself, computed or carried: every
  `FLUSH_DAYS` days and after the last day, in one statement for those days
  (`apply_day` leaves them out). At 1M contracts, measured while the days still
  wrote their computed rows themselves, a statement a day for the 940,000 carried
  rows cost 0.35-0.6 s with its commit, ten days in one statement 2.0-3.2 s.
  A range that fails writes them up to its last committed day
  (`close`), so every day it committed has all its balances.

`tests/integration/test_replay_equivalence.py` checks on generated worlds that
days one by one (always whole), a backfill and a simulation (both through this
module) agree; `tests/integration/test_replay_policy_features.py` that a range
equals its days computed whole under every feature of the policy language;
`tests/integration/test_incremental_ranges.py` that a day recomputes exactly the
customers that were touched.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import date, timedelta
from enum import Enum
from typing import TYPE_CHECKING

import duckdb

from pipeline.warehouse.sql_runner import parameters_of, read_model, run_daily_models, run_model, with_inputs
from pipeline.warehouse.state import write_open_receivables

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

CHANGES = "range/range_changes"
NEXT_CHANGES = "range/range_next_changes"
CARRIED_BALANCES = "range/range_carried_balances"
OPEN_RECEIVABLES = "intermediate/int_open_receivables"

# The inputs the day's models read rows of a customer from, narrowed on a day that recomputes
# some customers: (table, the column its rows are found by, the day's set of those keys). Their
# rows are kept for the range in memory, sorted by that column (`_IndexedInput`), so a day takes
# its customers' rows without reading the others: a scan of the whole input per day cost more
# than the models themselves.
INPUTS = (
    ("stg_customers", "customer_id", "range_recomputed_customers"),
    ("stg_contracts", "customer_id", "range_recomputed_customers"),
    ("stg_invoices", "customer_id", "range_recomputed_customers"),  # an invoice's customer is its contract's
    ("stg_payments", "contract_id", "range_recomputed_contracts"),
)
# The state the models read, which the range itself writes: narrowed by a view per day.
STATE = (
    ("case_register", "customer_id in (select customer_id from range_recomputed_customers)"),
    ("action_ledger", "customer_id in (select customer_id from range_recomputed_customers)"),
)

_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# Temp tables a range keeps from day to day (dropped by `close`).
_KEPT = ("range_changes", "range_next_changes", "range_wake", "range_balances", "range_carried_spans", "range_flushed",
         "range_recomputed_customers", "range_recomputed_contracts", *(f"range_ranks_{t}" for t, _, _ in INPUTS))

# Above this share of the customers (of a book this large) a day is computed whole: narrowing would
# cost more than it saves. The result is the same either way. Measured on the bench's sample: at 1M
# contracts a narrowed day costs about 0.5 s plus 32 us per customer recomputed (2.3 s for 70,000,
# 14 s for 390,000) and a whole day 6.5-11 s, so they meet near a quarter of the 800,000 customers;
# at 100k near 40%, where either costs under a second.
WHOLE_DAY_SHARE = 0.25
WHOLE_DAY_MIN_CUSTOMERS = 1000

# The balances are written every this many days (and after the last day). Fewer, larger
# statements cost less; the rows of one statement are not ordered by day, so a query for one day
# reads the row groups of its statement's days. The rows are the same whatever the number.
FLUSH_DAYS = 10

# Threads that take a day's rows out of a range's in-memory inputs (`_IndexedInput.rows_of`).
_TAKE_THREADS = max(1, min(4, os.cpu_count() or 1))


class Computed(str, Enum):
    """Whom a day of a range recomputed."""

    ALL = "all"    # every customer: the day's models ran over all inputs
    SOME = "some"  # the customers touched that day (DayResult.customers_computed)
    NONE = "none"  # nobody: no model ran (but those of open_receivables on the last day), balances carried


class RangeDays:
    """The state a range carries from one day to the next; see the module's docstring.

    Use: `begin` once, before the first day (inputs and the range's schema in place); then for
    each day in order, inside the day's transaction: `plan`, the models inside `restricted`,
    `apply_day(..., balances=False, open_receivables=<the last day, computed ALL>)` (the range
    writes the balances), then `after_day`, and on a last day not computed ALL
    `write_open_receivables`; `close` after the last day (`pipeline.engine.run.plan_day` does all this).
    """

    def __init__(self, start: date, end: date) -> None:
        self.start, self.end = start, end
        self.computed_whole = False  # a whole day has been computed: there is something to carry
        self.customers = 0
        self.recomputed: int | None = None  # customers recomputed on the latest planned day
        self._sources: dict[str, str] = {}  # what each narrowed name resolves to in the range's schema
        self._inputs: dict[str, _IndexedInput] = {}  # each input's rows by its key (INPUTS)
        self._global_days: set[date] = set()  # days on which something changes for every customer
        self._flushed_on: date | None = None  # the last day whose balances were written (cadence only)

    @classmethod
    def begin(cls, con, start: date, end: date) -> RangeDays:
        days = cls(start, end)
        run_model(con, CHANGES, {"start": start, "end": end})
        days.customers = con.execute("select count(*) from stg_customers").fetchall()[0][0]
        days._global_days = {r[0] for r in con.execute(
            "select distinct changed_on from range_changes where customer_id is null and changed_on is not null"
        ).fetchall()}
        days._sources = {table: _resolved(con, table) for table in (*(t for t, _, _ in INPUTS), *(t for t, _ in STATE))}
        for table, key, _ in INPUTS:  # fixed names
            days._inputs[table] = _IndexedInput(con, days._sources[table], key, table)
        con.execute("create or replace temp table range_wake (customer_id varchar, next_change_on date)")
        return days

    def close(self, con, completed: date | None = None) -> None:
        """Drop what the range kept. `completed`: the last day the range committed; when the range
        stopped before its last day, the balances of its committed days are written first."""
        try:
            if completed is not None and self.computed_whole and completed < self.end:
                try:
                    con.execute("begin transaction")
                    self.flush(con, completed)
                    con.execute("commit")
                except duckdb.Error as exc:  # the range has failed already: say so, keep its own error
                    with suppress(duckdb.Error):  # no transaction left to roll back if `begin` failed
                        con.execute("rollback")
                    log.error("the range stopped after %s; the contract balances of its days up to then could "
                              "not be written: %s", completed, exc)
        finally:
            for table in _KEPT:  # fixed names
                con.execute(f"drop table if exists temp.main.{table}")

    def rewinds(self, as_of: date) -> bool:
        """Whether `as_of` must rewind what earlier runs recorded (`state.rewind_to`): only the first day.

        The first day's rewind removes everything from the range's first day on that records no
        dispatch; from then on each day writes rows dated that day only (a range that is not live
        holds nothing back either), so the rewind of a later day would find nothing to remove.
        """
        return as_of <= self.start or not self.computed_whole

    def plan(self, con, as_of: date) -> Computed:
        """Whom `as_of` recomputes; leaves them in range_recomputed_customers and _contracts."""
        self.recomputed = None
        if as_of == self.start or not self.computed_whole or as_of < self.start or as_of > self.end:
            return Computed.ALL
        if as_of in self._global_days:
            return Computed.ALL  # the end of a global suspension, a policy version: everyone's day changes
        con.execute(
            """create or replace temp table range_recomputed_customers as
               select customer_id from range_changes
               where (changed_on = $day or changed_on is null) and customer_id is not null
               union
               select customer_id from range_wake where next_change_on <= $day""",
            {"day": as_of})
        self.recomputed = con.execute("select count(*) from range_recomputed_customers").fetchall()[0][0]
        if self.recomputed > WHOLE_DAY_SHARE * self.customers >= WHOLE_DAY_SHARE * WHOLE_DAY_MIN_CUSTOMERS:
            self.recomputed = None
            return Computed.ALL
        # their contracts: made from the narrowed contracts (`restricted`) on a day that recomputes some
        con.execute("create or replace temp table range_recomputed_contracts (contract_id varchar)")
        return Computed.SOME if self.recomputed else Computed.NONE

    @contextmanager
    def restricted(self, con, computed: Computed) -> Iterator[None]:
        """Inside the block, the inputs and state the models read hold the recomputed customers' rows only.

        Each narrowed relation is a temp view named like the table it narrows, which DuckDB
        resolves first, so the unchanged models read it; a write to one of those names fails
        instead of going astray, and they are gone before the day writes anything (into the
        schema's own tables). A failed day's rollback drops them too.
        """
        if computed is not Computed.SOME:
            yield
            return
        registered, views = [], []
        try:
            for table, _, key_set in INPUTS:  # fixed names, each key set made before it is used
                rows = self._inputs[table].rows_of(con, key_set)
                con.register(table, rows)
                registered.append(table)
                if table == "stg_contracts":
                    con.execute("insert into range_recomputed_contracts select contract_id from stg_contracts")
            for table, rows in STATE:  # fixed names and conditions; the source is the catalog's
                con.execute(f"create temp view {table} as select * from {self._sources[table]} where {rows}")
                views.append(table)
            yield
        finally:
            drops = [lambda t=t: con.execute(f"drop view temp.main.{t}") for t in reversed(views)]
            drops += [lambda t=t: con.unregister(t) for t in reversed(registered)]
            for drop in drops:
                try:
                    drop()
                except duckdb.Error:  # the failed day's rollback drops it: it was made in that transaction
                    if not _in_failed_transaction(con):
                        raise

    def flush(self, con, through: date) -> None:
        """Write the balances (computed and carried) of the days after the last flush up to `through`."""
        sql = read_model(CARRIED_BALANCES)
        params = {"through": through}
        con.execute(f"insert into contract_balances by name select * from ({sql})",
                    {k: v for k, v in params.items() if k in parameters_of(sql)})
        con.execute("delete from range_carried_spans where carried_to <= $through", {"through": through})
        con.execute("update range_flushed set through = $through", {"through": through})
        self._flushed_on = through

    def write_open_receivables(self, con, as_of: date) -> None:
        """`open_receivables` (the latest day's, of every customer) on a last day that recomputed only some
        customers or none: the models it is made from (`with_inputs`) run again over every customer.
        At 1M contracts they took 1.15 s on the range's inputs (0.47, 0.20 and 0.48 s on its first day),
        where computing the whole last day took 11.5 s."""
        run_daily_models(con, as_of, with_inputs(OPEN_RECEIVABLES), live=False)
        write_open_receivables(con)

    def after_day(self, con, as_of: date, computed: Computed) -> None:
        """After `apply_day`: the next day anything can change for the recomputed customers, and the
        balances to write: a recomputed contract's span (its last computed row, carried) ends the day
        before, and its row of the day opens the next one."""
        if computed is not Computed.NONE:
            run_model(con, NEXT_CHANGES, {"as_of": as_of})
        if computed is Computed.ALL:
            if self.computed_whole:  # every contract's span ends the day before
                con.execute("""insert into range_carried_spans
                               select *, cast($day as date) - 1 as carried_to from range_balances""",
                            {"day": as_of})
            con.execute("create or replace temp table range_wake as select * from range_next_changes")
            con.execute("create or replace temp table range_balances as select * from int_contract_balances")
            if not self.computed_whole:  # the first whole day: nothing is written yet
                con.execute("create or replace temp table range_carried_spans as "
                            "select *, as_of as carried_to from range_balances limit 0")
                con.execute("create or replace temp table range_flushed as select cast($day as date) - 1 as through",
                            {"day": as_of})
                self._flushed_on = as_of - timedelta(days=1)
            self.computed_whole = True
        elif computed is Computed.SOME:
            con.execute("""delete from range_wake
                           where customer_id in (select customer_id from range_recomputed_customers)""")
            con.execute("insert into range_wake select * from range_next_changes")
            con.execute("""insert into range_carried_spans
                           select b.*, cast($day as date) - 1 as carried_to from range_balances b
                           semi join range_recomputed_contracts r using (contract_id)""", {"day": as_of})
            con.execute("""delete from range_balances
                           where contract_id in (select contract_id from range_recomputed_contracts)""")
            con.execute("insert into range_balances select * from int_contract_balances")
        if self.computed_whole and (as_of >= self.end or (as_of - self._flushed_on).days >= FLUSH_DAYS):
            self.flush(con, as_of)


class _IndexedInput:
    """An input's rows for the range, in memory and sorted by `key`: the rows of one key are a slice,
    so a day takes its keys' rows by their positions, which is far cheaper than DuckDB reading and
    joining every row of the input. Arrow keeps DuckDB's types (DECIMAL, DATE, VARCHAR) exactly;
    the repeated source file name is dictionary-encoded, which DuckDB reads back as VARCHAR. Where
    each key's slice starts and how long it is is a temp table (`range_ranks_<input>`): DuckDB finds
    a day's keys by a join and lists their rows' positions, where a lookup per key in Python took a
    fifth of a second a day at 1M contracts. Filtering every row by its key's rank (`is_in`) instead
    took 278-333 ms for a day's invoices or payments at 1M contracts against 198-289 ms this way
    (65,000 customers); at 100k both take 27-40 ms."""

    def __init__(self, con, source: str, key: str, table_name: str) -> None:
        import pyarrow as pa

        # within a key in source order, as ingestion wrote them: the same rows in the same order every run
        table = con.sql(f"select * from {source} order by {key} nulls last, _source_file, _source_row"
                        ).to_arrow_table().combine_chunks()
        i = table.column_names.index("_source_file")  # every input has it: ingestion adds it
        table = table.set_column(i, "_source_file", table.column(i).dictionary_encode())
        self.table = table
        # per row, its key's index among the keys, which ascend with the rows (the rows are sorted by key)
        encoded = table.column(key).combine_chunks().dictionary_encode()
        self.key = key
        self.ranks_table = f"range_ranks_{table_name}"  # table_name: one of INPUTS' fixed names
        con.register("range_ranks_arrow", pa.table({"rank": encoded.indices}))
        con.register("range_keys_arrow", pa.table({"key": encoded.dictionary,
                                                   "rank": pa.array(range(len(encoded.dictionary)),
                                                                    type=encoded.indices.type)}))
        try:
            con.execute(f"""create or replace temp table {self.ranks_table} as
                            with counted as (
                                select rank, count(*) as row_count from range_ranks_arrow
                                where rank is not null group by rank
                            )
                            select k.key, cast(sum(c.row_count) over (order by c.rank) - c.row_count as bigint)
                                          as first_row, c.row_count
                            from counted c join range_keys_arrow k using (rank)""")
        finally:
            con.unregister("range_ranks_arrow")
            con.unregister("range_keys_arrow")

    def rows_of(self, con, key_set: str) -> pa.Table:
        """The rows whose key is in the temp table `key_set` (one of INPUTS' fixed names), in the range's order."""
        import pyarrow as pa

        positions = con.sql(f"""select unnest(range(r.first_row, r.first_row + r.row_count)) as position
                                from {self.ranks_table} r semi join {key_set} k on k.{self.key} = r.key
                                order by position""").to_arrow_table().column(0)
        # column by column on every core: Arrow's take runs without the GIL, and a day's invoices or
        # payments at 1M contracts (some 700,000 of 9M rows) took 113-122 ms in one take, 55-65 ms so on
        # two cores (the same rows)
        with ThreadPoolExecutor(max_workers=_TAKE_THREADS) as pool:
            columns = list(pool.map(lambda column: column.take(positions), self.table.columns))
        return pa.Table.from_arrays(columns, schema=self.table.schema)


def _resolved(con, table: str) -> str:
    """The qualified name `table` resolves to along the search path (a table of this database)."""
    database, path = con.execute("select current_database(), current_setting('search_path')").fetchall()[0]
    schemas = [s.strip() for s in path.split(",") if s.strip()] + ["main"]
    found = {r[0] for r in con.execute(
        "select schema_name from duckdb_tables() where database_name = ? and table_name = ? and not temporary",
        [database, table]).fetchall()}
    for schema in schemas:
        if schema in found:
            if '"' in database or not _SCHEMA.fullmatch(schema):
                raise ValueError(f"cannot narrow {table}: unexpected name {database}.{schema}")
            return f'"{database}".{schema}.{table}'
    raise ValueError(f"cannot narrow {table}: no such table on the search path {path!r}")


def _in_failed_transaction(con) -> bool:
    try:
        con.execute("select 1").fetchall()
    except duckdb.Error:
        return True
    return False
