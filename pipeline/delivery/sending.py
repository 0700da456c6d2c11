"""Hand rendered documents to their channels, exactly once: the second half of dispatch.

States of a ledger row on a real channel::

    planned -> sending (in a dispatch snapshot) -> rendered -> (next snapshot) -> sent
                   |                                 |-> failed (retried by later runs up to `max_attempts`)
                   |                                 '-> needs_review (the outcome is unknown)
                   '-> failed (not rendered or addressed: not retried; `dunning dispatch --retry-failed`)

A dispatch shard (`pipeline.delivery.shards`) renders and hands over in one go,
so a row usually goes from `sending` straight to `sent`. `hand_over_all` is the
shard's half: for each message a journal `begin` line right before the
hand-over and an outcome line after it, with one fsynced `reserve` line per
group of messages (`pipeline.delivery.journal` says why that is enough);
`ledger_outcome` is the collect step's half: what the ledger records from a
row's journal entries.

Letters are handed over as a print batch folder that appears atomically
(`send_letters`, after the snapshot is collected); a letter in `sending`
whose key is in a complete batch was handed over (`recover`).

One message never stops the others: the transports are opened (and their
settings checked, `pipeline.delivery.channels.setup`) before any is handed
over; a message that cannot even be prepared (its file unreadable, no
address) fails alone before its journal `begin`; an unexpected error during a
hand-over is, like a lost connection, ambiguous for SMTP and retried with the
same idempotency key for webhooks and SMS. A letter whose PDF is unreadable or
that has no postal address is failed alone before the day's print batch.
"""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack
from datetime import date
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path

from pipeline.delivery import faults
from pipeline.delivery.channels.base import AmbiguousDelivery, PermanentError, TransientError
from pipeline.delivery.channels.setup import ChannelConfigError, http_secret, smtp_credentials
from pipeline.delivery.documents import RENDER_FAILED, describe_error, records
from pipeline.delivery.journal import DispatchJournal, Entry, boot_id, settled_outcome
from pipeline.delivery.outbox import header_text
from pipeline.config.settings import Settings, redact_url

log = logging.getLogger(__name__)

# Channels whose receiver de-duplicates by the idempotency key: a hand-over cut short
# by a crash is sent again with the same key. SMTP has no such key: it goes to review.
IDEMPOTENT_CHANNELS = ("webhook", "sms")
AMBIGUOUS_SMTP = ("the process stopped while the SMTP server had the message; it may or may not "
                  "have been delivered: check the mailbox or the relay's log, then confirm or resend")
INTERRUPTED = ("the process stopped while the receiver had the message; it may have arrived, so it stays on "
               "record and the next dispatch sends it again under the same idempotency key")



def recover(con, settings: Settings) -> dict[str, int]:
    """Settle every row a crashed run left in `sending` outside a dispatch snapshot: letters (in a
    complete print batch or not) and rows of the single dispatch journal of earlier releases.
    Runs after the open snapshots are collected. Returns counts per outcome."""
    stuck = records(con, "select action_key, channel, executed_on, attempts from action_ledger "
                         "where status = 'sending' order by action_key", [])
    journal = DispatchJournal(settings.journal_path)
    entries = journal.read()
    boot = boot_id()
    counts = {"sent": 0, "retry": 0, "needs_review": 0}
    batches: dict[date, dict[str, str]] = {}
    outcomes = []
    for row in stuck:
        key, channel = row["action_key"], row["channel"]
        if channel in ("letter", "registered_letter"):
            from pipeline.delivery.channels.print_batch import keys_in_batches

            day = row["executed_on"]
            batches.setdefault(day, keys_in_batches(settings.print_folder, day))
            if key in batches[day]:
                _settle(con, key, "sent", provider_id=batches[day][key])
                counts["sent"] += 1
            else:
                _settle(con, key, "rendered")
                counts["retry"] += 1
            continue
        entry = entries.get(key)
        outcome = settled_outcome(entry, channel in IDEMPOTENT_CHANNELS, boot)
        if outcome is None:  # never handed over: send it
            _settle(con, key, "rendered")
            counts["retry"] += 1
            continue
        status, provider_id, error, review, attempts = outcome_fields(
            settings, row["attempts"], outcome, entry.provider_message_id, entry.error)
        outcomes.append((key, status, provider_id, error, review, attempts))
        counts["sent" if status == "sent" else "needs_review" if status == "needs_review" else "retry"] += 1
    _write_outcomes(con, outcomes)
    journal.clear()
    if stuck:
        log.warning("recovered %d action(s) a previous run left in sending: %s", len(stuck), counts)
    return counts


