"""The embedded default channel: documents written to a dated outbox folder.

Each action gets ``<root>/<as_of>/<folder_name(action key)>/`` holding
``message.eml`` (a complete RFC 5322 email: text + HTML alternative, letter
PDF attached) and ``letter.pdf`` (for the print batch). A mail relay or a
print shop picks them up from there; ``manifest.csv``/``manifest.json`` list
the day's documents with checksums.

Exactly-once support (SPEC section 5): files are written to a temporary name
and renamed with ``os.replace``, so a file either exists complete or not at
all, and ``already_written`` lets a re-run skip finished actions. Everything
in the files derives from the inputs (Date from ``as_of``, Message-ID and
MIME boundaries from the action key), so re-writing an action after a crash
produces byte-identical files and downstream de-duplication keeps working.

Folder names (``folder_name``): an ordinary key keeps its readable name
(``ct-CT1-20260510/L2/reminder`` -> ``ct-CT1-20260510__L2__reminder``); any
other key (a space, a non-ASCII letter, ``..``, a NUL, a line break, ``__``
next to a ``/``, very long) becomes an ASCII slug, ``~`` and 20 hex digits of
the SHA-256 of the exact key. ``~`` never occurs in a readable name, a
readable name decodes back to exactly one key, so two keys never share a
folder; every name is one path component of at most 150 bytes, made of
``[A-Za-z0-9._@+=~-]`` and never starting with a dot.

Header values come from the data (customer and organisation names, the
subject, the action key): ``header_text`` removes CR, LF, NUL and every other
control character and bounds their length; the email library encodes
non-ASCII and folds long values.
"""

from __future__ import annotations

import csv
import email.policy
import hashlib
import io
import json
import re
import unicodedata
from datetime import date, datetime, time, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Iterable, Mapping

from pipeline.delivery.render.templates import RenderedEmail
from pipeline.durable_files import atomic_write, fsync_path

EML_NAME = "message.eml"
PDF_NAME = "letter.pdf"
DOCUMENT_FILES = (EML_NAME, PDF_NAME)
MANIFEST_FIELDS = [
    "action_key", "case_id", "customer_id", "name", "email", "address", "level_no",
    "template", "amount_total", "currency", "files", "letter_pdf_sha256", "message_eml_sha256",
]
_SAFE_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+=-]*")  # fullmatch: '$' lets a final newline through
_FILENAME_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")
_SLUG_UNSAFE_RE = re.compile(r"[^A-Za-z0-9_-]+")  # no dots in a slug: no '..', no hidden names
READABLE_MAX = 150  # bytes of a readable folder name (Linux allows 255 per path component)
SLUG_MAX = 60
HASH_HEX = 20  # 80 bits of SHA-256: the part of a hashed name that tells keys apart
# control characters (C0 with NUL, CR, LF, tab; DEL; C1 with NEL) and the Unicode line and paragraph
# separators: none of them belongs in a header line
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES_RE = re.compile(r" {2,}")
NAME_MAX = 256  # characters of a display name in a header (folded by the email library)
SUBJECT_MAX = 900  # a subject is one header; RFC 5322 allows 998 bytes on a line


def safe_action_key(action_key: str) -> str:
    """``ct-CT1-20260510/L2/reminder`` -> ``ct-CT1-20260510__L2__reminder``; rejects anything path-like.

    The strict readable form only; ``folder_name`` maps every key to a folder.
    """
    safe = action_key.replace("/", "__")
    if not _SAFE_KEY_RE.fullmatch(safe) or ".." in safe:
        raise ValueError(f"action key not usable as a folder name: {action_key!r}")
    return safe


def folder_name(action_key: str) -> str:
    """The outbox folder name of an action key: safe, unique and deterministic for any string.

    Readable (``safe_action_key``) when the key is ordinary and short and the name decodes back to
    exactly this key (``__`` -> ``/``); otherwise ``<ASCII slug>~<20 hex digits of SHA-256(key)>``.
    """
    readable = action_key.replace("/", "__")
    if (len(readable) <= READABLE_MAX and _SAFE_KEY_RE.fullmatch(readable) and ".." not in readable
            and readable.replace("__", "/") == action_key):
        return readable
    ascii_key = unicodedata.normalize("NFKD", action_key).encode("ascii", "ignore").decode("ascii")
    slug = _SLUG_UNSAFE_RE.sub("-", ascii_key.replace("/", "__")).strip("-_")[:SLUG_MAX].strip("-_")
    digest = hashlib.sha256(action_key.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_HEX]
    return f"{slug or 'key'}~{digest}"


