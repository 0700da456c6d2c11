"""Conventions of the SQL models, in the spirit of dbt's jaffle_shop and SQLMesh.

The run order comes from the models themselves (their references, sorted; a cycle or
an unknown name is an error naming the file), and each model's description, column
descriptions and column tests sit beside it in `_models.yml`: every model has an
entry, every entry a model, every column of the materialized tables a description,
and the column tests hold on every day of a sample run.
"""

from __future__ import annotations

import ast
import inspect
from datetime import date

import pytest

from pipeline.warehouse import analytics
from pipeline.warehouse import catalog
from pipeline.warehouse import routing
from pipeline.warehouse import sql_runner
from pipeline.engine import run as run_mod
from pipeline.config.settings import PROJECT_ROOT
from pipeline.warehouse.sql_runner import ModelError, PythonModel, load_daily_models
from world import World

SQL = PROJECT_ROOT / "sql"
START, END = date(2026, 4, 5), date(2026, 4, 30)


def _noop(con, as_of):
    pass


# --- the run order ---------------------------------------------------------------------------

def test_the_daily_models_are_the_files_of_the_daily_folders():
    files = {f"{folder}/{p.stem}" for folder in sql_runner.DAILY_FOLDERS for p in (SQL / folder).glob("*.sql")}
    on_demand = {m.key for m in sql_runner._plan().loaded if not m.daily}
    assert set(sql_runner.DAILY_MODELS) == files - on_demand
    assert {m.name for m in sql_runner._plan().loaded if not m.daily} <= sql_runner.ON_DEMAND_MODELS
    assert len(sql_runner.DAILY_MODELS) == len(set(sql_runner.DAILY_MODELS))
    assert not any(m.split("/")[0] in ("analytics", "staging", "range", "schema") for m in sql_runner.DAILY_ORDER)
    # the python model is a node of the same graph, after its input and before its reader
    order = [sql_runner.table_name(k) for k in sql_runner.DAILY_ORDER]
    assert order.index("int_open_receivables") < order.index("int_routing_matches") \
        < order.index("int_routed_contracts")


def test_each_model_runs_after_every_model_it_reads():
    position = {m.name: i for i, m in enumerate(sql_runner.DAILY_PLAN)}
    for i, model in enumerate(sql_runner.DAILY_PLAN):
        assert set(model.inputs) <= set(model.reads)
        for name in model.inputs:
            assert position[name] < i, f"{model.key} runs before its input {name}"
    # the same files give the same order
    assert tuple(m.key for m in load_daily_models() if m.daily) == sql_runner.DAILY_ORDER
    # a caller listing the SQL models alone gets the python model before its reader
    with_python = sql_runner._with_python_inputs(sql_runner.DAILY_MODELS)
    assert with_python.index("intermediate/int_routing_matches") < with_python.index("intermediate/int_routed_contracts")
    assert sorted(with_python) == sorted(sql_runner.DAILY_ORDER)


def test_the_python_model_declares_every_relation_routing_reads():
    declared = set(sql_runner.PYTHON_MODELS["int_routing_matches"].inputs)
    relations = sql_runner.known_relations() | {m.name for m in sql_runner._plan().loaded}
    read = set()
    for node in ast.walk(ast.parse(inspect.getsource(routing))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.lstrip().startswith("select"):
            read |= sql_runner.relations_read(node.value.replace("{conditions}", "true"))
    assert {"int_open_receivables", "policy_routing", "stg_invoices"} <= read
    assert read & relations <= declared


def _model(root, key: str, sql: str):
    path = root / f"{key}.sql"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sql, encoding="utf-8")
    return path


def test_ties_break_by_path_and_a_python_model_sorts_in_its_folder(tmp_path):
    _model(tmp_path, "marts/a_mart", "select * from int_b")
    _model(tmp_path, "intermediate/int_b", "select * from stg_invoices")
    _model(tmp_path, "collections/col_z", "select * from stg_payments")
    _model(tmp_path, "intermediate/int_d", "with int_c as (select 1 as x) select * from int_c, py_c")
    plan = load_daily_models(tmp_path, {"py_c": PythonModel(_noop, ("stg_contracts",))})
    assert [m.key for m in plan] == ["collections/col_z", "intermediate/int_b", "intermediate/py_c",
                                     "intermediate/int_d", "marts/a_mart"]
    assert plan[3].inputs == ("py_c",)  # the CTE int_c is no model; a comma join is a reference