def _settle(con, key: str, status: str, *, provider_id: str | None = None) -> None:
    con.execute("""update action_ledger set status = ?, provider_message_id = coalesce(?, provider_message_id),
                          review_reason = null where action_key = ?""", [status, provider_id, key])


def outcome_fields(settings: Settings, attempts: int | None, outcome: str, provider_id: str | None,
                   error: str | None) -> tuple:
    """(status, provider id, error, review reason, attempts) the ledger records for a hand-over's outcome."""
    attempts = attempts or 0
    if outcome == "crashed":  # a process died while the SMTP server had it: nobody knows
        return "needs_review", None, error, AMBIGUOUS_SMTP, attempts
    if outcome == "interrupted":
        # a receiver that de-duplicates may have it: a dispatch record (never recomputed away by a
        # re-run of its day, unlike `rendered`) that the next dispatch sends again, as a retry
        outcome, error = "transient", error or INTERRUPTED
    attempts += 1
    if outcome == "sent":
        return "sent", provider_id, None, None, attempts
    if outcome == "ambiguous":
        return ("needs_review", None, error, "the connection was lost after the message was handed over; it may "
                "or may not have been delivered", attempts)
    if outcome == "permanent":
        return "failed", None, error, "refused: not retried", attempts
    exhausted = attempts >= settings.dispatch.max_attempts
    return "failed", None, error, f"gave up after {attempts} attempts" if exhausted else None, attempts


def ledger_outcome(row: dict, entry: Entry | None, settings: Settings, boot: str) -> tuple:
    """What the ledger records for one snapshot row from its shard's journal entries:
    (key, status, document path, provider id, error, review reason, attempts, restored).

    `restored`: the shard never got to the row, which goes back to the status it had before
    the snapshot (planned, rendered or failed), every other field unchanged."""
    key, attempts = row["action_key"], row["attempts"] or 0
    restored = (key, row["status_before"], None, None, None, None, attempts, True)
    if row["kind"] != "send":
        if entry is None or not (entry.rendered or entry.render_error):
            return restored
        if not entry.rendered:
            return key, "failed", None, None, entry.render_error, RENDER_FAILED, attempts, False
        path = entry.document_path
        rendered = (key, row["after_render"], path, entry.message_id, None, None, attempts, False)
        if row["after_render"] != "rendered" or row["channel"] not in IDEMPOTENT_CHANNELS + ("email",):
            return rendered  # the outbox is the delivery, a manual document, or a letter for the print batch
        if getattr(settings.channels, row["channel"]) is None:
            return rendered
        waiting = rendered
    else:
        path, waiting = row["document_path"], restored
    outcome = settled_outcome(entry, row["channel"] in IDEMPOTENT_CHANNELS, boot)
    if outcome is None:
        return waiting  # not handed over: the next dispatch sends it
    status, provider_id, error, review, attempts = outcome_fields(
        settings, attempts, outcome, entry.provider_message_id, entry.error)
    return key, status, path, provider_id, error, review, attempts, False


def _write_outcomes(con, outcomes: list[tuple]) -> None:
    """All outcomes in one statement: (key, status, provider id, error, review reason, attempts)."""
    if not outcomes:
        return
    columns = list(zip(*outcomes))
    con.execute(
        """update action_ledger l
           set status = o.status, provider_message_id = coalesce(o.provider_id, l.provider_message_id),
               last_error = coalesce(o.error, l.last_error), review_reason = o.review_reason,
               attempts = o.attempts
           from (select unnest(?) as key, unnest(?) as status, unnest(?::varchar[]) as provider_id,
                        unnest(?::varchar[]) as error, unnest(?::varchar[]) as review_reason,
                        unnest(?::integer[]) as attempts) o
           where l.action_key = o.key""",
        [list(c) for c in columns],
    )


class _Email:
    idempotent = False

    def __init__(self, settings: Settings):
        from pipeline.delivery.channels.smtp import SmtpSender

        cfg = settings.channels.email
        username, password = smtp_credentials(cfg)
        self.sender = SmtpSender(cfg.host, cfg.port, security=cfg.security, username=username,
                                 password=password, timeout_seconds=cfg.timeout_seconds)
        self.from_addr = settings.organization.email

    def prepare(self, row: dict, folder: Path):
        """The message and its recipients, from the rendered file; nothing is handed over yet."""
        data = (folder / "message.eml").read_bytes()
        # only the header block: parsing the whole message would cost more than sending it
        end = data.find(b"\r\n\r\n")
        headers = BytesHeaderParser().parsebytes(data[:end + 2] if end >= 0 else data)
        to = [addr for _, addr in getaddresses(headers.get_all("To", [])) if addr]
        if not to:
            raise PermanentError("no email address for this customer")
        return data, to

    def hand_over(self, prepared):
        data, to = prepared
        return self.sender.send(data, self.from_addr, to)

    def close(self):
        self.sender.close()


