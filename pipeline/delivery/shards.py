"""A day's documents in shards: snapshot -> shards render and send -> one collect step.

DuckDB has one writer, and rendering and sending are the part of a day that
does not fit one machine (letters cost tens of milliseconds of CPU each). So
dispatch is split where the database is no longer needed:

1. `take_snapshot` (the writer) reads everything rendering needs (the planned
   rows and their document contexts, `documents.render_inputs`; the rendered
   rows waiting to be sent) and writes it as an immutable Parquet snapshot,
   one file per shard, `<dispatch dir>/<snapshot id>/shard-NNN.parquet`. A
   case's actions always fall in the same shard (`shard_of`: SHA-256 of the
   case id). In the same transaction it records the snapshot as open and
   marks its rows `sending`, so neither a re-run of the day (rewind keeps
   `sending` rows) nor another dispatch touches them until they are collected.
2. `run_shard` (no database: any process, any machine that sees the dispatch
   dir and the outbox) renders its rows into the outbox and hands them to
   their channels, idempotently by action key, writing every outcome to its
   own journal (`pipeline.delivery.journal`). Run again after a crash, it
   carries on from its journal: nothing rendered twice is different (same
   bytes), nothing handed over is handed over again (SMTP in doubt goes to
   review, webhooks and SMS are resent with their idempotency key).
3. `collect` (the writer) applies every shard's journal to the ledger in one
   transaction, closes the snapshot, writes the day's outbox manifest and
   deletes the snapshot folder. Letters go into the day's print batch after
   it (`sending.send_letters`), in action-key order, so the batch is the same
   for any number of shards.

One process at a time works on a shard: `run_shard` holds the shard's lock
(`shard_lock`, an exclusive `flock` on `shard-NNN.lock`) for its whole run and
`collect` holds every shard's lock while it reads the journals, commits and
deletes the folder. Whoever finds a lock taken raises `DispatchBusy` and
leaves the snapshot alone: a second `dunning dispatch`, or another Dagster run,
started while a shard is still sending can neither send that shard's rows a
second time nor collect a journal half written. The kernel drops the lock of a
process that dies, so a crashed shard never blocks its recovery. (On a cluster
the dispatch folder's volume must support `flock`, as NFS v4 and CephFS do.)

`pipeline.delivery.dispatch.dispatch` runs the three in one process (the
shards in a process pool when there are several); the Dagster job fans the
shards out as steps (`dagster_project/defs/dunning/documents.py`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from pipeline.config.settings import Settings
from pipeline.delivery import faults
from pipeline.delivery.documents import (RENDER_FAILED, describe_error, manifest_rows, planned_rows, records,
                                         render_inputs, render_items, status_after_render)
from pipeline.delivery.journal import DispatchJournal, boot_id, read_journal
from pipeline.delivery.outbox import Outbox
from pipeline.delivery.render.pdf import render_process_context
from pipeline.durable_files import fsync_path

log = logging.getLogger(__name__)

LETTER_CHANNELS = ("letter", "registered_letter")
SEND_CHANNELS = ("email", "webhook", "sms")  # handed over by a shard when configured

# Rendered documents (or retryable failed ones) waiting for their channel: sent by a shard as they are.
_DUE_SQL = """
select action_key, case_id, channel, action, document_path, attempts, executed_on, status
from action_ledger
where dispatch_mode = 'live' and executed_on <= ? and channel in (select unnest(?))
  and document_path is not null
  and (status = 'rendered'
       or (status = 'failed' and review_reason is null and attempts < ?))
