"""Outcome journals: one line per rendered document and per hand-over, appended as it happens.

Why a file and not the ledger: committing a DuckDB row costs ~1 ms, twice per
message that caps email at a few hundred messages a second; and a dispatch
shard (`pipeline.delivery.shards`) has no database at all, since DuckDB has
one writer. An appended, flushed line costs microseconds and survives the
process being killed (the kernel holds it). The collect step applies every
shard's journal to the ledger in one transaction.

The lines of one action key, in order:
- `rendered` (its folder and Message-ID) or `render_failed` (the reason);
- `reserve`: one line for a group of up to `dispatch.batch_size` keys about to be
  handed over, fsynced (the only fsync: once per group, not per message) and
  stamped with the machine's boot id;
- `begin`: flushed (not fsynced) right before the message goes to the channel;
- the outcome: `sent` (with the provider's id), `transient`, `permanent`,
  `ambiguous` (the connection broke during the hand-over), or `crashed` (a
  process died while the channel had it, found by the run that resumed).

After a crash, `settled_outcome` tells the cases apart; it is the one rule the
shard that resumes and the collect step both apply:
- an outcome line: that is the outcome;
- `begin` and no outcome: the process died while the channel had it.
  Idempotent channels (webhook, SMS gateway: the receiver de-duplicates by the
  idempotency key) send it again: `interrupted`, which the ledger keeps as a
  record to send again (it may have arrived) until it is; SMTP cannot tell:
  `crashed`, to review;
- `reserve` and no `begin`, in the same boot: a killed process's flushed lines
  are all there, so it was never handed over: send it. In another boot (a
  power cut, another machine) a `begin` line may have been lost with the page
  cache: SMTP goes to review, idempotent channels send again (`interrupted`);
- nothing: never handed over.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.delivery import faults

OUTCOMES = ("sent", "transient", "permanent", "ambiguous", "crashed")


def boot_id() -> str:
    """This machine's boot: lines flushed (not fsynced) in this boot survive any process kill."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return ""  # unknown: every reserve counts as from another boot (the cautious reading)


@dataclass
class Entry:
    rendered: bool = False
    document_path: str | None = None
    message_id: str | None = None
    render_error: str | None = None
    reserved_boot: str | None = None  # the boot of its `reserve` line, if any
    begun: bool = False
    outcome: str | None = None  # one of OUTCOMES
    provider_message_id: str | None = None
    error: str | None = None


def settled_outcome(entry: Entry | None, idempotent: bool, boot: str) -> str | None:
    """What a hand-over that may have been cut short came to (module doc); None: never handed over,
    hand it over. `interrupted`: an idempotent channel may have it: hand it over again, under the
    same idempotency key; until then it is a record of something that may have arrived."""
    if entry is None:
        return None
    if entry.outcome:
        return entry.outcome
    handed = entry.begun or (entry.reserved_boot is not None and (not boot or entry.reserved_boot != boot))
    if not handed:
        return None
    return "interrupted" if idempotent else "crashed"


class DispatchJournal:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._fh = None
        self._boot = boot_id()

    def __enter__(self) -> "DispatchJournal":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")
        return self

    def __exit__(self, *exc) -> None:
        if self._fh:
            self._fh.close()
            self._fh = None

    def _append(self, record: dict, sync: bool = False) -> None:
        self._fh.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
        self._fh.flush()
        if sync:
            os.fsync(self._fh.fileno())

    def rendered(self, action_key: str, document_path: str, message_id: str | None) -> None:
        self._append({"k": action_key, "e": "rendered", "path": document_path, "mid": message_id})

    def render_failed(self, action_key: str, error: str) -> None:
        self._append({"k": action_key, "e": "render_failed", "err": error})

    def reserve(self, action_keys: list[str]) -> None:
        """Durably, before any of these is handed over (one fsync for the group)."""
        self._append({"e": "reserve", "keys": list(action_keys), "boot": self._boot}, sync=True)

    def begin(self, action_key: str) -> None:
        """Right before the message is handed to the channel (flushed: survives a process kill)."""
        self._append({"k": action_key, "e": "begin"})
        faults.checkpoint("journal.begin", action_key)

    def outcome(self, action_key: str, outcome: str, provider_message_id: str | None = None,
                error: str | None = None) -> None:
        self._append({"k": action_key, "e": outcome, "id": provider_message_id, "err": error})

    def read(self) -> dict[str, Entry]:
        return read_journal(self.path)

    def clear(self) -> None:
        """Empty the journal once the ledger holds every outcome in it."""
        if self._fh:
            self._fh.seek(0)
            self._fh.truncate()
            self._fh.flush()
            os.fsync(self._fh.fileno())
        elif self.path.exists():
            self.path.write_text("", encoding="utf-8")


def read_journal(path: Path, entries: dict[str, Entry] | None = None) -> dict[str, Entry]:
    """The entries of one journal file (added to `entries` when given)."""
    entries = {} if entries is None else entries
    if not Path(path).exists():
        return entries
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash: what it would have said had not happened yet
        event = record.get("e")
        if event == "reserve":
            for key in record.get("keys", ()):
                entries.setdefault(key, Entry()).reserved_boot = record.get("boot") or ""
            continue
        entry = entries.setdefault(record["k"], Entry())
        if event == "rendered":
            entry.rendered, entry.document_path, entry.message_id = True, record["path"], record.get("mid")
            entry.render_error = None
        elif event == "render_failed":
            entry.render_error = record.get("err")
        elif event == "begin":
            entry.begun = True
        elif event in OUTCOMES:
            entry.outcome, entry.provider_message_id, entry.error = event, record.get("id"), record.get("err")
    return entries
