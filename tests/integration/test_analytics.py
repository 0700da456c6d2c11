"""The analyst's views and table macros on a real run: exact states, aging, key figures, outcomes."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal as D

import duckdb
import pytest

from analytics_world import FIRST_DAY, LAST_DAY, company
from pipeline.warehouse import analytics
from pipeline.warehouse import catalog
from pipeline.config.policy import DOCUMENT_ACTIONS
from pipeline.config.settings import PROJECT_ROOT
from world import query

@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return company(tmp_path_factory.mktemp("analytics")).run(FIRST_DAY, LAST_DAY, dispatch=True)


def _state(settings, day):
    return [(case, status, closed and str(closed), reason, level, name, str(last_on), str(demanded), str(fees))
            for case, status, closed, reason, level, name, last_on, demanded, fees in query(
                settings, "select case_id, status, closed_on, close_reason, current_level, current_level_name, "
                          "last_level_on, last_amount_demanded, fees_total from state_as_of(?)", [day])]


def test_state_as_of_two_days(settings):
    assert _state(settings, "2026-04-20") == [
        ("ct-CT1-20260410", "closed", "2026-04-15", "balance_cleared", 1, "Level 1", "2026-04-12", "100.00", "0.00"),
        ("ct-CT2-20260410", "open", None, None, 1, "Level 1", "2026-04-10", "200.00", "0.00"),
        ("ct-CT3-20260410", "open", None, None, 1, "Level 1", "2026-04-10", "370.00", "0.00"),
        ("ct-CT4-20260410", "open", None, None, 1, "Level 1", "2026-04-10", "80.00", "0.00"),
    ]  # CT5 opens on 04-21
    assert _state(settings, date(2026, 5, 5)) == [
        ("ct-CT1-20260410", "closed", "2026-04-15", "balance_cleared", 1, "Level 1", "2026-04-12", "100.00", "0.00"),
        ("ct-CT2-20260410", "closed", "2026-04-28", "balance_cleared", 2, "Level 2", "2026-04-24", "205.00", "5.00"),
        ("ct-CT3-20260410", "open", None, None, 2, "Level 2", "2026-04-24", "374.00", "4.00"),
        ("ct-CT4-20260410", "open", None, None, 2, "Level 2", "2026-04-24", "85.00", "5.00"),
        ("ct-CT5-20260421", "open", None, None, 1, "Level 1", "2026-04-27", "60.00", "0.00"),
    ]
    # on the first day CT1 is open without a level (its level 1 comes on 04-12)
    assert query(settings, "select case_id, current_level, is_open, policy_id, policy_version like 'default@%', "
                           "routed_by from state_as_of('2026-04-10') order by case_id") == [
        ("ct-CT1-20260410", 0, True, "default", True, "default"),
        ("ct-CT2-20260410", 1, True, "default", True, "default"),
        ("ct-CT3-20260410", 1, True, "default", True, "default"),
        ("ct-CT4-20260410", 1, True, "default", True, "default"),
    ]
    assert query(settings, "select count(*) from state_as_of('2026-04-09')") == [(0,)]


def test_state_on_the_latest_day_is_the_cases_view(settings):
    columns = ("case_id, scope, target_id, contract_id, customer_id, currency, policy_id, policy_version, "
               "routed_by, opened_on, closed_on, close_reason, is_open, current_level, current_level_name, "
               "last_level_on, level_due_date, last_amount_demanded, fees_total")
    live = query(settings, f"select {columns} from cases order by case_id")
    assert query(settings, f"select {columns} from state_as_of(?) order by case_id", [LAST_DAY]) == live
    assert len(live) == 5


def test_aging_as_of_per_receivable_on_a_past_day_and_the_latest(settings):
    assert query(settings, "select currency, bucket, receivables, open_amount from aging_as_of('2026-04-20')") == [
        ("EUR", "not due", 1, D("60.00")),    # I7, due that very day
        ("EUR", "1-30", 1, D("200.00")),      # I2, 19 days
        ("EUR", "31-60", 1, D("80.00")),      # I6, 59 days
        ("USD", "not due", 1, D("50.00")),    # I4, issued that day
        ("USD", "31-60", 1, D("70.00")),      # I5, 36 days
        ("USD", "61-90", 1, D("300.00")),     # I3, 78 days; I1 was paid on 04-15
    ]
    latest = [("EUR", "1-30", 1, D("60.00")), ("EUR", "61-90", 1, D("80.00")), ("USD", "not due", 1, D("50.00")),
              ("USD", "31-60", 1, D("70.00")), ("USD", "over 90", 1, D("300.00"))]
    assert query(settings, "select currency, bucket, receivables, open_amount from aging_as_of(?)", [LAST_DAY]) == latest
    # one implementation: the macro on the run's day is the stored snapshot's view, column for column
    assert query(settings, "select * from aging_as_of((select max(as_of) from open_receivables))") == \
        query(settings, "select * from aging") == [(date(2026, 5, 5), *row) for row in latest]
    assert query(settings, "select * from open_receivables_as_of(?) order by invoice_id", [LAST_DAY]) == \
        query(settings, "select * from open_receivables order by invoice_id")
    # the boundaries on I3 (USD 300.00, due 02-01): 30 days overdue is 1-30, 31 is 31-60, 90 is 61-90,
    # 91 is over 90
    for day, bucket in (("2026-03-03", "1-30"), ("2026-03-04", "31-60"), ("2026-05-02", "61-90"),
                        ("2026-05-03", "over 90")):
        assert query(settings, "select bucket, receivables from aging_as_of(?) "
                               "where currency = 'USD' and open_amount = 300.00", [day]) == [(bucket, 1)], day


def test_key_figures_now_and_on_a_past_day(settings):
    columns = ("currency, policy_id, cases_opened, cases_opened_on_day, cases_closed, cases_closed_on_day, "
               "closed_balance_cleared, closed_invoice_settled, closed_invoice_voided, closed_moved_to_policy, "
               "closed_collection_settled, closed_collection_unsettled, closed_other, cases_open, fees_earned")
    assert query(settings, f"select as_of, {columns} from key_figures") == [
        (date(2026, 5, 5), "EUR", "default", 4, 0, 2, 0, 2, 0, 0, 0, 0, 0, 0, 2, D("10.00")),
        (date(2026, 5, 5), "USD", "default", 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, D("4.00")),
    ]
    assert query(settings, f"select {columns} from key_figures_as_of('2026-04-28')") == [
        ("EUR", "default", 4, 0, 2, 1, 2, 0, 0, 0, 0, 0, 0, 2, D("10.00")),
        ("USD", "default", 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, D("4.00")),
    ]
    assert query(settings, f"select {columns} from key_figures_as_of('2026-04-21')") == [
        ("EUR", "default", 4, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 3, D("0.00")),
        ("USD", "default", 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, D("0.00")),
    ]


def test_level_outcomes_credit_each_paid_case_to_its_last_level(settings):
    columns = ("policy_id, level_no, level_name, currency, cases_reached, documents_sent, cases_recovered, "
               "paid_within_7_days, paid_within_14_days, paid_within_30_days, recovery_rate, median_days_to_pay, "
               "amount_recovered, amount_recovered_7_days, amount_recovered_14_days")
    # amounts are cash booked after the level (recovered_after_level), here equal to what was demanded:
    # P1 100.00 three days after CT1's level 1; P2 205.00 four days after CT2's level 2 (the last
    # level before it, so not level 1's although within 30 days of it)
    assert query(settings, f"select {columns} from level_outcomes") == [
        ("default", 1, "Level 1", "EUR", 4, 4, 1, 1, 1, 1, D("0.2500"), D("3.0"), D("100.00"), D("100.00"),
         D("100.00")),
        ("default", 1, "Level 1", "USD", 1, 1, 0, 0, 0, 0, D("0.0000"), None, D("0.00"), D("0.00"), D("0.00")),
        ("default", 2, "Level 2", "EUR", 2, 2, 1, 1, 1, 1, D("0.5000"), D("4.0"), D("205.00"), D("205.00"),
         D("205.00")),
        ("default", 2, "Level 2", "USD", 1, 1, 0, 0, 0, 0, D("0.0000"), None, D("0.00"), D("0.00"), D("0.00")),
    ]
    # on 04-27 CT2 had received level 2 but not paid yet; CT5's level 1 went out that day
    assert query(settings, f"select {columns} from level_outcomes_as_of('2026-04-27') where currency = 'EUR'") == [
        ("default", 1, "Level 1", "EUR", 4, 4, 1, 1, 1, 1, D("0.2500"), D("3.0"), D("100.00"), D("100.00"),
         D("100.00")),
        ("default", 2, "Level 2", "EUR", 2, 2, 0, 0, 0, 0, D("0.0000"), None, D("0.00"), D("0.00"), D("0.00")),
    ]
    types = dict(query(settings, "select column_name, column_type from (describe select * from level_outcomes)"))
    assert (types["recovery_rate"], types["median_days_to_pay"], types["amount_recovered"],
            types["amount_recovered_7_days"], types["amount_recovered_14_days"]) == (
        "DECIMAL(9,4)", "DECIMAL(9,1)", "DECIMAL(18,2)", "DECIMAL(18,2)", "DECIMAL(18,2)")  # exact, never DOUBLE


def test_documents_are_the_policy_document_actions():
    sql = (PROJECT_ROOT / "sql" / "analytics" / "level_outcomes_as_of.sql").read_text()
    assert re.search(r"action in \(([^)]*)\)", sql).group(1) == ", ".join(f"'{a}'" for a in DOCUMENT_ACTIONS)


def test_ledger_with_provenance(settings):
    rows = query(settings, "select action_key, policy_id, version_effective_from, version_effective_to, "
                           "version_in_file, routed_by, case_opened_on, level_no, level_anchor, level_offset_days, "
                           "level_payment_term_days, action, channel, status, principal, fee, amount_demanded "
                           "from ledger_with_provenance where case_id = 'ct-CT2-20260410'")
    assert rows == [
        ("ct-CT2-20260410/L1/reminder", "default", date(2020, 1, 1), None, True, "default", date(2026, 4, 10), 1,
         "due_date", 7, 7, "reminder", "outbox", "sent", D("200.00"), D("0.00"), D("200.00")),
        ("ct-CT2-20260410/L2/reminder", "default", date(2020, 1, 1), None, True, "default", date(2026, 4, 10), 2,
         "previous_level", 7, 7, "reminder", "outbox", "sent", D("200.00"), D("5.00"), D("205.00")),
    ]
    assert query(settings, "select count(*) from ledger_with_provenance") == \
        query(settings, "select count(*) from action_ledger") == [(8,)]


def test_every_object_exists_and_is_documented_in_the_database(settings):
    con = duckdb.connect(str(settings.database), read_only=True)
    try:
        macros = dict(con.execute(
            "select function_name, comment from duckdb_functions() where function_type = 'table_macro' "
            "and database_name = current_database() and schema_name = 'main'").fetchall())
        views = dict(con.execute("select view_name, comment from duckdb_views() where not internal").fetchall())
        undocumented = con.execute(
            "select table_name, column_name from duckdb_columns() where table_name in "
            "('key_figures', 'level_outcomes', 'ledger_with_provenance') and (comment is null or comment = '')"
        ).fetchall()
    finally:
        con.close()
    for obj in analytics.OBJECTS:
        kind, description, _ = catalog.CATALOG[obj.name]
        assert (kind, (macros if obj.kind == "macro" else views)[obj.name]) == (
            "table macro" if obj.kind == "macro" else "view", description)
    assert undocumented == []


def test_one_object_per_sql_file_and_macros_from_the_models():
    files = sorted(p.stem for p in (PROJECT_ROOT / "sql" / "analytics").glob("*.sql"))
    assert files == sorted(o.source.split("/")[1] for o in analytics.OBJECTS if o.source.startswith("analytics/"))
    # a generated macro is the model's SQL with the day as the parameter and models as macro calls
    sql = analytics.definition(next(o for o in analytics.OBJECTS if o.name == "open_receivables_as_of"))
    assert "receivable_remainders_as_of(as_of_day) r" in sql and "contract_credits_as_of(as_of_day) c" in sql
    assert "$" not in sql and "int_" not in sql


def test_a_fresh_database_gets_the_objects_once_their_inputs_exist(tmp_path):
    con = duckdb.connect(str(tmp_path / "fresh.duckdb"))
    try:
        from pipeline.warehouse.state import ensure_state

        ensure_state(con)  # before ingestion: no stg_* tables yet
        created = analytics.ensure_analytics(con, replace=False)
        names = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    finally:
        con.close()
    assert created == []  # ensure_state made everything it could
    assert {"key_figures", "ledger_with_provenance"} <= names  # policy tables created for it
    # level_outcomes reads the payments (cash recovered): created with the first run's publish
    assert "aging_as_of" not in names and "level_outcomes" not in names


def test_aging_buckets_are_of_the_seed_ordered_enum_type(settings):
    assert query(settings, "select unnest(enum_range(null::aging_buckets))") == [
        ("not due",), ("1-30",), ("31-60",), ("61-90",), ("over 90",)]
    assert query(settings, "select column_type from (describe select * from aging_as_of('2026-04-20')) "
                           "where column_name = 'bucket'") == [
        ("ENUM('not due', '1-30', '31-60', '61-90', 'over 90')",)]
    # ordered by bucket, "not due" comes first (alphabetically it sorted between 61-90 and over 90)
    assert query(settings, "select bucket, sum(open_amount) from aging_as_of('2026-04-20') group by bucket "
                           "order by bucket") == [
        ("not due", D("110.00")), ("1-30", D("200.00")), ("31-60", D("150.00")), ("61-90", D("300.00"))]
    assert query(settings, "select max(bucket), min(bucket) from aging_as_of(?)", [LAST_DAY]) == [
        ("over 90", "not due")]


def test_state_as_of_a_day_after_the_last_day_computed_is_an_error(settings):
    assert query(settings, "select count(*) from state_as_of(?)", [LAST_DAY]) == [(5,)]
    with pytest.raises(duckdb.InvalidInputException,
                       match=r"^Invalid Input Error: state_as_of\(2026-05-06\): that day is after the last day "
                             r"computed, 2026-05-05; its state is not known yet$"):
        query(settings, "select * from state_as_of('2026-05-06')")


def test_open_cases_with_name_contract_level_and_amount_owed_today(settings):
    assert query(settings, "select * from open_cases") == [
        # CT3: I3 300.00 and I5 70.00 overdue, I4 50.00 due on 05-20
        (date(2026, 5, 5), "ct-CT3-20260410", "contract", "CU3", "Customer CU3", "CT3", "USD", "default", 2,
         "Level 2", date(2026, 4, 24), D("374.00"), D("4.00"), 3, D("420.00"), D("370.00"), date(2026, 2, 1),
         date(2026, 4, 10)),
        (date(2026, 5, 5), "ct-CT4-20260410", "contract", "CU4", "Customer CU4", "CT4", "EUR", "default", 2,
         "Level 2", date(2026, 4, 24), D("85.00"), D("5.00"), 1, D("80.00"), D("80.00"), date(2026, 2, 20),
         date(2026, 4, 10)),
        (date(2026, 5, 5), "ct-CT5-20260421", "contract", "CU5", "Customer CU5", "CT5", "EUR", "default", 1,
         "Level 1", date(2026, 4, 27), D("60.00"), D("0.00"), 1, D("60.00"), D("60.00"), date(2026, 4, 20),
         date(2026, 4, 21)),
    ]
    # the owed amounts are today's open receivables of the cases, nothing else
    assert query(settings, "select sum(amount_owed), sum(overdue_amount) from open_cases") == \
        query(settings, "select sum(open_amount), sum(open_amount) filter (where is_overdue) from open_receivables") == [
            (D("560.00"), D("510.00"))]
    assert query(settings, "select count(*) from open_cases") == query(settings, "select count(*) from cases "
                                                                                 "where is_open") == [(3,)]


def test_state_as_of_on_a_database_with_no_day_computed_says_so(tmp_path):
    from pipeline.warehouse.state import ensure_state

    with duckdb.connect(str(tmp_path / "fresh.duckdb")) as con:
        ensure_state(con)
        with pytest.raises(duckdb.InvalidInputException,
                           match=r"^Invalid Input Error: state_as_of\(2026-05-01\): no day has been computed yet$"):
            con.execute("select * from state_as_of('2026-05-01')").fetchall()
