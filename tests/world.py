"""Tiny hand-made billing worlds for exact tests of the pipeline.

A World collects rows with sensible defaults, writes them as CSV files in the
input format users provide, and runs the real pipeline (ingestion, SQL models,
ledger) on a temporary DuckDB file: tests exercise the product, not a model of it.
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import yaml

from pipeline.engine import run as run_mod
from pipeline.config.input_tables import INPUT_TABLES_BY_NAME
from pipeline.config.settings import PROJECT_ROOT, Settings

ORG = {"name": "Test GmbH", "address_lines": ["Teststr. 1", "10115 Berlin"], "email": "billing@test.example",
       "iban": "DE02120300000000202051", "bic": "BYLADEM1001", "bank": "Testbank"}


def policy(levels, *, scope="contract", grace_days=0, thresholds=None, effective_from="2020-01-01", extra=None):
    """A one-policy file dict: levels as (anchor, days, payment_term_days[, fee dict]) tuples or dicts."""
    out = []
    for i, lv in enumerate(levels, start=1):
        if isinstance(lv, dict):
            out.append(lv)
            continue
        anchor, days, term, *rest = lv
        item = {"name": f"Level {i}", "timing": {"after": anchor, "days": days}, "payment_term_days": term}
        if rest:
            item["fee"] = rest[0]
        out.append(item)
    version = {"effective_from": effective_from, "scope": scope, "grace_days": grace_days,
               "thresholds": thresholds or {}, "levels": out}
    version.update(extra or {})
    return {"policies": [{"handle": "default", "default": True, "versions": [version]}]}


class World:
    def __init__(self, root: Path, policy_doc: dict):
        self.root = Path(root)
        self.rows: dict[str, list[dict]] = {name: [] for name in INPUT_TABLES_BY_NAME}
        self.policy_doc = policy_doc
        # Settings keys beyond the paths; the fresh-data gate is off unless a test is about it
        # (most worlds have no payments at all)
        self.settings_overrides: dict = {"dispatch": {"max_payment_age_days": None}}

    def customer(self, customer_id="CU1", **kw):
        row = {"customer_id": customer_id, "name": f"Customer {customer_id}", "email": f"{customer_id}@x.example",
               "locale": "de_DE", "country": "DE", "address_line1": "Hauptstr. 1", "address_line2": "",
               "postal_code": "10115", "city": "Berlin", "dunning_disabled": "false", "apply_fees": "true"}
        row.update(kw)
        self.rows["customers"].append(row)
        return self

    def contract(self, contract_id="CT1", customer_id="CU1", currency="EUR", **kw):
        row = {"contract_id": contract_id, "customer_id": customer_id, "currency": currency, "status": "active",
               "started_on": "2024-01-01", "ended_on": "", "billed_until": "", "payment_method": "invoice",
               "policy": ""}
        row.update(kw)
        self.rows["contracts"].append(row)
        return self

    def invoice(self, invoice_id, amount, invoice_date, due_date, contract_id="CT1", customer_id="CU1",
                currency="EUR", **kw):
        row = {"invoice_id": invoice_id, "invoice_number": f"N-{invoice_id}", "contract_id": contract_id,
               "customer_id": customer_id, "invoice_date": invoice_date, "due_date": due_date,
               "amount": amount, "currency": currency, "voided_on": "", "dunning_paused": "false",
               "period_start": "", "period_end": "", "scheduled_payment_on": ""}
        row.update(kw)
        self.rows["invoices"].append(row)
        return self

    def payment(self, payment_id, amount, booked_on, contract_id="CT1", invoice_id="", currency="EUR",
                status="settled", **kw):
        row = {"payment_id": payment_id, "contract_id": contract_id, "invoice_id": invoice_id, "amount": amount,
               "currency": currency, "booked_on": booked_on, "status": status, "reversed_on": "",
               "reason_code": "", "mandate_id": ""}
        row.update(kw)
        self.rows["payments"].append(row)
        return self

    def suspension(self, scope, target_id, from_date, to_date=""):
        self.rows["suspensions"].append(
            {"scope": scope, "target_id": target_id, "from_date": from_date, "to_date": to_date})
        return self

    def write(self) -> Settings:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        for name, table in INPUT_TABLES_BY_NAME.items():
            with open(data / f"{name}.csv", "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=table.column_names + sorted(
                    {k for r in self.rows[name] for k in r} - set(table.column_names)))
                writer.writeheader()
                writer.writerows(self.rows[name])
        policy_file = self.root / "policy.yaml"
        policy_file.write_text(yaml.safe_dump(self.policy_doc, sort_keys=False), encoding="utf-8")
        return Settings.model_validate(dict(
            data_dir=data, database=self.root / "dunning.duckdb", outbox=self.root / "outbox",
            policy_file=policy_file, templates=PROJECT_ROOT / "templates", render_workers=1,
            organization=ORG, **self.settings_overrides))

    def write_config(self) -> Path:
        """A dunning.yaml pointing at this world, for Dagster resources and the CLI."""
        settings = self.write()
        path = self.root / "dunning.yaml"
        data = {k: str(v) for k, v in settings.model_dump().items() if isinstance(v, Path)}
        data.update(render_workers=1, organization=ORG, **self.settings_overrides)
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return path

    def run(self, start: str, end: str, *, dispatch: bool = False):
        """Ingest once and run every day from start to end; returns the settings.

        `dispatch=True`: live days, sent. Otherwise the days are recorded and never sent
        (run mode simulate), as a scenario runs them.
        """
        settings = self.write()
        mode = run_mod.RunMode.LIVE if dispatch else run_mod.RunMode.SIMULATE
        with run_mod.connect(settings.database) as con:
            run_mod.load_inputs(con, settings)
            run_mod.run_range(con, date.fromisoformat(start), date.fromisoformat(end), settings, mode=mode)
        return settings


def query(settings: Settings, sql: str, params=None) -> list[tuple]:
    import duckdb

    con = duckdb.connect(str(settings.database), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def actions(settings: Settings) -> list[tuple]:
    """(executed_on ISO, case_id, level_no, action, amount_demanded as str) ordered by date, key."""
    return [(d.isoformat(), c, lv, a, str(amt)) for d, c, lv, a, amt in query(
        settings, "select executed_on, case_id, level_no, action, amount_demanded from action_ledger "
                  "order by executed_on, action_key")]


# a policy whose level 2 hands the case over to the policy `collections`, whose one level is three days
# after the due date: the case closes (moved_to_policy) and the next opens under `collections`
MOVE_TO_COLLECTIONS = {"policies": [
    {"handle": "default", "default": True, "versions": [{"effective_from": "2020-01-01", "levels": [
        {"name": "Reminder", "timing": {"after": "due_date", "days": 5}},
        {"name": "Hand over", "timing": {"after": "previous_level", "days": 5},
         "actions": [{"type": "move_to_policy", "policy": "collections"}]}]}]},
    {"handle": "collections", "versions": [{"effective_from": "2020-01-01", "levels": [
        {"name": "Agency letter", "timing": {"after": "due_date", "days": 3}, "template": "final"}]}]},
]}


def moving_world(root: Path) -> World:
    """MOVE_TO_COLLECTIONS over CU1/CT1 owing I1 (30.00, due 2026-03-15): L1 on 20 March, the move on 25 March."""
    w = World(root, MOVE_TO_COLLECTIONS)
    w.customer().contract().invoice("I1", "30.00", "2026-03-01", "2026-03-15")
    return w


MANUAL_THEN_NOTICE = [{"name": "By hand", "timing": {"after": "due_date", "days": 14}, "channel": "manual"},
                      {"name": "Notice", "timing": {"after": "previous_level", "days": 7}}]


def confirmed_manual_world(root: Path, levels=MANUAL_THEN_NOTICE) -> tuple[World, Settings]:
    """I1 (100.00, due 2026-05-10) under `levels` (the first by hand, 14 days after the due date): run
    live to 28 May, its L1 made on 24 May and confirmed as sent on 29 May, 5 days late."""
    from pipeline.warehouse.state import confirm_manual

    w = World(root, policy(levels))
    w.customer().contract().invoice("I1", "100.00", "2026-04-26", "2026-05-10")
    s = w.run("2026-05-11", "2026-05-28", dispatch=True)
    with run_mod.connect(s.database) as con:
        confirm_manual(con, "ct-CT1-20260511/L1/reminder", date(2026, 5, 29))
    return w, s


def one_invoice_world(root: Path) -> World:
    """CU1, CT1 and one invoice I1 (100.00, due 2026-03-10): the ingestion tests' starting point."""
    w = World(root, policy([("due_date", 1, 0)]))
    w.customer("CU1").contract("CT1", "CU1").invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    return w


def ingest_only(settings: Settings):
    """Ingestion alone, in a read-write connection the caller closes: (connection, reports by table),
    every report balanced (rows read = loaded + quarantined)."""
    import duckdb

    from pipeline.config.policy import load_policy_file
    from pipeline.warehouse.ingest import ingest

    con = duckdb.connect(str(settings.database))
    reports = {r.table: r for r in ingest(con, settings.data_dir, load_policy_file(settings.policy_file).handles)}
    for r in reports.values():
        assert r.balanced, r
    return con, reports
