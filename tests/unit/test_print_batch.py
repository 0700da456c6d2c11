import csv
import hashlib
import io
import json
import os
from datetime import date
from decimal import Decimal

import pytest
import weasyprint
from pypdf import PdfReader

from pipeline.delivery.channels.print_batch import LetterItem, keys_in_batches, write_print_batch

DAY = date(2026, 5, 10)


def _pdf(*pages: str) -> bytes:
    html = "".join(
        f"<p style='{'break-before: page' if i else ''}'>{text}</p>" for i, text in enumerate(pages)
    )
    return weasyprint.HTML(string=html).write_pdf()


def _page_texts(data: bytes) -> list[str]:
    return [page.extract_text().strip() for page in PdfReader(io.BytesIO(data)).pages]


@pytest.fixture(scope="module")
def letters() -> list[LetterItem]:
    # Given out of key order on purpose; the batch sorts by action key.
    def item(key, pdf, name, lines, country, registered, level, amount, customer):
        return LetterItem(key, pdf, name, lines, country, registered, level, Decimal(amount), "EUR", customer)

    return [
        item("ct-C-20260510/L2/notice", _pdf("Letter C"), "Carla Cruz",
             ["Hauptstr. 3", "10115 Berlin", "Germany"], "DE", True, 2, "12.50", "CU3"),
        item("ct-A-20260510/L1/reminder", _pdf("Letter A"), "Anna Alt",
             ["Ringweg 1", "c/o Büro", "80331 München", "Germany"], "DE", False, 1, "100", "CU1"),
        item("ct-B-20260510/L3/final", _pdf("Letter B page 1", "Letter B page 2"), "Bob Brown",
             ["1 High St", "SW1A 1AA London", "United Kingdom"], None, False, 3, "7.05", "CU2"),
        item("ct-D-20260510/L1/reminder", _pdf("Letter D"), "Dora Dahl",
             ["Storgatan 4", "111 22 Stockholm", "Sweden"], "SE", True, 1, "0.99", "CU4"),
    ]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_batch_layout_pdf_and_manifests(tmp_path, letters):
    result = write_print_batch(tmp_path, DAY, letters, fsync=False)
    folder = tmp_path / "2026-05-10" / "batch-01"
    keys = ["ct-A-20260510/L1/reminder", "ct-B-20260510/L3/final",
            "ct-C-20260510/L2/notice", "ct-D-20260510/L1/reminder"]
    assert result.batch_id == "2026-05-10/batch-01"
    assert result.folder == folder
    assert (result.letters, result.pages, result.keys) == (4, 5, keys)

    safe = [k.replace("/", "__") for k in keys]
    assert sorted(os.listdir(tmp_path / "2026-05-10")) == ["batch-01"]
    assert sorted(os.listdir(folder)) == ["batch.pdf", "letters", "manifest.csv", "manifest.json"]
    assert sorted(os.listdir(folder / "letters")) == [f"{s}.pdf" for s in safe]
    by_key = {it.action_key: it for it in letters}
    for key, s in zip(keys, safe):
        assert (folder / "letters" / f"{s}.pdf").read_bytes() == by_key[key].pdf

    batch_pdf = (folder / "batch.pdf").read_bytes()
    assert _page_texts(batch_pdf) == ["Letter A", "Letter B page 1", "Letter B page 2", "Letter C", "Letter D"]
    reader = PdfReader(io.BytesIO(batch_pdf))
    assert reader.metadata == {
        "/Producer": "dunning pipeline print batch",
        "/Title": "Print batch 2026-05-10",
        "/CreationDate": "D:20260510000000Z",
    }
    assert "/ID" not in reader.trailer  # pypdf adds no random file identifier

    sha = {k: _sha(by_key[k].pdf) for k in keys}
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as fh:
        assert list(csv.reader(fh)) == [
            ["action_key", "customer_id", "name", "address", "country", "registered", "level_no",
             "amount", "currency", "pages", "first_page", "file", "sha256"],
            [keys[0], "CU1", "Anna Alt", "Ringweg 1 | c/o Büro | 80331 München | Germany", "DE", "false", "1",
             "100.00", "EUR", "1", "1", f"letters/{safe[0]}.pdf", sha[keys[0]]],
            [keys[1], "CU2", "Bob Brown", "1 High St | SW1A 1AA London | United Kingdom", "", "false", "3",
             "7.05", "EUR", "2", "2", f"letters/{safe[1]}.pdf", sha[keys[1]]],
            [keys[2], "CU3", "Carla Cruz", "Hauptstr. 3 | 10115 Berlin | Germany", "DE", "true", "2",
             "12.50", "EUR", "1", "4", f"letters/{safe[2]}.pdf", sha[keys[2]]],
            [keys[3], "CU4", "Dora Dahl", "Storgatan 4 | 111 22 Stockholm | Sweden", "SE", "true", "1",
             "0.99", "EUR", "1", "5", f"letters/{safe[3]}.pdf", sha[keys[3]]],
        ]

    doc = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in doc.items() if k != "letters"} == {
        "day": "2026-05-10", "batch_id": "2026-05-10/batch-01", "letter_count": 4,
        "page_count": 5, "batch_pdf_sha256": _sha(batch_pdf),
    }
    assert doc["letters"][1] == {
        "action_key": keys[1], "customer_id": "CU2", "name": "Bob Brown",
        "address": ["1 High St", "SW1A 1AA London", "United Kingdom"], "country": None,
        "registered": False, "level_no": 3, "amount": "7.05", "currency": "EUR",
        "pages": 2, "first_page": 2, "file": f"letters/{safe[1]}.pdf", "sha256": sha[keys[1]],
    }
    assert [(r["action_key"], r["registered"], r["amount"], r["pages"], r["first_page"]) for r in doc["letters"]] == [
        (keys[0], False, "100.00", 1, 1), (keys[1], False, "7.05", 2, 2),
        (keys[2], True, "12.50", 1, 4), (keys[3], True, "0.99", 1, 5),
    ]


