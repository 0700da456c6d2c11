"""Worlds for the replay-equivalence properties (tests/integration/test_replay_*.py): invoices,
payments and suspensions placed by day offsets from the first day of a range, with ids by
convention (contract CT<c>, its invoices I<c>-<i>, its payments P<c>-<p>)."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import strategies as st

from world import World


def suspensions(days: int):
    """(scope, which customer / contract / invoice, from (offset), lasts (days) or None: open-ended)."""
    return st.tuples(st.sampled_from(["global", "customer", "contract", "invoice"]), st.integers(0, 2),
                     st.integers(-3, days), st.none() | st.integers(1, 8))


def add_invoice(w: World, start: date, c: int, i: int, customer_id: str, amount: str, due: int,
                voided: int | None, running: bool, **extra) -> None:
    """Invoice I<c>-<i>, due `due` days after `start`, issued 14 days before; its billed period runs
    into the range when `running`."""
    due_on = start + timedelta(days=due)
    issued = due_on - timedelta(days=14)
    period_end = start + timedelta(days=3) if running else issued + timedelta(days=5)
    w.invoice(f"I{c}-{i}", amount, issued.isoformat(), due_on.isoformat(), f"CT{c}", customer_id,
              voided_on=(start + timedelta(days=voided)).isoformat() if voided is not None else "",
              period_start=issued.isoformat(), period_end=period_end.isoformat(), **extra)


def add_payment(w: World, start: date, c: int, p: int, invoice_amounts: list[str], amount: str, day: int,
                bound: int | None, exact: bool, status: str, reversed_after: int, **extra) -> None:
    """Payment P<c>-<p>, booked `day` days after `start`, bound to invoice I<c>-<bound> when it exists
    (for exactly its amount when `exact`); a reversed one is reversed `reversed_after` days later."""
    booked = start + timedelta(days=day)
    invoice_id = f"I{c}-{bound}" if bound is not None and bound < len(invoice_amounts) else ""
    if invoice_id and exact:
        amount = invoice_amounts[bound]
    reversed_on = (booked + timedelta(days=reversed_after)).isoformat() if status == "reversed" else ""
    w.payment(f"P{c}-{p}", amount, booked.isoformat(), f"CT{c}", invoice_id=invoice_id, status=status,
              reversed_on=reversed_on, **extra)


def add_suspension(w: World, start: date, owners: list[str], contracts: int, scope: str, n: int, starts: int,
                   lasts: int | None) -> None:
    target = {"global": "", "customer": owners[n % len(owners)], "contract": f"CT{n % contracts}",
              "invoice": f"I{n % contracts}-0"}[scope]
    begins = start + timedelta(days=starts)
    w.suspension(scope, target, begins.isoformat(),
                 (begins + timedelta(days=lasts)).isoformat() if lasts is not None else "")