order by executed_on, action_key
"""


def shard_of(case_id: str, shards: int) -> int:
    """The shard of a case: stable across runs, machines and Python versions."""
    return int.from_bytes(hashlib.sha256(case_id.encode("utf-8")).digest()[:8], "big") % shards


def dispatch_dir(settings: Settings) -> Path:
    """Where snapshots and shard journals live: beside the database (a shared volume in a cluster)."""
    return Path(f"{settings.database}.dispatch")


class DispatchBusy(RuntimeError):
    """Another process is rendering or sending a shard of this snapshot, or collecting it: this run
    leaves the snapshot alone (nothing sent, nothing marked) and may be run again when it is done."""


@contextmanager
def shard_lock(folder: Path | str, shard: int) -> Iterator[bool]:
    """Hold the lock of `shard` of the snapshot in `folder` for the block. Yields False if the folder
    is gone (the snapshot was collected), True while held; raises DispatchBusy if another process
    holds it. Not reentrant: a second `shard_lock` on the same shard, even in this process, is busy."""
    folder = Path(folder)
    path = folder / f"shard-{shard:03d}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise DispatchBusy(f"shard {shard} of dispatch snapshot {folder.name} is being worked on by another "
                               f"process (pid {holder}); this run sent nothing. Run it again when that one "
                               "has finished.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield True
    finally:
        os.close(fd)  # releases the lock


# -- the snapshot's content: JSON that keeps Decimal and dates --------------------------------------

def _encode(value):
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} cannot go into a dispatch snapshot")


def _decode(obj: dict):
    if len(obj) == 1:
        (key, text), = obj.items()
        if key == "$decimal":
            return Decimal(text)
        if key == "$date":
            return date.fromisoformat(text)
        if key == "$datetime":
            return datetime.fromisoformat(text)
    return obj


def dumps(content) -> str:
    return json.dumps(content, default=_encode, sort_keys=True, ensure_ascii=False)


def loads(text: str):
    return json.loads(text, object_hook=_decode)


# -- 1. snapshot ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    snapshot_id: str
    as_of: date
    shards: int
    folder: Path
    actions: int

    def shard_file(self, shard: int) -> Path:
        return self.folder / f"shard-{shard:03d}.parquet"

    def journal(self, shard: int) -> Path:
        return self.folder / f"shard-{shard:03d}.journal"

    def done_marker(self, shard: int) -> Path:
        return self.folder / f"shard-{shard:03d}.done"

    def busy_shards(self) -> list[int]:
        """The shards that have rows (a snapshot file), in order."""
        return [n for n in range(self.shards) if self.shard_file(n).exists()]


_COLUMNS = ("action_key", "case_id", "executed_on", "channel", "action", "kind", "after_render",
            "status_before", "attempts", "document_path", "content")


def open_snapshots(con, settings: Settings) -> list[Snapshot]:
    """Snapshots taken and not collected (a dispatch that stopped half way), oldest first."""
    rows = con.execute("""select snapshot_id, as_of, shards, actions from dispatch_snapshots
                          where status = 'open' order by as_of, snapshot_id""").fetchall()
    return [Snapshot(sid, day, shards, dispatch_dir(settings) / sid, actions) for sid, day, shards, actions in rows]


def take_snapshot(con, as_of: date, settings: Settings, shards: int = 1) -> tuple[Snapshot | None, int]:
    """Snapshot what is to be rendered and sent up to `as_of`; returns (snapshot or None, documents
    failed before rendering: no context could be built for them, marked `failed` here)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if shards < 1:
        raise ValueError(f"shards must be at least 1, not {shards}")
    planned = planned_rows(con, as_of)
    channels = [c for c in SEND_CHANNELS if getattr(settings.channels, c) is not None]
    due = records(con, _DUE_SQL, [as_of, channels, settings.dispatch.max_attempts]) if channels else []
    failures: list[list] = []

    def fail(key: str, exc: BaseException) -> None:
        failures.append([describe_error(exc), RENDER_FAILED, as_of, key])
        log.warning("%r not rendered: %s", key, failures[-1][0])

    inputs = {i["action_key"]: i for i in render_inputs(con, planned, settings, fail)}
    rows = []
    for r in planned:
        item = inputs.get(r["action_key"])
        if item is not None:
            rows.append({**_common(r), "kind": item["kind"], "after_render": status_after_render(r["channel"], settings),
                         "status_before": r["status"], "document_path": None, "content": dumps(item["content"])})
    for r in due:
        rows.append({**_common(r), "kind": "send", "after_render": "rendered", "status_before": r["status"],
                     "document_path": r["document_path"], "content": None})
    if not rows:
        _fail_rows(con, failures)
        return None, len(failures)
    number = con.execute("select count(*) + 1 from dispatch_snapshots where as_of = ?", [as_of]).fetchall()[0][0]
    snapshot = Snapshot(f"{as_of.isoformat()}-{number:03d}", as_of, shards, dispatch_dir(settings) / f"{as_of}-{number:03d}",
                        len(rows))
    if snapshot.folder.exists():  # a snapshot written by a run that died before recording it
        shutil.rmtree(snapshot.folder)
    snapshot.folder.mkdir(parents=True)
    by_shard: dict[int, list[dict]] = {}
    for row in rows:
        by_shard.setdefault(shard_of(row["case_id"], shards), []).append(row)
    schema = pa.schema([("action_key", pa.string()), ("case_id", pa.string()), ("executed_on", pa.date32()),
                        ("channel", pa.string()), ("action", pa.string()), ("kind", pa.string()),
                        ("after_render", pa.string()), ("status_before", pa.string()), ("attempts", pa.int32()),
                        ("document_path", pa.string()), ("content", pa.string())])
    for shard, part in sorted(by_shard.items()):
        part.sort(key=lambda r: (r["executed_on"], r["action_key"]))
        table = pa.Table.from_pylist([{c: r[c] for c in _COLUMNS} for r in part], schema=schema)
        pq.write_table(table, snapshot.shard_file(shard))
        fsync_path(snapshot.shard_file(shard))
    fsync_path(snapshot.folder)
    faults.checkpoint("snapshot.written")
    con.execute("begin transaction")
    try:
        con.execute("insert into dispatch_snapshots (snapshot_id, as_of, shards, actions, status) values (?, ?, ?, ?, 'open')",
                    [snapshot.snapshot_id, as_of, shards, len(rows)])
        con.execute("update action_ledger set status = 'sending' where action_key in (select unnest(?))",
                    [[r["action_key"] for r in rows]])
        _fail_rows(con, failures)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    faults.checkpoint("snapshot.committed")
    return snapshot, len(failures)


