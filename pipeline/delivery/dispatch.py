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

Before any of them, `check_channels` makes sure every configured channel can
work (secrets, URLs, SMTP login): if not, ChannelConfigError names the setting
and nothing is rendered, sent or marked. Each document is then handled on its
own: one that cannot be rendered, addressed or handed over is `failed` (with
its reason, listed in `dispatch_review`) and counted in the summary, and every
other document goes out. A render failure is not retried by later runs; after
fixing the data or template, `retry_failed` (`dunning dispatch --retry-failed`)
sends the day's failed documents back to be rendered and sent again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pipeline.delivery.channels.setup import ChannelConfigError, check_channels  # noqa: F401  (for callers)
from pipeline.delivery.documents import build_contexts, render_planned  # noqa: F401  (build_contexts: preview)
from pipeline.delivery.sending import recover, send_rendered
from pipeline.config.settings import Settings


@dataclass
class DispatchSummary:
    rendered: int
    sent: int
    letters: int
    failed: int  # documents this run left `failed`: not rendered or addressed, or refused by the channel
    needs_review: int
    recovered: dict[str, int]
    not_rendered: int = 0  # of `failed`: documents that could not be rendered or addressed

    @property
    def documents(self) -> int:
        return self.rendered

    @property
    def clean(self) -> bool:
        """Nothing of this run failed or needs a person."""
        return not (self.failed or self.needs_review)

    def line(self) -> str:
        """The one-line summary the CLI prints."""
        return (f"rendered {self.rendered}, sent {self.sent}, letters {self.letters}, failed {self.failed} "
                f"(not rendered {self.not_rendered}), needs review {self.needs_review}, "
                f"recovered {self.recovered}")


def dispatch(con, as_of: date, settings: Settings) -> DispatchSummary:
    check_channels(settings)  # before anything: nothing is marked sending with a channel that cannot work
    recovered = recover(con, settings)
    rendered = render_planned(con, as_of, settings)
    counts = send_rendered(con, as_of, settings)
    return DispatchSummary(rendered=rendered.rendered, sent=counts["sent"], letters=counts["letters"],
                           failed=counts["failed"] + rendered.failed, needs_review=counts["needs_review"],
                           recovered=recovered, not_rendered=rendered.failed)


def retry_failed(con, as_of: date) -> list[str]:
    """Send every `failed` live document up to `as_of` back to `planned`: the next dispatch renders it
    again from the current data and templates and sends it. Returns the keys.

    For a person who fixed what made them fail (a template, a customer's data, a channel). Only
    `failed` rows: a `needs_review` one may have arrived and is settled with `dunning resolve`.
    """
    keys = [k for (k,) in con.execute(
        """select action_key from action_ledger
           where status = 'failed' and dispatch_mode = 'live' and executed_on <= ? and action_is_document(action)
           order by action_key""", [as_of]).fetchall()]
    if keys:
        con.execute(
            """update action_ledger set status = 'planned', review_reason = null, attempts = 0,
                      status_changed_on = ?
               where action_key in (select unnest(?)) and status = 'failed'""", [as_of, keys])
    return keys


def dispatch_outbox(con, as_of: date, settings: Settings) -> int:
    """Deliver everything due up to `as_of`; returns how many documents were rendered."""
    return dispatch(con, as_of, settings).rendered
