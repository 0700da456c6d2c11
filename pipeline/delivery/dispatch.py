"""Dispatch: deliver planned live actions exactly once, and record every step.

Dispatch never decides what is due; it reads the ledger. Each phase is safe to
interrupt and repeat:
1. an open snapshot a crashed earlier run left is finished first (its shards
   carry on from their journals, then it is collected), and `recover` settles
   letters a crashed print batch left in `sending`;
2. `take_snapshot` writes what is planned (and what waits for its channel) as
   an immutable snapshot in shards (`pipeline.delivery.shards`);
3. `run_shards` renders each shard into the outbox (the delivery itself on the
   embedded default, the audit copy on a real channel) and hands its documents
   to SMTP, the SMS gateway and the webhook receiver, journaling every outcome;
4. `collect` applies all outcomes to the ledger in one transaction;
5. `send_letters` puts the day's rendered letters into the print batch.
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
from pipeline.delivery.documents import build_contexts  # noqa: F401  (previews)
from pipeline.delivery.sending import recover, send_letters
from pipeline.delivery.shards import (Snapshot, collect, open_snapshots, remove_collected_folders, run_shards,
                                      take_snapshot)
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


def dispatch(con, as_of: date, settings: Settings, *, shards: int | None = None,
             processes: int | None = None) -> DispatchSummary:
    """Everything due up to `as_of`, in `shards` shards (default `dispatch.shards`) run by
    `processes` processes (default: the shards in this process when there is one, else up to
    `render_workers` at a time). The outcome does not depend on either."""
    snapshot, summary = prepare(con, as_of, settings, shards=shards, processes=processes)
    error = None
    if snapshot is not None:
        try:
            run_shards(snapshot, settings, processes=processes)
        except Exception as exc:  # what the other shards did is collected; the error is raised after
            error = exc
    finish(con, as_of, settings, snapshot, summary)
    if error is not None:
        raise error
    return summary


def prepare(con, as_of: date, settings: Settings, *, shards: int | None = None,
            processes: int | None = None) -> tuple[Snapshot | None, DispatchSummary]:
    """Everything before the shards run, in the writer: channels checked, an open snapshot of a
    crashed run finished (its shards carry on from their journals here, then it is collected),
    stuck letters recovered, and the day's snapshot taken (None: nothing to render or send)."""
    check_channels(settings)  # before anything: nothing is marked sending with a channel that cannot work
    summary = DispatchSummary(rendered=0, sent=0, letters=0, failed=0, needs_review=0, recovered={})
    for snapshot in open_snapshots(con, settings):
        error = None
        try:
            run_shards(snapshot, settings, processes=processes)
        except Exception as exc:
            error = exc
        _add(summary, collect(con, snapshot, settings))
        if error is not None:
            raise error
    remove_collected_folders(con, settings)
    summary.recovered = recover(con, settings)
    snapshot, not_rendered = take_snapshot(con, as_of, settings, shards or settings.dispatch.shards)
    summary.failed += not_rendered
    summary.not_rendered += not_rendered
    return snapshot, summary


def finish(con, as_of: date, settings: Settings, snapshot: Snapshot | None, summary: DispatchSummary) -> None:
    """Everything after the shards ran, in the writer: the snapshot collected (even if a shard
    failed: what it did is applied, the rest goes back or to review), then the print batch."""
    if snapshot is not None:
        _add(summary, collect(con, snapshot, settings))
    letters = send_letters(con, as_of, settings)
    summary.letters, summary.failed = letters["sent"], summary.failed + letters["failed"]


def _add(summary: DispatchSummary, done) -> None:
    summary.rendered += done.rendered
    summary.not_rendered += done.not_rendered
    summary.sent += done.outcomes["sent"]
    summary.failed += done.outcomes["failed"] + done.not_rendered
    summary.needs_review += done.outcomes["needs_review"]


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