def test_same_letters_give_byte_identical_files(tmp_path, letters):
    a = write_print_batch(tmp_path / "a", DAY, letters, fsync=False).folder
    b = write_print_batch(tmp_path / "b", DAY, list(reversed(letters)), fsync=True).folder
    for name in ("batch.pdf", "manifest.csv", "manifest.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_second_call_same_day_is_batch_02_and_never_overwrites(tmp_path, letters):
    first = write_print_batch(tmp_path, DAY, letters[:2], fsync=False)
    before = (first.folder / "manifest.json").read_bytes()
    second = write_print_batch(tmp_path, DAY, letters[2:], fsync=False)
    assert (first.batch_id, second.batch_id) == ("2026-05-10/batch-01", "2026-05-10/batch-02")
    assert (first.folder / "manifest.json").read_bytes() == before
    assert json.loads((second.folder / "manifest.json").read_text())["batch_id"] == "2026-05-10/batch-02"
    # Another day starts again at 01.
    assert write_print_batch(tmp_path, date(2026, 5, 11), letters[:1], fsync=False).batch_id == "2026-05-11/batch-01"


def test_leftover_temp_folder_is_cleaned_and_not_a_batch(tmp_path, letters):
    day_dir = tmp_path / "2026-05-10"
    # What a crash before the rename leaves behind; same pid as ours, as after a container restart.
    stale = day_dir / f".batch-01.tmp-{os.getpid()}"
    (stale / "letters").mkdir(parents=True)
    (stale / "manifest.json").write_text(json.dumps({"batch_id": "2026-05-10/batch-01", "letters": [
        {"action_key": "ct-X/L1/reminder"}]}))
    (day_dir / ".batch-02.tmp-4194305").mkdir()  # above Linux's largest pid_max: surely gone
    (day_dir / ".batch-01.tmp-1").mkdir()  # pid 1 is alive: a concurrent writer's work is left alone
    assert keys_in_batches(tmp_path, DAY) == {}

    result = write_print_batch(tmp_path, DAY, letters[:1], fsync=False)
    assert result.batch_id == "2026-05-10/batch-01"
    assert sorted(os.listdir(day_dir)) == [".batch-01.tmp-1", "batch-01"]


def test_keys_in_batches_reads_complete_batches_only(tmp_path, letters):
    assert keys_in_batches(tmp_path, DAY) == {}
    write_print_batch(tmp_path, DAY, letters[:2], fsync=False)
    write_print_batch(tmp_path, DAY, letters[2:3], fsync=False)
    (tmp_path / "2026-05-10" / f".batch-03.tmp-{os.getpid()}").mkdir()
    assert keys_in_batches(tmp_path, DAY) == {
        "ct-C-20260510/L2/notice": "2026-05-10/batch-01",
        "ct-A-20260510/L1/reminder": "2026-05-10/batch-01",
        "ct-B-20260510/L3/final": "2026-05-10/batch-02",
    }
    assert keys_in_batches(tmp_path, date(2026, 5, 11)) == {}


def test_empty_list_writes_nothing(tmp_path):
    assert write_print_batch(tmp_path, DAY, [], fsync=False) is None
    assert list(tmp_path.iterdir()) == []


def test_bad_input_fails_before_anything_is_written(tmp_path, letters):
    bad_amount = LetterItem("ct-E/L1/reminder", letters[0].pdf, "E", ["x"], None, False, 1,
                            Decimal("1.005"), "EUR", "CU5")
    with pytest.raises(ValueError, match="whole cents"):
        write_print_batch(tmp_path, DAY, [bad_amount], fsync=False)
    with pytest.raises(ValueError, match="duplicate"):
        write_print_batch(tmp_path, DAY, [letters[0], letters[0]], fsync=False)
    assert list(tmp_path.iterdir()) == []
