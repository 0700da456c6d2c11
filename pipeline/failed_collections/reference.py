"""Reference data and analyst views of failed collections.

The reason-code tables ship with the package as CSV files and are reloaded on
every run (`load_reference`): they are reference data, so a new release's list
replaces the old contents. The views are defined here because they read the
staged payments and the ledger; they are (re)created after ingestion.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.warehouse.ddl import ddl

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
CODE_FILES = {"sepa_reason_codes": HERE / "sepa_reason_codes.csv",
              "card_decline_codes": HERE / "card_decline_codes.csv"}

CODES_DDL = ddl("reason_codes.sql")  # sql/schema/reason_codes.sql

VIEWS_DDL = ddl("collection_views.sql")  # sql/schema/collection_views.sql


def load_reference(con) -> None:
    """Replace the reason-code tables with the shipped lists and (re)create the views.

    Needs the staged inputs (the views read stg_payments), so it runs after ingestion.
    """
    con.execute(CODES_DDL)
    for table, path in CODE_FILES.items():  # table names from the fixed dict above, the path bound
        con.execute(f"delete from {table}")
        con.execute(f"insert into {table} select code, name, meaning, failure_type "
                    "from read_csv(?, header = true, all_varchar = true)", [str(path)])
    con.execute(VIEWS_DDL)


# warnings naming a payment per run; the rest are counted in one line (the view lists them all)
MAX_WARNINGS = 20


def report_unknown_codes(con) -> list[tuple]:
    """Log a warning for each failed payment whose reason code is in neither list.

    Such a failure is handled as technical; the warning names the payment so someone
    can add the code (or correct the export) instead of it going unnoticed.
    """
    rows = con.execute("select payment_id, contract_id, reason_code, looked_up_in from unknown_reason_codes "
                       "order by payment_id").fetchall()
    for payment_id, contract_id, code, table in rows[:MAX_WARNINGS]:
        why = f"with reason code {code!r}, which is not in {table}" if code else "without a reason code"
        log.warning("payment %s (contract %s) failed %s: handled as a technical failure", payment_id, contract_id, why)
    if len(rows) > MAX_WARNINGS:
        log.warning("%d more failed payments with unknown reason codes: see the view unknown_reason_codes",
                    len(rows) - MAX_WARNINGS)
    return rows