class _Http:
    idempotent = True  # the receiver de-duplicates by webhook-id / Idempotency-Key

    def __init__(self, cfg, payload_file: str, setting: str):
        from pipeline.delivery.channels.http import SignedHttpSender

        self.sender = SignedHttpSender(cfg.url, http_secret(cfg, setting), timeout_seconds=cfg.timeout_seconds,
                                       max_attempts=cfg.attempts_per_run, backoff_seconds=cfg.backoff_seconds)
        self.payload_file = payload_file

    def prepare(self, row: dict, folder: Path):
        import json

        payload = json.loads((folder / self.payload_file).read_text(encoding="utf-8"))
        if self.payload_file == "sms.json" and not payload.get("to"):
            raise PermanentError("no phone number for this customer")
        return row["action_key"], payload

    def hand_over(self, prepared):
        # the action key is the idempotency key: a resend after a crash is recognised
        key, payload = prepared
        return self.sender.post(key, payload)

    def close(self):
        self.sender.close()


def _transport(channel: str, settings: Settings):
    """The channel's transport, its settings checked; ChannelConfigError names the setting."""
    try:
        if channel == "email":
            return _Email(settings)
        if channel == "webhook":
            return _Http(settings.channels.webhook, "event.json", "channels.webhook")
        return _Http(settings.channels.sms, "sms.json", "channels.sms")
    except ChannelConfigError:
        raise
    except ValueError as exc:  # what a sender refuses at construction (URL, security, secret)
        raise ChannelConfigError(f"channels.{channel}: {_scrub(str(exc), settings)}") from None


def _scrub(text: str, settings: Settings) -> str:
    """An error for the ledger or a message: configured secrets and URL credentials removed."""
    import re

    text = re.sub(r"(?<=//)[^/?#@\s]*@", "***@", text)
    for cfg in (settings.channels.webhook, settings.channels.sms):
        if cfg is not None:
            text = text.replace(cfg.url, redact_url(cfg.url))
            secret = os.environ.get(cfg.secret_env)
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
    if settings.channels.email is not None:
        password = settings.channels.email.credentials()[1]
        if password and len(password) >= 4:
            text = text.replace(password, "***")
    return text


def hand_over_all(rows: list[dict], entries: dict[str, Entry], journal: DispatchJournal,
                  settings: Settings) -> None:
    """Hand each rendered row (`document_path` set) to its channel, unless its journal entries say it
    was (`settled_outcome`); every outcome goes to `journal`. A shard's sending half.

    The transports the rows need are opened first: a channel that cannot work raises
    ChannelConfigError before anything is handed over."""
    boot = boot_id()
    pending = []
    for row in rows:
        key, entry = row["action_key"], entries.get(row["action_key"])
        outcome = settled_outcome(entry, row["channel"] in IDEMPOTENT_CHANNELS, boot)
        if outcome == "crashed" and not entry.outcome:
            journal.outcome(key, "crashed", None, AMBIGUOUS_SMTP)
        if outcome in (None, "interrupted"):  # never handed over, or to a receiver that de-duplicates
            pending.append(row)
    if not pending:
        return
    with ExitStack() as stack:
        transports: dict[str, object] = {}
        for channel in sorted({r["channel"] for r in pending}):
            transports[channel] = _transport(channel, settings)
            stack.callback(transports[channel].close)
        size = settings.dispatch.batch_size
        for start in range(0, len(pending), size):
            group = pending[start:start + size]
            journal.reserve([r["action_key"] for r in group])
            faults.checkpoint("send.reserved")
            for row in group:
                key = row["action_key"]
                outcome, provider_id, error = _hand_over(transports[row["channel"]], row,
                                                         settings.outbox / row["document_path"], journal, settings)
                journal.outcome(key, outcome, provider_id, error)
                faults.checkpoint("send.outcome", key)