def test_a_reference_to_an_unknown_relation_is_an_error_naming_the_file(tmp_path):
    _model(tmp_path, "intermediate/int_a", "select * from stg_invoices")
    _model(tmp_path, "marts/m_b", "select * from int_a a join int_nowhere n using (invoice_id)")
    with pytest.raises(ModelError, match=r"marts/m_b\.sql: reads int_nowhere"):
        load_daily_models(tmp_path, {})
    with pytest.raises(ModelError, match=r"python model py_x .*reads no_such_table"):
        load_daily_models(tmp_path / "empty", {"py_x": PythonModel(_noop, ("no_such_table",))})


def test_a_cycle_is_an_error_naming_the_models(tmp_path):
    _model(tmp_path, "intermediate/int_a", "select * from stg_invoices where invoice_id in (select x from int_c)")
    _model(tmp_path, "intermediate/int_b", "select * from int_a")
    _model(tmp_path, "intermediate/int_c", "select * from int_b")
    _model(tmp_path, "marts/after", "select * from int_c")  # downstream of the cycle, not in it
    with pytest.raises(ModelError, match=r"dependency cycle: int_a -> int_b -> int_c -> int_a") as e:
        load_daily_models(tmp_path, {})
    assert "int_a.sql" in str(e.value) and "int_b.sql" in str(e.value) and "after.sql" not in str(e.value)


def test_a_file_name_that_is_no_identifier_or_sql_the_parser_rejects_is_an_error(tmp_path):
    _model(tmp_path, "intermediate/int-a", "select 1")
    with pytest.raises(ModelError, match=r"int-a\.sql: a model's file name"):
        load_daily_models(tmp_path, {})
    _model(tmp_path / "b", "intermediate/int_b", "select * from (")
    with pytest.raises(ModelError, match=r"int_b\.sql: .*syntax error"):
        load_daily_models(tmp_path / "b", {})


def test_a_cte_named_like_a_model_is_an_error(tmp_path):
    _model(tmp_path, "intermediate/int_a", "select * from stg_invoices")
    _model(tmp_path, "intermediate/int_b", "with int_a as (select 1 as x) select * from int_a")
    with pytest.raises(ModelError, match=r"int_b\.sql: a CTE is named like the model\(s\) int_a"):
        load_daily_models(tmp_path, {})


def test_a_daily_model_may_not_read_an_on_demand_one(tmp_path):
    _model(tmp_path, "marts/outlook", "select * from stg_invoices")
    _model(tmp_path, "marts/daily", "select * from outlook")
    with pytest.raises(ModelError, match=r"daily\.sql: reads outlook"):
        load_daily_models(tmp_path, {}, on_demand={"outlook"})


# --- docs and tests beside the models --------------------------------------------------------

def test_every_model_file_has_a_yaml_entry_and_every_entry_a_model():
    for folder in (*sql_runner.DAILY_FOLDERS, "analytics"):
        entries = {d.name: d for d in catalog.DOCS.values() if d.file == SQL / folder / "_models.yml"}
        files = {p.stem for p in (SQL / folder).glob("*.sql")}
        python = {n for n, m in sql_runner.PYTHON_MODELS.items() if m.folder == folder}
        made_from = {d.model.split("/", 1)[1] for d in entries.values() if d.model.startswith(f"{folder}/")}
        assert made_from == files | python, folder  # in analytics: the files of the views and macros
        for d in entries.values():
            assert (SQL / f"{d.model}.sql").is_file() or d.name in python, d.name
    objects = {d.name: d for d in catalog.DOCS.values() if d.file == SQL / "analytics" / "_models.yml"}
    assert {o.name: o.source for o in analytics.OBJECTS} == {n: d.model for n, d in objects.items()}
    assert all(d.kind == "model" for d in catalog.MODEL_DOCS.values())