def _common(r: dict) -> dict:
    return {"action_key": r["action_key"], "case_id": r["case_id"], "executed_on": r["executed_on"],
            "channel": r["channel"], "action": r["action"], "attempts": r["attempts"] or 0}


def _fail_rows(con, failures: list[list]) -> None:
    if failures:
        con.executemany("""update action_ledger set status = 'failed', document_path = null, last_error = ?,
                                  review_reason = ?, status_changed_on = ?
                           where action_key = ? and status in ('planned', 'rendered')""", failures)


# -- 2. one shard (no database) -------------------------------------------------------------------

def read_shard(snapshot_folder: Path, shard: int) -> list[dict]:
    import pyarrow.parquet as pq

    path = Path(snapshot_folder) / f"shard-{shard:03d}.parquet"
    rows = pq.read_table(path).to_pylist()
    for row in rows:
        row["content"] = loads(row["content"]) if row["content"] is not None else None
    return rows


@dataclass
class ShardResult:
    shard: int
    rendered: int = 0
    render_failed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


def run_shard(snapshot_folder: Path | str, shard: int, settings: Settings, *, render_workers: int = 1) -> ShardResult:
    """Render and send one shard of a snapshot, carrying on from its journal; no database.

    Holds the shard's lock throughout (DispatchBusy if another process has it). A shard without rows,
    or of a snapshot already collected (its folder gone), does nothing."""
    folder = Path(snapshot_folder)
    if not (folder / f"shard-{shard:03d}.parquet").exists():
        return ShardResult(shard)
    with shard_lock(folder, shard) as present:
        if not present or not (folder / f"shard-{shard:03d}.parquet").exists():
            return ShardResult(shard)
        return _run_locked_shard(folder, shard, settings, render_workers)


def _run_locked_shard(folder: Path, shard: int, settings: Settings, render_workers: int) -> ShardResult:
    from pipeline.delivery.sending import hand_over_all

    result = ShardResult(shard)
    journal_path = folder / f"shard-{shard:03d}.journal"
    rows = read_shard(folder, shard)
    entries = read_journal(journal_path)
    outbox = Outbox(settings.outbox)
    with DispatchJournal(journal_path) as journal:
        todo = [r for r in rows if r["kind"] != "send" and not _render_settled(entries.get(r["action_key"]))]

        def record(key: str, where: Path, message_id: str | None) -> None:
            journal.rendered(key, where.relative_to(outbox.root).as_posix(), message_id)

        def fail(key: str, exc: BaseException) -> None:
            journal.render_failed(key, describe_error(exc))
            log.warning("%r not rendered: %s", key, describe_error(exc))

        render_items(todo, settings, outbox, record, fail, workers=render_workers)
        faults.checkpoint("shard.rendered", str(shard))
        entries = read_journal(journal_path)
        sendable = []
        for r in rows:
            entry = entries.get(r["action_key"])
            if r["channel"] not in SEND_CHANNELS or getattr(settings.channels, r["channel"]) is None:
                continue
            if r["kind"] == "send":
                sendable.append(r)
            elif entry is not None and entry.rendered and r["after_render"] == "rendered":
                sendable.append(dict(r, document_path=entry.document_path))
        hand_over_all(sendable, entries, journal, settings)
    entries = read_journal(journal_path)
    for r in rows:
        e = entries.get(r["action_key"])
        if e is None:
            continue
        result.rendered += bool(e.rendered and r["kind"] != "send")
        result.render_failed += bool(e.render_error and not e.rendered)
        if e.outcome:
            result.outcomes[e.outcome] = result.outcomes.get(e.outcome, 0) + 1
    (folder / f"shard-{shard:03d}.done").write_text(json.dumps(result.__dict__, sort_keys=True) + "\n", encoding="utf-8")
    faults.checkpoint("shard.done", str(shard))
    return result


