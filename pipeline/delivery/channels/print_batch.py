"""The daily print batch for a print-and-mail partner.

``write_print_batch`` puts the day's letters into ``<root>/<day>/batch-NN/``:
``letters/<folder name of the key>.pdf`` (one file per letter), ``batch.pdf`` (all letters
merged in action-key order, so the partner prints one file) and
``manifest.csv``/``manifest.json`` (one row per letter: address, registered
or not, pages, the page in batch.pdf where it starts, checksums).

Why it looks like this:

* Batch numbers are never reused. A re-run, or a run recovering from a crash,
  writes the next free ``batch-NN``; it never overwrites a batch the partner
  may already have fetched and printed.
* A batch appears atomically. Everything is built in a hidden
  ``.batch-NN.tmp-<pid>`` folder and renamed to ``batch-NN`` only when
  complete, so a ``batch-NN`` folder is always whole; a crash leaves at most a
  temp folder, which the next call deletes (unless its process is still
  running) and which never counts as a batch.
* The manifest is the contract. The partner reads it to print and post, and
  recovery reads it (``keys_in_batches``) to recognise letters already handed
  over, so they are not printed twice.
* Deterministic: the same letters give byte-identical files. The merged PDF
  gets fixed metadata (producer, creation date from ``day``, no clock);
  pypdf 7.1 writes no trailer ``/ID`` unless encrypting, so nothing random
  enters the file (the tests check byte equality).
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from pypdf import PdfReader, PdfWriter

from pipeline.delivery.outbox import folder_name
from pipeline.durable_files import fsync_path, write_file

MANIFEST_FIELDS = [
    "action_key", "customer_id", "name", "address", "country", "registered", "level_no",
    "amount", "currency", "pages", "first_page", "file", "sha256",
]
PRODUCER = "dunning pipeline print batch"
_BATCH_RE = re.compile(r"^batch-(\d{2,})$")
_TMP_RE = re.compile(r"^\.batch-\d{2,}\.tmp-(\d+)$")
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class LetterItem:
    action_key: str
    pdf: bytes
    name: str
    address_lines: list[str]  # street lines, postal code + city, country
    country: str | None
    registered: bool
    level_no: int
    amount: Decimal
    currency: str
    customer_id: str


@dataclass(frozen=True)
class BatchResult:
    batch_id: str  # "2026-05-10/batch-01"
    folder: Path
    letters: int
    pages: int
    keys: list[str]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _amount(value: Decimal) -> str:
    cents = value.quantize(_CENT)
    if cents != value:  # amounts are exact to the cent upstream; rounding here would hide a bug
        raise ValueError(f"amount not in whole cents: {value}")
    return f"{cents:f}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftover from an earlier call can't be live (one writer per process)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _batches(day_dir: Path) -> list[tuple[int, Path]]:
    """Complete batch folders of a day, by number (temp folders are hidden and never match)."""
    if not day_dir.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in day_dir.iterdir() if p.is_dir() and (m := _BATCH_RE.match(p.name)))


def _clean_temp_folders(day_dir: Path) -> None:
    # Leftovers of crashed runs; a live concurrent writer's temp folder is left alone.
    if not day_dir.is_dir():
        return
    for p in day_dir.iterdir():
        m = _TMP_RE.match(p.name)
        if m and p.is_dir() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(p)


def _merge(day: date, pdfs: list[bytes]) -> bytes:
    writer = PdfWriter()
    for pdf in pdfs:
        writer.append(PdfReader(io.BytesIO(pdf)), import_outline=False)
    # Replaces pypdf's default Info; nothing from the clock, so re-runs are byte-identical.
    writer.add_metadata({
        "/Producer": PRODUCER,
        "/Title": f"Print batch {day.isoformat()}",
        "/CreationDate": f"D:{day:%Y%m%d}000000Z",
    })
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def write_print_batch(root: Path, day: date, letters: list[LetterItem], *, fsync: bool = True) -> BatchResult | None:
    """Write the next ``batch-NN`` for ``day`` under ``root``; None (nothing written) for no letters."""
    if not letters:
        return None
    items = sorted(letters, key=lambda it: it.action_key)
    keys = [it.action_key for it in items]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate action keys in print batch")

    # Validate and count pages before touching the disk: a broken PDF fails the call, not the partner.
    rows, first_page = [], 1
    for it in items:
        pages = len(PdfReader(io.BytesIO(it.pdf)).pages)
        rows.append({
            "action_key": it.action_key,
            "customer_id": it.customer_id,
            "name": it.name,
            "address": list(it.address_lines),
            "country": it.country,
            "registered": bool(it.registered),
            "level_no": it.level_no,
            "amount": _amount(it.amount),
            "currency": it.currency,
            "pages": pages,
            "first_page": first_page,
            "file": f"letters/{folder_name(it.action_key)}.pdf",
            "sha256": _sha256(it.pdf),
        })
        first_page += pages
    total_pages = first_page - 1
    batch_pdf = _merge(day, [it.pdf for it in items])

    day_dir = Path(root) / day.isoformat()
    day_dir.mkdir(parents=True, exist_ok=True)
    _clean_temp_folders(day_dir)
    number = max((n for n, _ in _batches(day_dir)), default=0) + 1
    tmp = day_dir / f".batch-{number:02d}.tmp-{os.getpid()}"
    (tmp / "letters").mkdir(parents=True)

    for it, row in zip(items, rows):
        write_file(tmp / row["file"], it.pdf, fsync=fsync)
    write_file(tmp / "batch.pdf", batch_pdf, fsync=fsync)

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({
            **row,
            "address": " | ".join(row["address"]),
            "country": row["country"] or "",
            "registered": "true" if row["registered"] else "false",
        })
    write_file(tmp / "manifest.csv", buf.getvalue().encode("utf-8"), fsync=fsync)

    def manifest_json(batch_id: str) -> bytes:
        doc = {
            "day": day.isoformat(), "batch_id": batch_id, "letter_count": len(rows),
            "page_count": total_pages, "batch_pdf_sha256": _sha256(batch_pdf), "letters": rows,
        }
        return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    # Rename into place. Should a concurrent writer have taken the number meanwhile, renaming onto
    # its (non-empty) folder fails instead of replacing it: take the next number, and rewrite
    # manifest.json, which names the batch.
    while True:
        batch_id = f"{day.isoformat()}/batch-{number:02d}"
        final = day_dir / f"batch-{number:02d}"
        write_file(tmp / "manifest.json", manifest_json(batch_id), fsync=fsync)
        if fsync:
            fsync_path(tmp / "letters")
            fsync_path(tmp)
        try:
            os.rename(tmp, final)
            break
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            number += 1
    if fsync:
        fsync_path(day_dir)
        fsync_path(day_dir.parent)
    return BatchResult(batch_id=batch_id, folder=final, letters=len(rows), pages=total_pages, keys=keys)


def keys_in_batches(root: Path, day: date) -> dict[str, str]:
    """Action key -> batch id for every complete batch of ``day`` (temp folders never count)."""
    day_dir = Path(root) / day.isoformat()
    found: dict[str, str] = {}
    for _, folder in _batches(day_dir):
        manifest = folder / "manifest.json"
        if not manifest.is_file():
            continue  # not written by us (renames make our batches whole)
        doc = json.loads(manifest.read_text(encoding="utf-8"))
        for row in doc["letters"]:
            found.setdefault(row["action_key"], doc["batch_id"])  # first batch that carried it
    return found
