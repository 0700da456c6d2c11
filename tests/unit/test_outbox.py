"""The embedded outbox channel: atomic, deterministic document folders and manifests."""

from __future__ import annotations

import csv
import email.policy
import hashlib
import json
from datetime import date
from email.parser import BytesParser
from pathlib import Path

import pytest

from pipeline.delivery.outbox import Outbox, message_id, safe_action_key
from pipeline.delivery.render import RenderedEmail, TemplateSet
from pipeline.delivery.render.samples import TEMPLATE_ROOT, sample_context

AS_OF = date(2026, 5, 10)
FAKE_PDF = b"%PDF-1.7\n% not a real letter, the outbox does not care\n%%EOF\n"


@pytest.fixture(scope="module")
def documents() -> list[tuple[dict, RenderedEmail]]:
    templates = TemplateSet(TEMPLATE_ROOT, "default")
    ctxs = [sample_context(i, as_of=AS_OF) for i in (3, 0, 2)]  # deliberately not in key order
    return [(ctx, templates.render_email(ctx)) for ctx in ctxs]


def write_all(root: Path, documents) -> Outbox:
    outbox = Outbox(root, fsync=False)
    for ctx, mail in documents:
        outbox.write_document(AS_OF, ctx, mail, FAKE_PDF)
    outbox.write_manifest(AS_OF, [ctx for ctx, _ in documents])
    return outbox


def test_write_document_creates_a_real_email(tmp_path, documents):
    ctx, mail = documents[0]
    outbox = Outbox(tmp_path)
    assert not outbox.already_written(AS_OF, ctx["action_key"])
    folder = outbox.write_document(AS_OF, ctx, mail, FAKE_PDF)

    assert folder == tmp_path / "2026-05-10" / safe_action_key(ctx["action_key"])
    assert sorted(p.name for p in folder.iterdir()) == ["letter.pdf", "message.eml"]  # no temp files left
    assert (folder / "letter.pdf").read_bytes() == FAKE_PDF
    assert outbox.already_written(AS_OF, ctx["action_key"])

    msg = BytesParser(policy=email.policy.default).parse((folder / "message.eml").open("rb"))
    assert msg["From"].addresses[0].addr_spec == "billing@acme-energie.example"
    assert msg["To"].addresses[0].addr_spec == ctx["customer"]["email"]
    assert msg["Subject"] == mail.subject
    assert msg["Date"].datetime.date() == AS_OF
    assert msg["Message-ID"] == message_id(ctx) and msg["Message-ID"].endswith("@acme-energie.example>")
    assert msg.get_body(("plain",)).get_content() == mail.text.replace("\r\n", "\n")
    assert msg.get_body(("html",)).get_content().strip() == mail.html.strip()
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == f"reminder-{ctx['invoice']['invoice_number']}.pdf"
    assert attachment.get_content() == FAKE_PDF


def test_only_pdf_means_not_written(tmp_path, documents):
    ctx, _ = documents[0]
    outbox = Outbox(tmp_path)
    folder = outbox.document_dir(AS_OF, ctx["action_key"])
    folder.mkdir(parents=True)
    (folder / "letter.pdf").write_bytes(FAKE_PDF)  # crash between the two files
    assert not outbox.already_written(AS_OF, ctx["action_key"])


def test_output_is_byte_identical_across_runs(tmp_path, documents):
    write_all(tmp_path / "a", documents)
    write_all(tmp_path / "b", documents)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 2 * len(documents) + 2
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_manifest(tmp_path, documents):
    outbox = write_all(tmp_path, documents)
    day = tmp_path / "2026-05-10"
    data = json.loads((day / "manifest.json").read_text(encoding="utf-8"))
    keys = [d["action_key"] for d in data["documents"]]
    assert keys == sorted(ctx["action_key"] for ctx, _ in documents)
    assert data["count"] == 3

    first_ctx = min((ctx for ctx, _ in documents), key=lambda c: c["action_key"])
    entry = data["documents"][0]
    assert entry["customer_id"] == first_ctx["customer"]["customer_id"]
    assert entry["case_id"] == first_ctx["action_key"].split("/")[0]
    assert entry["amount_total"] == str(first_ctx["amounts"]["total"])
    assert entry["level_no"] == first_ctx["level"]["no"]
    folder = outbox.document_dir(AS_OF, first_ctx["action_key"])
    for name in ("letter.pdf", "message.eml"):
        assert entry["files"][name]["sha256"] == hashlib.sha256((folder / name).read_bytes()).hexdigest()

    with (day / "manifest.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["action_key"] for r in rows] == keys
    assert rows[0]["letter_pdf_sha256"] == entry["files"]["letter.pdf"]["sha256"]
    assert rows[0]["address"] == entry["address"]


def test_manifest_from_flat_rows_matches_contexts(tmp_path, documents):
    write_all(tmp_path, documents)
    day = tmp_path / "2026-05-10"
    from_ctx = (day / "manifest.json").read_bytes()
    outbox = Outbox(tmp_path, fsync=False)
    rows = [{k: v for k, v in outbox.manifest_row(AS_OF, ctx).items() if k != "files"} for ctx, _ in documents]
    outbox.write_manifest(AS_OF, rows)
    assert (day / "manifest.json").read_bytes() == from_ctx


@pytest.mark.parametrize("key", ["../etc/L1/x", "/abs/L1/x", ".hidden/L1", "a b/L1", ""])
def test_unsafe_action_keys_are_rejected(key):
    with pytest.raises(ValueError):
        safe_action_key(key)