def _render_settled(entry) -> bool:
    return entry is not None and (entry.rendered or entry.render_error is not None)


def _run_shard_job(args: tuple[str, int, dict, int]) -> ShardResult:
    folder, shard, settings_dump, workers = args
    return run_shard(folder, shard, Settings.model_validate(settings_dump), render_workers=workers)


def run_shards(snapshot: Snapshot, settings: Settings, *, processes: int | None = None) -> list[ShardResult]:
    """Every shard of `snapshot` that is not done: in this process (one shard, or processes=1), or in
    a pool of `processes` (default: settings.render_workers) fresh processes, each rendering alone.

    A shard that raises does not stop the others; the first error is raised after all ran (the
    snapshot stays open and the next dispatch carries on from the journals)."""
    shards = [n for n in snapshot.busy_shards() if not snapshot.done_marker(n).exists()]
    processes = min(len(shards), processes or settings.render_workers)
    results, error = [], None
    if processes <= 1:
        workers = settings.render_workers if len(shards) == 1 else 1
        for n in shards:
            try:
                results.append(run_shard(snapshot.folder, n, settings, render_workers=workers))
            except Exception as exc:  # as in the pool: the other shards still run
                error = error or exc
        if error:
            raise error
        return results
    dump = settings.model_dump(mode="json")
    with ProcessPoolExecutor(max_workers=processes, mp_context=render_process_context()) as pool:
        futures = [pool.submit(_run_shard_job, (str(snapshot.folder), n, dump, 1)) for n in shards]
        for future in futures:
            try:
                results.append(future.result())
            except Exception as exc:  # the others still finish; the journals keep what each did
                error = error or exc
    if error:
        raise error
    return results


# -- 3. collect (the writer) ----------------------------------------------------------------------

@dataclass
class Collected:
    rendered: int = 0  # documents written to the outbox and marked rendered, sent or prepared
    not_rendered: int = 0  # failed: could not be rendered or addressed
    outcomes: Counter = field(default_factory=Counter)  # hand-overs: sent, failed, needs_review
    returned: int = 0  # rows put back as they were (their shard never got to them)
    days: set = field(default_factory=set)


def collect(con, snapshot: Snapshot, settings: Settings) -> Collected:
    """Apply every shard's journal to the ledger in one transaction and close the snapshot.

    Holds every shard's lock from reading the journals to deleting the folder (DispatchBusy if a
    shard is still running elsewhere: nothing is applied). A snapshot someone else collected
    meanwhile is left as it is."""
    with ExitStack() as locks:
        for shard in snapshot.busy_shards():
            locks.enter_context(shard_lock(snapshot.folder, shard))
        status = con.execute("select status from dispatch_snapshots where snapshot_id = ?",
                             [snapshot.snapshot_id]).fetchall()
        if status and status[0][0] != "open":
            return Collected()
        return _collect_locked(con, snapshot, settings)


