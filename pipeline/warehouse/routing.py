"""Routing rules: which contracts each policy's criteria select on a day.

Criteria name fields of the customer, the contract and the invoice (each open
receivable is routed: an invoice case on its own invoice, a contract or customer
case on the receivable it follows), including extra input columns, so
the SQL is generated here. Safety: every field is checked against the columns the
staging tables really have (the allow-list) before it is quoted into the SQL, and
every value travels as a bound parameter. The result, `int_routing_matches`, is
read by the SQL model `int_routed_contracts`, which picks one policy per routed item.
"""

from __future__ import annotations

from datetime import date
from itertools import groupby

ENTITIES = {  # entity -> (staging table, alias in the generated query)
    "customer": ("stg_customers", "cu"),
    "contract": ("stg_contracts", "c"),
    "invoice": ("stg_invoices", "i"),
}

# Every open receivable is an item to route: an invoice case is routed on its own invoice,
# a contract or customer case on the receivable it follows (its oldest open one).
_BASE = """
select o.contract_id, o.invoice_id, ? as policy_version
from int_open_receivables o
join stg_contracts c on c.contract_id = o.contract_id
join stg_customers cu on cu.customer_id = c.customer_id
join stg_invoices i on i.invoice_id = o.invoice_id
where {conditions}
"""


class RoutingError(ValueError):
    """A routing criterion that cannot be evaluated; the message names policy and field."""


def _columns(con, table: str) -> set[str]:
    rows = con.execute(
        "select column_name from information_schema.columns where table_schema = 'main' and table_name = ?", [table]
    ).fetchall()
    return {r[0] for r in rows}


def _condition(alias: str, field: str, op: str, values: list[str], params: list) -> str:
    text = f'cast({alias}."{field}" as varchar)'
    if op == "is":
        params.append(values[0])
        return f"{text} = ?"
    if op == "is_not":
        params.append(values[0])
        return f"{text} is distinct from ?"
    if op == "in":
        params.append(values)
        return f"coalesce(list_contains(?, {text}), false)"
    if op == "not_in":
        params.append(values)
        return f"not coalesce(list_contains(?, {text}), false)"
    if op == "exists":
        return f"nullif({text}, '') is not null"
    if op == "not_exists":
        return f"nullif({text}, '') is null"
    raise RoutingError(f"unknown operator {op!r}")


def build_routing_matches(con, as_of: date) -> None:
    """Create temp table int_routing_matches(contract_id, invoice_id, policy_version) for the versions in force."""
    criteria = con.execute(
        """select r.policy_version, c.entity, c.field, c.op, c."values"
           from policy_routing r
           join policy_routing_criteria c using (policy_version)
           join policy_versions v using (policy_version)
           where r.enabled
             and (v.policy_version in (select policy_version from forced_policy_versions)
                  or (v.in_file and v.effective_from <= ? and (v.effective_to is null or v.effective_to > ?)
                      and v.policy_id not in (select p.policy_id from forced_policy_versions f
                                              join policy_versions p using (policy_version))))
           order by r.policy_version, c.criterion_no""",
        [as_of, as_of],
    ).fetchall()
    if not criteria:  # no routing rule in force: no match (and no need to read the inputs' columns)
        con.execute("create or replace temp table int_routing_matches "
                    "(contract_id varchar, invoice_id varchar, policy_version varchar)")
        return
    columns = {entity: _columns(con, table) for entity, (table, _) in ENTITIES.items()}
    parts, params = [], []
    for version, group in groupby(criteria, key=lambda row: row[0]):
        part_params: list = [version]
        conditions = []
        for _, entity, field, op, values in group:
            table, alias = ENTITIES[entity]
            if field not in columns[entity]:
                raise RoutingError(
                    f"policy version {version}: routing field {entity}.{field} is not a column of the "
                    f"{entity} input (columns: {', '.join(sorted(c for c in columns[entity] if not c.startswith('_')))})"
                )
            conditions.append(_condition(alias, field, op, list(values), part_params))
        parts.append(_BASE.format(conditions=" and ".join(conditions)))
        params += part_params
    con.execute("create or replace temp table int_routing_matches as " + " union all ".join(parts), params)