def _hand_over(transport, row: dict, folder: Path, journal: DispatchJournal,
               settings: Settings) -> tuple[str, str | None, str | None]:
    """(outcome, provider id, error) of one message; never raises for the message's own reasons."""
    key = row["action_key"]
    try:
        prepared = transport.prepare(row, folder)
    except PermanentError as exc:
        return "permanent", None, _scrub(str(exc), settings)
    except Exception as exc:  # nothing was handed over: this message fails alone
        return "permanent", None, _scrub(f"cannot be sent: {describe_error(exc)}", settings)
    journal.begin(key)
    try:
        result = transport.hand_over(prepared)
    except AmbiguousDelivery as exc:
        return "ambiguous", None, _scrub(str(exc), settings)
    except PermanentError as exc:
        return "permanent", None, _scrub(str(exc), settings)
    except (TransientError, OSError) as exc:
        return "transient", None, _scrub(str(exc), settings)
    except Exception as exc:
        # unforeseen, during the hand-over: as unknown as a lost connection for SMTP; webhooks and
        # SMS are sent again with the same idempotency key
        error = _scrub(f"unexpected error while handing over: {describe_error(exc)}", settings)
        log.exception("%r: %s", key, error)
        return ("transient" if transport.idempotent else "ambiguous"), None, error
    return "sent", result.provider_message_id, None


def _mark_sending(con, keys: list[str]) -> None:
    con.execute("update action_ledger set status = 'sending' where action_key in (select unnest(?))", [keys])


def send_letters(con, as_of: date, settings: Settings) -> dict[str, int]:
    """Collect rendered letters into one print batch per day: {"sent": handed over, "failed": not}.

    Each letter is checked first (its PDF readable, a postal address); one that fails is marked
    `failed` with the reason and left out, the others go into the batch.
    """
    from pipeline.delivery.channels.print_batch import LetterItem, write_print_batch

    rows = records(
        con,
        """select l.action_key, l.channel, l.executed_on, l.document_path, l.level_no, l.amount_demanded,
                  l.currency, l.customer_id, c.customer_id as found, c.name, c.address_line1, c.address_line2,
                  c.postal_code, c.city, c.country
           from action_ledger l left join stg_customers c using (customer_id)
           where l.status = 'rendered' and l.dispatch_mode = 'live' and l.executed_on <= ?
             and l.channel in ('letter', 'registered_letter') and l.document_path is not null
           order by l.executed_on, l.action_key""",
        [as_of],
    )
    counts = {"sent": 0, "failed": 0}
    for day in sorted({r["executed_on"] for r in rows}):
        items, failures = [], []
        for r in (r for r in rows if r["executed_on"] == day):
            try:
                items.append(_letter_item(LetterItem, r, settings))
            except Exception as exc:
                failures.append((r["action_key"], "failed", None, describe_error(exc),
                                 "the letter could not be put in a print batch: not retried", 1))
        _write_outcomes(con, failures)
        counts["failed"] += len(failures)
        if not items:
            continue
        _mark_sending(con, [it.action_key for it in items])
        faults.checkpoint("letters.marked")
        batch = write_print_batch(settings.print_folder, day, items)
        faults.checkpoint("letters.batch_written")
        con.execute(
            "update action_ledger set status = 'sent', provider_message_id = ?, attempts = attempts + 1 "
            "where action_key in (select unnest(?))",
            [batch.batch_id, batch.keys],
        )
        counts["sent"] += batch.letters
    return counts


def _letter_item(letter_item, r: dict, settings: Settings):
    """The print batch entry of one rendered letter; raises if it cannot be printed and posted."""
    import io

    from pypdf import PdfReader

    if r["found"] is None:
        raise LookupError(f"customer {r['customer_id']} is not in the inputs: no postal address")
    lines = [header_text(line) for line in (
        r["address_line1"], r["address_line2"], " ".join(p for p in (r["postal_code"], r["city"]) if p)) if line]
    if not any(lines):
        raise ValueError(f"customer {r['customer_id']} has no postal address")
    pdf = (settings.outbox / r["document_path"] / "letter.pdf").read_bytes()
    if not PdfReader(io.BytesIO(pdf)).pages:
        raise ValueError("the letter PDF has no pages")
    return letter_item(
        action_key=r["action_key"],
        pdf=pdf,
        name=header_text(r["name"]),
        address_lines=[line for line in lines if line],
        country=r["country"],
        registered=r["channel"] == "registered_letter",
        level_no=r["level_no"],
        amount=r["amount_demanded"],
        currency=r["currency"],
        customer_id=r["customer_id"],
    )