def _collect_locked(con, snapshot: Snapshot, settings: Settings) -> Collected:
    import pyarrow.parquet as pq

    from pipeline.delivery.sending import ledger_outcome

    entries: dict = {}
    rows: list[dict] = []
    for shard in snapshot.busy_shards():
        rows += pq.read_table(snapshot.shard_file(shard), columns=[c for c in _COLUMNS if c != "content"]).to_pylist()
        read_journal(snapshot.journal(shard), entries)
    boot = boot_id()
    done = Collected()
    updates = []
    for r in rows:
        update = ledger_outcome(r, entries.get(r["action_key"]), settings, boot)
        updates.append(update)
        status, review_reason, restored = update[1], update[5], update[7]
        if restored:
            done.returned += 1
            continue
        if r["kind"] != "send" and status == "failed" and review_reason == RENDER_FAILED:
            done.not_rendered += 1
            continue
        if r["kind"] != "send":
            done.rendered += 1
        if r["kind"] == "document":  # emails and letters: listed in the day's outbox manifest
            done.days.add(r["executed_on"])
        if status in ("sent", "failed", "needs_review") and r["after_render"] == "rendered" \
                and r["channel"] in SEND_CHANNELS:
            done.outcomes[status] += 1
    con.execute("begin transaction")
    try:
        if updates:
            columns = [list(c) for c in zip(*updates)]
            con.execute(
                """update action_ledger l
                   set status = o.status,
                       document_path = coalesce(o.document_path, l.document_path),
                       provider_message_id = coalesce(o.provider_id, l.provider_message_id),
                       last_error = coalesce(o.error, l.last_error),
                       review_reason = case when o.restored then l.review_reason else o.review_reason end,
                       attempts = o.attempts,
                       status_changed_on = case when o.restored then l.status_changed_on else ? end
                   from (select unnest(?) as key, unnest(?) as status, unnest(?::varchar[]) as document_path,
                                unnest(?::varchar[]) as provider_id, unnest(?::varchar[]) as error,
                                unnest(?::varchar[]) as review_reason, unnest(?::integer[]) as attempts,
                                unnest(?::boolean[]) as restored) o
                   where l.action_key = o.key and l.status = 'sending'""",
                [snapshot.as_of, *columns])
        con.execute("update dispatch_snapshots set status = 'collected' where snapshot_id = ?", [snapshot.snapshot_id])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    faults.checkpoint("collect.committed", snapshot.snapshot_id)
    _write_manifests(con, settings, done.days)
    _remove_folder(snapshot.folder)
    return done


def _write_manifests(con, settings: Settings, days) -> None:
    """The outbox manifest of each day: its documents as the ledger has them (so writing it again is
    harmless, and a run that died before writing it is made good by the next one)."""
    outbox = Outbox(settings.outbox)
    for day in sorted(days):
        outbox.write_manifest(day, manifest_rows(con, day))


def _remove_folder(folder: Path) -> None:
    """A collected snapshot's folder deleted, its shard files first, while the caller holds the shard
    locks: a shard started meanwhile finds either the lock taken or no shard file, never a shard
    whose journal is gone (which it would send again)."""
    for path in sorted(folder.glob("shard-*.parquet")):
        path.unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def _document_days(folder: Path) -> set:
    """The days of the documents (emails and letters) a snapshot folder's shards hold."""
    import pyarrow.parquet as pq

    days = set()
    for path in sorted(folder.glob("shard-*.parquet")):
        table = pq.read_table(path, columns=["executed_on", "kind"]).to_pylist()
        days.update(r["executed_on"] for r in table if r["kind"] == "document")
    return days


def remove_collected_folders(con, settings: Settings) -> None:
    """Snapshot folders a run left behind after collecting them: it died after the commit, before
    it wrote the days' outbox manifests or deleted the folder. The manifests are written (again)
    from the ledger, then the folder goes."""
    root = dispatch_dir(settings)
    if not root.is_dir():
        return
    open_ids = {s.snapshot_id for s in open_snapshots(con, settings)}
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and folder.name not in open_ids:
            known = con.execute("select count(*) from dispatch_snapshots where snapshot_id = ?",
                                [folder.name]).fetchall()[0][0]
            if not known:
                continue
            with ExitStack() as locks:
                try:  # the collecting run may still be at it: then it writes them itself
                    for path in sorted(folder.glob("shard-*.parquet")):
                        locks.enter_context(shard_lock(folder, int(path.stem.removeprefix("shard-"))))
                except DispatchBusy:
                    continue
                _write_manifests(con, settings, _document_days(folder))
                _remove_folder(folder)


def sharding_summary(results: list[ShardResult]) -> dict:
    """Per shard: rendered, not rendered, outcomes (for logs and Dagster metadata)."""
    return {f"shard_{r.shard:03d}": {"rendered": r.rendered, "render_failed": r.render_failed, **r.outcomes}
            for r in results}