def header_text(value: Any, limit: int = NAME_MAX) -> str:
    """A header value from data: control characters (CR, LF, NUL...) become spaces, runs of spaces
    one, at most `limit` characters. (Only plain spaces are collapsed: no-break spaces in amounts stay.)"""
    text = _SPACES_RE.sub(" ", _CONTROL_RE.sub(" ", "" if value is None else str(value))).strip()
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."  # ASCII: no encoded word for it


def _escaped(value: str) -> str:
    """Control characters as visible escapes (``\\x00``): for a header that must stay traceable."""
    return _CONTROL_RE.sub(lambda m: ascii(m.group())[1:-1], value)


def valid_address(addr: Any) -> str | None:
    """`addr` if it is one valid email address (no display name, no line break, no second address)."""
    if not isinstance(addr, str) or not addr or _CONTROL_RE.search(addr) or addr != addr.strip():
        return None
    try:
        parsed = Address(addr_spec=addr)
    except Exception:  # the email library raises several kinds (defects, ValueError, IndexError)
        return None
    return addr if parsed.addr_spec == addr and parsed.domain else None


def recipient(ctx: Mapping[str, Any]) -> tuple[str, str | None]:
    """(display name, address) a document goes to; the address is None if missing or not valid."""
    target = ctx.get("recipient") or ctx["customer"]
    return header_text(target.get("name")), valid_address(target.get("email"))


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def message_id(ctx: Mapping[str, Any]) -> str:
    """The Message-ID header ``message.eml`` gets for this context (deterministic)."""
    org_email = ctx["organization"]["email"] or ""
    domain = org_email.rsplit("@", 1)[1] if "@" in org_email else "dunning.invalid"
    return f"<{_digest('message-id', ctx['action_key'])[:40]}@{domain}>"


def build_message(
    as_of: date,
    ctx: Mapping[str, Any],
    rendered: RenderedEmail,
    pdf: bytes,
    *,
    attachments: Iterable[tuple[str, bytes]] = (),
) -> EmailMessage:
    """The reminder email; deterministic in its arguments.

    A context with ``recipient`` (a merchant copy) goes to that address instead of the
    customer's; ``attachments`` are further PDFs (the original invoices) after the letter.
    """
    org, key = ctx["organization"], ctx["action_key"]

    msg = EmailMessage()
    msg["From"] = Address(display_name=header_text(org["name"]), addr_spec=org["email"])
    # no To without a valid address: the email channel fails it as "no email address"
    name, addr = recipient(ctx)
    if addr:
        msg["To"] = Address(display_name=name, addr_spec=addr)
    msg["Subject"] = header_text((ctx.get("subject_prefix") or "") + rendered.subject, SUBJECT_MAX)
    msg["Date"] = format_datetime(datetime.combine(as_of, time(0, 0), tzinfo=timezone.utc))
    msg["Message-ID"] = message_id(ctx)
    msg["X-Dunning-Action-Key"] = header_text(_escaped(key), 10_000)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: tells autoresponders not to reply
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    invoice_number = _FILENAME_UNSAFE_RE.sub("-", str(ctx["invoice"]["invoice_number"])).strip("-")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"reminder-{invoice_number}.pdf")
    for filename, data in attachments:
        msg.add_attachment(data, maintype="application", subtype="pdf", filename=filename)
    # The generator would pick random boundaries; fix them from the key.
    msg.set_boundary(f"=_mixed_{_digest('mixed', key)[:24]}")
    msg.get_payload()[0].set_boundary(f"=_alt_{_digest('alt', key)[:24]}")
    for part in msg.walk():
        if part is not msg:
            del part["MIME-Version"]  # add_alternative copies it into sub-parts; top level only
    return msg