def test_the_yaml_is_what_the_catalog_stores_and_same_as_resolves(tmp_path):
    assert catalog.CATALOG["cases"][2]["case_id"] == catalog.CATALOG["case_register"][2]["case_id"]
    assert catalog.MODEL_DOCS["planned_actions"].columns[0].description == catalog.CATALOG["action_ledger"][2]["action_key"]
    (tmp_path / "schema").mkdir()
    (tmp_path / "schema" / "_tables.yml").write_text(
        "tables:\n  - name: t\n    kind: table\n    description: T.\n    columns:\n"
        "      - {name: a, same_as: t.b}\n      - {name: b, same_as: t.a}\n", encoding="utf-8")
    with pytest.raises(catalog.CatalogError, match=r"_tables.yml: t, column a: same_as goes round in a circle: t\.a -> t\.b -> t\.a"):
        catalog.load_docs(tmp_path)
    (tmp_path / "schema" / "_tables.yml").write_text(
        "tables:\n  - name: t\n    kind: table\n    description: T.\n    columns:\n"
        "      - {name: a, description: A., tests: [unique, {accepted: 1}]}\n", encoding="utf-8")
    with pytest.raises(catalog.CatalogError, match="_tables.yml: t, column a: unknown test"):
        catalog.load_docs(tmp_path)


def _world(root) -> World:
    """Dunning (contract scope, fees, interest), a policy taken by a routing rule (invoice scope,
    ending the contract), a suspension, and failed direct debits worked as a collection case."""
    doc = {"policies": [
        {"handle": "default", "default": True, "versions": [{
            "effective_from": "2020-01-01", "scope": "contract", "interest": {"annual_rate_percent": 5},
            "levels": [
                {"name": "Reminder", "timing": {"after": "due_date", "days": 3}, "payment_term_days": 7},
                {"name": "Notice", "timing": {"after": "previous_level", "days": 5}, "payment_term_days": 7,
                 "fee": {"EUR": "5.00"}}],
            "collections": {"counting": {"soft": "per_mandate"}, "steps": {"soft": [
                {"type": "retry", "days": 3},
                {"type": "payment_alternative", "name": "Transfer", "method": "transfer", "grace_days": 5},
                {"type": "official_letter", "name": "Letter", "grace_days": 5}]}}}]},
        {"handle": "cards", "versions": [{
            "effective_from": "2020-01-01", "scope": "invoice",
            "routing": {"priority": 1, "criteria": [{"field": "contract.payment_method", "op": "is", "value": "card"}]},
            "levels": [
                {"name": "Card reminder", "timing": {"after": "due_date", "days": 2}},
                {"name": "End", "timing": {"after": "due_date", "days": 9},
                 "actions": [{"type": "end_contract", "when": "immediately"}]}]}]},
    ]}
    w = World(root, doc)
    w.customer("CU1").contract("CT1", "CU1", payment_method="direct_debit")
    w.customer("CU2").contract("CT2", "CU2").contract("CT3", "CU2", payment_method="card")
    w.invoice("I1", "100.00", "2026-04-01", "2026-04-10", "CT1", "CU1")
    w.invoice("I2", "200.00", "2026-03-20", "2026-04-01", "CT2", "CU2")
    w.invoice("I3", "50.00", "2026-04-01", "2026-04-08", "CT3", "CU2", period_start="2026-04-01",
              period_end="2026-04-30")
    w.invoice("I4", "80.00", "2026-03-25", "2026-04-04", "CT2", "CU2")
    w.invoice("CN1", "-20.00", "2026-04-15", "2026-04-15", "CT2", "CU2")  # a credit note
    w.payment("P1", "100.00", "2026-04-12", "CT1", invoice_id="I1", status="failed", reason_code="AM04",
              mandate_id="M1")
    w.payment("P2", "80.00", "2026-04-14", "CT2", invoice_id="I4")
    w.payment("P3", "100.00", "2026-04-20", "CT1", invoice_id="I1")
    w.suspension("customer", "CU2", "2026-04-16", "2026-04-19")
    return w


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """Run the sample days, checking the column tests after each (the on-demand models run after
    the day's, as `dunning explain` runs them); keep what the tests compare."""
    settings = _world(tmp_path_factory.mktemp("conventions")).write()
    on_demand = tuple(m.key for m in sql_runner._plan().loaded if not m.daily)
    models = (*sql_runner.DAILY_ORDER, *on_demand)
    failures, rows = [], {}

    def after_day(result):
        for key in on_demand:
            sql_runner.run_model(con, key, {"as_of": result.as_of})
        failures.extend(f"{result.as_of}: {f}" for f in sql_runner.check_model_tests(con, models))
        for key in models:
            name = sql_runner.table_name(key)
            rows[name] = rows.get(name, 0) + con.execute(f"select count(*) from {name}").fetchone()[0]

    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        run_mod.run_range(con, START, END, settings, mode=run_mod.RunMode.SIMULATE, on_day=after_day)
        columns = {sql_runner.table_name(k): [c[0] for c in con.execute(f"describe {sql_runner.table_name(k)}").fetchall()]
                   for k in models}
        for obj in analytics.OBJECTS:  # a macro's arguments: the day, then a number of days
            args = ", ".join([f"date '{END}'", *("30" for _ in getattr(obj, "params", ()))])
            sql = f"describe select * from {obj.name}({args})" if obj.kind == "macro" else f"describe {obj.name}"
            columns[obj.name] = [c[0] for c in con.execute(sql).fetchall()]
        relations = {r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'main' "
            "and table_catalog = current_database()").fetchall()}
    return {"failures": failures, "rows": rows, "columns": columns, "relations": relations}


