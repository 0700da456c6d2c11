"""The dispatch journal: one line per hand-over, written before and after each send.

Why a file and not the ledger: committing a DuckDB row costs ~1 ms, twice per
message that caps email at a few hundred messages a second. An appended,
flushed line costs microseconds and survives the process being killed (the
kernel holds it); the `begin` line is also fsynced, so it survives a power
cut too. The ledger is updated once per batch from the outcomes, and the
journal is emptied after that commit.

After a crash, the journal tells apart the three kinds of `sending` rows:
- no `begin` line: never handed to the channel, safe to send again;
- a `done` line: delivered, mark it sent with the provider's id;
- a `begin` line and nothing else: the process died while the channel had
  it. Idempotent channels (webhook, SMS gateway: the receiver de-duplicates by
  the idempotency key) send it again; SMTP cannot tell, so it goes to review.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.delivery import faults


@dataclass
class Entry:
    begun: bool = False
    outcome: str | None = None  # sent | transient | permanent | ambiguous
    provider_message_id: str | None = None
    error: str | None = None


class DispatchJournal:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._fh = None

    def __enter__(self) -> "DispatchJournal":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")
        return self

    def __exit__(self, *exc) -> None:
        if self._fh:
            self._fh.close()
            self._fh = None

    def _append(self, record: dict, sync: bool) -> None:
        self._fh.write(json.dumps(record, sort_keys=True) + "\n")
        self._fh.flush()
        if sync:
            os.fsync(self._fh.fileno())

    def begin(self, action_key: str) -> None:
        """Recorded (durably) just before the message is handed to the channel."""
        self._append({"k": action_key, "e": "begin"}, sync=True)
        faults.checkpoint("journal.begin", action_key)

    def outcome(self, action_key: str, outcome: str, provider_message_id: str | None = None,
                error: str | None = None) -> None:
        self._append({"k": action_key, "e": outcome, "id": provider_message_id, "err": error}, sync=False)

    def read(self) -> dict[str, Entry]:
        entries: dict[str, Entry] = {}
        if not self.path.exists():
            return entries
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash: its send had not been handed over
            entry = entries.setdefault(record["k"], Entry())
            if record["e"] == "begin":
                entry.begun = True
            else:
                entry.outcome, entry.provider_message_id, entry.error = record["e"], record.get("id"), record.get("err")
        return entries

    def clear(self) -> None:
        """Empty the journal once the ledger holds every outcome in it."""
        if self._fh:
            self._fh.seek(0)
            self._fh.truncate()
            self._fh.flush()
            os.fsync(self._fh.fileno())
        elif self.path.exists():
            self.path.write_text("", encoding="utf-8")