class Outbox:
    """Dated document folders under ``root``; ``fsync=False`` only for tests and previews."""

    def __init__(self, root: Path, fsync: bool = True):
        self.root = Path(root)
        self.fsync = fsync

    def document_dir(self, as_of: date, action_key: str) -> Path:
        return self.root / as_of.isoformat() / folder_name(action_key)

    def already_written(self, as_of: date, action_key: str) -> bool:
        """True if both files exist; atomic renames mean existing files are complete."""
        folder = self.document_dir(as_of, action_key)
        return all((folder / name).is_file() for name in DOCUMENT_FILES)

    def write_document(
        self,
        as_of: date,
        ctx: Mapping[str, Any],
        email: RenderedEmail,
        pdf: bytes,
        attachments: Iterable[tuple[str, bytes]] = (),
    ) -> Path:
        """Write letter.pdf and message.eml for one action; returns the folder.

        (``email`` shadows the stdlib module inside this method; the name is the agreed interface.)
        """
        folder = self.document_dir(as_of, ctx["action_key"])
        folder.mkdir(parents=True, exist_ok=True)
        eml = build_message(as_of, ctx, email, pdf, attachments=attachments).as_bytes(policy=email_policy())
        # PDF first, message last: a folder with only the PDF is "not written".
        atomic_write(folder / PDF_NAME, pdf, fsync=self.fsync)
        atomic_write(folder / EML_NAME, eml, fsync=self.fsync)
        if self.fsync:
            fsync_path(folder)
        return folder

    def write_event(self, as_of: date, action_key: str, payload: Mapping[str, Any]) -> Path:
        """Write a webhook event as event.json in the action's folder (sent from there, or kept there)."""
        return self.write_json(as_of, action_key, "event.json", payload)

    def write_json(self, as_of: date, action_key: str, name: str, payload: Mapping[str, Any]) -> Path:
        """Write one JSON document (an SMS for the gateway) in the action's folder; returns the folder."""
        folder = self.document_dir(as_of, action_key)
        folder.mkdir(parents=True, exist_ok=True)
        body = json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"
        atomic_write(folder / name, body.encode("utf-8"), fsync=self.fsync)
        return folder

    def manifest_row(self, as_of: date, row: Mapping[str, Any]) -> dict[str, Any]:
        """One manifest entry from a document context (or an already flat row)."""
        if "customer" in row and isinstance(row["customer"], Mapping):
            customer, amounts = row["customer"], row["amounts"]
            address = ", ".join(
                str(part) for part in (
                    customer.get("address_line1"), customer.get("address_line2"),
                    " ".join(str(p) for p in (customer.get("postal_code"), customer.get("city")) if p),
                    customer.get("country"),
                ) if part
            )
            flat = {
                "action_key": row["action_key"],
                "case_id": row.get("case_id") or row["action_key"].split("/", 1)[0],
                "customer_id": customer.get("customer_id"),
                "name": customer.get("name"),
                "email": customer.get("email"),
                "address": address,
                "level_no": row["level"]["no"],
                "template": row["template"],
                "amount_total": str(amounts["total"]),
                "currency": amounts["currency"],
            }
        else:
            flat = {k: row.get(k) for k in MANIFEST_FIELDS[:10]}
            flat["amount_total"] = None if flat["amount_total"] is None else str(flat["amount_total"])
        folder = self.document_dir(as_of, flat["action_key"])
        hashes = {
            name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
            for name in DOCUMENT_FILES if (folder / name).is_file()
        }
        flat["files"] = {
            name: {"path": f"{folder.name}/{name}", "sha256": digest} for name, digest in sorted(hashes.items())
        }
        return flat

    def write_manifest(self, as_of: date, rows: Iterable[Mapping[str, Any]]) -> tuple[Path, Path]:
        """manifest.csv and manifest.json for the day, sorted by action key."""
        entries = sorted((self.manifest_row(as_of, r) for r in rows), key=lambda e: e["action_key"])
        day = self.root / as_of.isoformat()
        day.mkdir(parents=True, exist_ok=True)

        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
        writer.writeheader()
        for e in entries:
            files = e["files"]
            writer.writerow({
                **{k: e[k] for k in MANIFEST_FIELDS[:10]},
                "files": ";".join(f["path"] for f in files.values()),
                "letter_pdf_sha256": files.get(PDF_NAME, {}).get("sha256", ""),
                "message_eml_sha256": files.get(EML_NAME, {}).get("sha256", ""),
            })
        csv_path, json_path = day / "manifest.csv", day / "manifest.json"
        atomic_write(csv_path, buf.getvalue().encode("utf-8"), fsync=self.fsync)
        doc = {"as_of": as_of.isoformat(), "count": len(entries), "documents": entries}
        atomic_write(json_path, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8"), fsync=self.fsync)
        return csv_path, json_path


def email_policy() -> email.policy.Policy:
    # SMTP policy: CRLF line endings as on the wire, lines folded at 78.
    return email.policy.SMTP