def test_the_column_tests_hold_on_every_sample_day(sample):
    assert sample["failures"] == []
    # and the days exercise the models: every one had rows on some day, except the catch-up (no
    # backfill here), contracts waiting for their policy's first version (none in the sample;
    # tests/integration/test_routing.py and tests/scenarios/explicit_policy_waits_for_its_first_version.yaml)
    # and the holds of quarantined rows (no quarantined row in the sample: tests/models/test_quarantine_holds.py
    # checks the model's column tests on its hold rows)
    assert sorted(n for n, count in sample["rows"].items() if not count) == [
        "int_catch_up_actions", "int_quarantine_holds", "int_waiting_contracts"]


def test_every_column_of_every_model_is_documented(sample):
    for name, columns in sample["columns"].items():
        doc = catalog.MODEL_DOCS.get(name) or catalog.DOCS[name]
        documented = [c.name for c in doc.columns]
        assert set(columns) == set(documented), (name, set(columns) ^ set(documented))
        assert all(c.description.strip() for c in doc.columns)


def test_the_known_relations_are_what_the_database_holds(sample):
    analysts = {o.name for o in analytics.OBJECTS}
    assert sql_runner.known_relations() - {"forced_policy_versions"} == sample["relations"] - analysts


def test_a_model_is_parsed_once_and_its_statement_binds_each_connection_and_value_anew():
    import duckdb

    sql = "create or replace temp table next_day as select cast($as_of as date) + 1 as day"
    statement = sql_runner.parsed(sql)
    assert sql_runner.parsed(sql) is statement and statement.named_parameters == {"as_of"}
    first, second = duckdb.connect(), duckdb.connect()
    first.execute(statement, {"as_of": date(2026, 4, 30)})
    second.execute(statement, {"as_of": date(2026, 12, 31)})
    first.execute(statement, {"as_of": date(2026, 2, 28)})  # the same statement again, another value
    assert first.execute("select day from next_day").fetchall() == [(date(2026, 3, 1),)]
    assert second.execute("select day from next_day").fetchall() == [(date(2027, 1, 1),)]
    with pytest.raises(ValueError, match="expected one SQL statement, found 2"):
        sql_runner.parsed("select 1; select 2")


def test_the_models_are_read_on_first_use_not_on_import():
    """A command that runs no model (`dunning dispatch`, `dunning --help`, a render worker) does not
    parse the thirty models: about a fifth of a second of every process's start."""
    import subprocess
    import sys

    code = ("import pipeline.cli, pipeline.delivery.shards\n"
            "from pipeline.warehouse import sql_runner\n"
            "before = sql_runner._plan.cache_info().currsize\n"
            "order = sql_runner.DAILY_ORDER\n"
            "print(before, sql_runner._plan.cache_info().currsize, len(order))")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=SQL.parent)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["0", "1", str(len(sql_runner.DAILY_ORDER))]
