"""Every table a user reads, as an asset spec: description and columns from the catalog, lineage
and code version from the SQL.

- Descriptions and column docs: the catalog YAML (`sql/schema/_tables.yml`, the
  `_models.yml` beside the SQL, `pipeline/config/input_tables.py`) through
  `pipeline.warehouse.catalog`; column types from the DDL (run once in memory) or
  the input contract.
- Lineage mirrors the SQL layers: a state table depends on the typed inputs its
  models read and on every other state table whose models they read (transitive
  edges left out); the carried state (cases, the ledger) also depends on its own
  previous day.
- Code versions: `dagster_project.code_versions` (a hash of the SQL each asset is made from).

The specs are built once when the definitions load; the assets (`defs/*/assets.py`)
only add what a run knows: row counts and the day's figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache

import dagster as dg
import duckdb

from dagster_project import code_versions
from dagster_project.partitions import daily_partitions
from pipeline.config.input_tables import INPUT_TABLES, INPUT_TABLES_BY_NAME
from pipeline.config.settings import PROJECT_ROOT
from pipeline.warehouse import catalog
from pipeline.warehouse.sql_runner import DAILY_PLAN, relations_read

SQL_ROOT = PROJECT_ROOT / "sql"
OWNER = "team:dunning"  # the pipeline: inputs, state, documents
ANALYST_OWNER = "team:data"  # what analysts read: their copy, the daily report
BILLING_FILES = dg.AssetKey("billing_files")
# a table whose freshness matters: materialized at least once a day (the schedule runs at 06:00)
DAILY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=30), warn_window=timedelta(hours=26))

# Where documents go: one asset per channel (policy `channel`; webhooks are their own action).
DOCUMENT_CHANNELS: dict[str, tuple[tuple[str, ...], str, set[str]]] = {
    # asset name: (ledger channels, description, kinds); the embedded default first
    "outbox": (("outbox",), "Documents written to the local outbox only (the embedded default channel): "
               "`<outbox>/<day>/<action key>/` with letter.pdf and message.eml, and the day's manifest.", {"pdf"}),
    "email": (("email",), "Reminders and merchant copies sent by email (SMTP when configured, else the "
              "outbox): message.eml with the letter PDF attached, Message-ID derived from the action key.",
              {"email", "pdf"}),
    "letter": (("letter", "registered_letter"), "Letters and registered letters: one PDF each in the day's "
               "print batch (`<outbox>/print/<day>/batch-NN/`, batch.pdf and manifest).", {"pdf"}),
    "sms": (("sms",), "Text messages to the SMS gateway (sms.json in the outbox; signed HTTPS when "
            "configured).", {"json"}),
    "webhook": (("webhook",), "Signed events to the configured webhook (event.json in the outbox; "
                "Standard Webhooks over HTTPS when configured).", {"json"}),
    "manual": (("manual",), "Documents prepared for a person to send (`dunning confirm` records the "
               "dispatch); later levels wait for the confirmation.", {"pdf"}),
}
DOCUMENT_COLUMNS = ("action_key", "case_id", "customer_id", "contract_id", "level_no", "level_name", "action",
                    "channel", "template", "executed_on", "amount_demanded", "currency", "status", "document_path",
                    "provider_message_id", "attempts", "last_error")


def document_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["documents", name])


@dataclass(frozen=True)
class TableAsset:
    """One asset: a table (or view) users read, or a product made from the tables."""

    key: dg.AssetKey
    table: str  # the table, view or file it is
    description: str
    group: str
    layer: str
    columns: tuple[dg.TableColumn, ...]
    code_version: str
    deps: tuple[dg.AssetKey, ...] = ()
    carried: bool = False  # the day's content starts from the previous day's
    owners: tuple[str, ...] = (OWNER,)
    kinds: frozenset[str] = frozenset({"duckdb"})
    pii: bool = False
    fresh_daily: bool = False
    models: tuple[str, ...] = ()
    extra_metadata: dict = field(default_factory=dict)

    def spec(self, automation_condition: dg.AutomationCondition | None = None) -> dg.AssetSpec:
        deps: list = list(self.deps)
        if self.carried:
            deps.append(dg.AssetDep(self.key, partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-1, end_offset=-1)))
        return dg.AssetSpec(
            self.key, deps=deps, description=self.description, group_name=self.group,
            code_version=self.code_version, owners=list(self.owners), kinds=set(self.kinds),
            tags={"layer": self.layer, **({"pii": "true"} if self.pii else {})},
            partitions_def=daily_partitions,
            freshness_policy=DAILY_FRESHNESS if self.fresh_daily else None,
            automation_condition=automation_condition,
            metadata={"dagster/table_name": self.table,
                      "dagster/column_schema": dg.TableSchema(columns=list(self.columns)),
                      **self.extra_metadata},
        )


# -- columns ---------------------------------------------------------------------------------------

@cache
def _ddl_columns() -> dict[str, dict[str, tuple[str, bool]]]:
    """table -> column -> (type, nullable), from the DDL of sql/schema/ run in an in-memory database."""
    from pipeline.warehouse.state import create_state_schema

    con = duckdb.connect()
    try:
        create_state_schema(con)
        con.execute((SQL_ROOT / "schema" / "quarantine.sql").read_text(encoding="utf-8"))
        rows = con.execute("select table_name, column_name, data_type, is_nullable = 'YES' "
                           "from information_schema.columns order by table_name, ordinal_position").fetchall()
    finally:
        con.close()
    out: dict[str, dict[str, tuple[str, bool]]] = {}
    for table, column, type_, nullable in rows:
        out.setdefault(table, {})[column] = (type_, nullable)
    for t in INPUT_TABLES:
        out[f"stg_{t.name}"] = {"_source_file": ("VARCHAR", False), "_source_row": ("BIGINT", False),
                                **{c.name: (c.type, not c.required) for c in t.columns}}
    return out


def columns_of(name: str, only: tuple[str, ...] | None = None) -> tuple[dg.TableColumn, ...]:
    """The documented columns of catalog entry `name` (in the catalog's order), typed from the DDL."""
    doc = catalog.DOCS[name]
    types = _ddl_columns().get(name, {})
    out = []
    for column in doc.columns:
        if only is not None and column.name not in only:
            continue
        type_, nullable = types.get(column.name, ("", True))
        out.append(dg.TableColumn(column.name, type_ or "unknown", description=column.description,
                                  constraints=dg.TableColumnConstraints(nullable=nullable)))
    return tuple(out)


# -- lineage ---------------------------------------------------------------------------------------

# the daily models each state table is written from (pipeline/warehouse/state.py, apply_day)
STATE_MODELS = {
    "open_receivables": ("int_open_receivables",),
    "contract_balances": ("int_contract_balances",),
    "cases": ("int_case_openings", "int_case_closures", "int_col_case_openings", "int_col_case_closures"),
    "action_ledger": ("planned_actions", "planned_collection_actions"),
}
# the persistent tables a state asset is (the `cases` view reads the register and the ledger)
STATE_RELATIONS = {"open_receivables": ("open_receivables",), "contract_balances": ("contract_balances",),
                   "cases": ("case_register", "cases"), "action_ledger": ("action_ledger",)}


def _reads(models: tuple[str, ...]) -> set[str]:
    by_name = {m.name: m for m in DAILY_PLAN}
    return {r for name in code_versions.model_closure(models) for r in by_name[name].reads}


def _reduce(deps: dict[dg.AssetKey, set[dg.AssetKey]]) -> dict[dg.AssetKey, set[dg.AssetKey]]:
    """Leave out an edge when the upstream asset is reached through another one (a cleaner graph)."""
    def upstream(key: dg.AssetKey, seen: set) -> set:
        for dep in deps.get(key, ()):
            if dep not in seen:
                seen.add(dep)
                upstream(dep, seen)
        return seen

    return {key: {d for d in direct if not any(d in upstream(other, set()) for other in direct - {d})}
            for key, direct in deps.items()}


@cache
def table_assets() -> dict[dg.AssetKey, TableAsset]:
    """Every asset of the graph by key, in the order of the day: inputs, state, documents, copies."""
    staging_reads = {t.name: relations_read((SQL_ROOT / "staging" / f"{t.name}_violations.sql")
                                            .read_text(encoding="utf-8")) for t in INPUT_TABLES}
    deps: dict[dg.AssetKey, set[dg.AssetKey]] = {}
    for t in INPUT_TABLES:
        read = {r for r in staging_reads[t.name] if r.startswith("stg_") and r != f"stg_{t.name}"}
        deps[dg.AssetKey(f"stg_{t.name}")] = {BILLING_FILES, *(dg.AssetKey(r) for r in read)}
    deps[dg.AssetKey("quarantine")] = {BILLING_FILES}
    for name, models in STATE_MODELS.items():
        closure = code_versions.model_closure(models)
        upstream = {dg.AssetKey(r) for r in _reads(models) if r in {f"stg_{t.name}" for t in INPUT_TABLES}}
        upstream |= {dg.AssetKey(other) for other, made_by in STATE_MODELS.items()
                     if other != name and set(made_by) & closure}
        deps[dg.AssetKey(name)] = upstream
    documents = [document_key(n) for n in DOCUMENT_CHANNELS]
    for key in documents:
        deps[key] = {dg.AssetKey("action_ledger")}
    deps[dg.AssetKey("analyst_copy")] = {*documents, dg.AssetKey("quarantine"), dg.AssetKey("contract_balances"),
                                         dg.AssetKey("open_receivables"), dg.AssetKey("cases")}
    deps[dg.AssetKey("daily_report")] = {*documents, dg.AssetKey("cases"), dg.AssetKey("open_receivables")}
    deps = _reduce(deps)

    out: dict[dg.AssetKey, TableAsset] = {}
    input_py = PROJECT_ROOT / "pipeline" / "config" / "input_tables.py"
    for t in INPUT_TABLES:
        name = f"stg_{t.name}"
        key = dg.AssetKey(name)
        out[key] = TableAsset(
            key, name, catalog.DOCS[name].description, "ingest", "staging", columns_of(name),
            code_versions.version_of(files=[SQL_ROOT / "staging" / f"{t.name}_violations.sql", input_py],
                                     relations=["quarantine"]),
            deps=tuple(sorted(deps[key], key=str)), pii=t.name == "customers",
            kinds=frozenset({"duckdb", "csv", "parquet"}))
    out[dg.AssetKey("quarantine")] = TableAsset(
        dg.AssetKey("quarantine"), "quarantine", catalog.DOCS["quarantine"].description, "ingest", "staging",
        columns_of("quarantine"),
        code_versions.version_of(files=[*sorted(SQL_ROOT.glob("staging/*.sql")), input_py],
                                 relations=["quarantine"]),
        deps=(BILLING_FILES,), pii=True)
    for name, models in STATE_MODELS.items():
        key = dg.AssetKey(name)
        policy = name in ("cases", "action_ledger")
        out[key] = TableAsset(
            key, name, catalog.DOCS[name].description, "dunning", "state" if policy else "intermediate",
            columns_of(name), code_versions.version_of(models=models, relations=STATE_RELATIONS[name], policy=policy),
            deps=tuple(sorted(deps[key], key=str)), carried=policy, fresh_daily=name == "action_ledger",
            models=models)
    ledger_doc = catalog.DOCS["action_ledger"]
    documents_py = PROJECT_ROOT / "pipeline" / "delivery" / "documents.py"
    for name, (channels, text, kinds) in DOCUMENT_CHANNELS.items():
        key = document_key(name)
        out[key] = TableAsset(
            key, "action_ledger", f"{text} Rows: the day's document actions on channel "
            f"{', '.join(channels)} in the action ledger ({ledger_doc.name}), each with its folder in the outbox.",
            "delivery", "delivery", columns_of("action_ledger", DOCUMENT_COLUMNS),
            code_versions.template_version("default", files=[documents_py], policy=True),
            deps=tuple(sorted(deps[key], key=str)), kinds=frozenset(kinds), pii=True, fresh_daily=True,
            extra_metadata={"channels": ", ".join(channels)})
    exported = [(n, kind, description) for n, (kind, description, _) in catalog.CATALOG.items() if kind != "table macro"]
    out[dg.AssetKey("analyst_copy")] = TableAsset(
        dg.AssetKey("analyst_copy"), "dunning_analyst.duckdb",
        "The analysts' read-only copy, published after dispatch: every documented table and view as Parquet "
        "(`<analyst_dir>/current/`, switched atomically) and `dunning_analyst.duckdb`, views over those files "
        "plus the `*_as_of` macros. Columns here: the objects it holds (their columns: docs/tables.md).",
        "reporting", "analytics",
        tuple(dg.TableColumn(n, kind, description=d) for n, kind, d in exported),
        code_versions.version_of(files=[*sorted(SQL_ROOT.glob("analytics/*")), SQL_ROOT / "schema" / "_tables.yml",
                                        PROJECT_ROOT / "pipeline" / "reporting" / "publish.py"]),
        deps=tuple(sorted(deps[dg.AssetKey("analyst_copy")], key=str)), owners=(ANALYST_OWNER,),
        kinds=frozenset({"parquet", "duckdb"}), pii=True, fresh_daily=True)
    report_py = PROJECT_ROOT / "pipeline" / "reporting" / "daily_report.py"
    out[dg.AssetKey("daily_report")] = TableAsset(
        dg.AssetKey("daily_report"), "report.html",
        "The daily report, HTML and PDF with charts (`<reports_dir>/<day>/report.html`, `report.pdf`): key "
        "figures per currency (these columns), open cases per level, aging, recovery per level and the "
        "documents sent in the last 30 days.",
        "reporting", "analytics", columns_of("key_figures_as_of"),
        code_versions.template_version("report", files=[report_py]),
        deps=tuple(sorted(deps[dg.AssetKey("daily_report")], key=str)), owners=(ANALYST_OWNER,),
        kinds=frozenset({"html", "pdf"}), fresh_daily=True)
    return out


def spec(key: str | dg.AssetKey, **kwargs) -> dg.AssetSpec:
    return table_assets()[dg.AssetKey.from_coercible(key)].spec(**kwargs)


def billing_files_spec() -> dg.AssetSpec:
    """The input folder (external: written by the billing system, watched by `input_files_sensor`)."""
    return dg.AssetSpec(
        BILLING_FILES, group_name="ingest", owners=[OWNER], kinds={"csv", "parquet"}, tags={"layer": "source"},
        description="The billing system's export: customers, contracts, invoices, payments and suspensions as "
                    "CSV or Parquet in the data folder (`data_dir` in dunning.yaml, DUNNING_DATA_DIR). "
                    "Written outside Dagster; `input_files_sensor` starts the day when a complete set arrives.",
        metadata={"tables": ", ".join(INPUT_TABLES_BY_NAME)})
