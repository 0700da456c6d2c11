"""Dispatch: deliver planned live actions exactly once, and record every step.

Dispatch never decides what is due; it reads the ledger. Three phases, each
safe to interrupt and repeat:
1. `recover` settles what a crashed earlier run left in `sending`;
2. `render_planned` writes each planned document to the outbox (the delivery
   itself on the embedded default, the audit copy on a real channel);
3. `send_rendered` hands rendered documents to SMTP, the SMS gateway, the
   webhook receiver and the print batch, and retries failed ones.
Documents are dated by the day the action was executed, so a recovered action
renders exactly as it would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pipeline.delivery.documents import build_contexts, render_planned  # noqa: F401  (build_contexts: preview)
from pipeline.delivery.sending import recover, send_rendered
from pipeline.config.settings import Settings


@dataclass
class DispatchSummary:
    rendered: int
    sent: int
    letters: int
    failed: int
    needs_review: int
    recovered: dict[str, int]

    @property
    def documents(self) -> int:
        return self.rendered


def dispatch(con, as_of: date, settings: Settings) -> DispatchSummary:
    recovered = recover(con, settings)
    rendered = render_planned(con, as_of, settings)
    counts = send_rendered(con, as_of, settings)
    return DispatchSummary(rendered=rendered, sent=counts["sent"], letters=counts["letters"],
                           failed=counts["failed"], needs_review=counts["needs_review"], recovered=recovered)


def dispatch_outbox(con, as_of: date, settings: Settings) -> int:
    """Deliver everything due up to `as_of`; returns how many documents were rendered."""
    return dispatch(con, as_of, settings).rendered
