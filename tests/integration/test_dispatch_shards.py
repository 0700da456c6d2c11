"""Sharding changes nothing: a day's documents dispatched in one shard and in four give the same
ledger, byte-identical outbox files and manifests, and byte-identical print batches.

Worlds are generated (hypothesis): contracts on three policies (emails and the merchant copy in
the outbox, letters to the print batch, SMS and webhooks in the outbox), a few invoices each,
some paid, two days of which the second is dispatched. Each world is planned once; copies of its
database are dispatched with 1 and with 4 shards and every byte compared. A document that cannot
be rendered (a customer whose address the post cannot deliver) fails alone in both.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings as hypothesis_settings, strategies as st

from pipeline.delivery.dispatch import dispatch
from pipeline.delivery.shards import dispatch_dir, shard_of
from pipeline.engine import run as run_mod
from world import World

pytestmark = pytest.mark.slow(30)  # long: each worker starts with its share (tests/conftest.py)

DAY = date(2026, 3, 23)
EMAIL = {"handle": "default", "default": True, "versions": [{
    "effective_from": "2020-01-01", "scope": "contract", "levels": [{
        "name": "Reminder", "timing": {"after": "due_date", "days": 7}, "channel": "email",
        "actions": [{"type": "reminder"}, {"type": "notify_merchant"}]}]}]}
POST = {"handle": "post", "versions": [{
    "effective_from": "2020-01-01", "scope": "contract", "levels": [{
        "name": "Letter", "timing": {"after": "due_date", "days": 7}, "channel": "letter"}]}]}
MOBILE = {"handle": "mobile", "versions": [{
    "effective_from": "2020-01-01", "scope": "contract", "levels": [{
        "name": "Nudge", "timing": {"after": "due_date", "days": 7}, "channel": "sms",
        "actions": [{"type": "sms"}, {"type": "webhook"}]}]}]}
LEDGER = ("select action_key, case_id, channel, action, status, document_path, provider_message_id, last_error, "
          "review_reason, attempts, status_changed_on from action_ledger order by action_key")

contract = st.tuples(st.sampled_from(["", "post", "mobile"]),                     # policy
                     st.lists(st.integers(1, 900), min_size=1, max_size=2),        # invoice amounts (euros)
                     st.integers(14, 16),                                          # due day in March
                     st.booleans())                                                # undeliverable postcode


def _world(root: Path, contracts) -> World:
    w = World(root, {"policies": [EMAIL, POST, MOBILE]})
    for n, (pol, amounts, due, bad_postcode) in enumerate(contracts, start=1):
        w.customer(f"CU{n}", phone=f"+49151555{n:04d}", postal_code="1O115" if bad_postcode else "10115")
        w.contract(f"CT{n}", f"CU{n}", policy=pol)
        for i, euros in enumerate(amounts):
            w.invoice(f"I{n}-{i}", f"{euros}.{n % 100:02d}", "2026-03-01", f"2026-03-{due:02d}", f"CT{n}", f"CU{n}")
    return w


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _dispatched(world_root: Path, folder: Path, shards: int, processes: int | None = None):
    shutil.copytree(world_root, folder)
    settings = World(folder, {}).write().model_copy(update={
        "policy_file": world_root / "policy.yaml", "data_dir": world_root / "data"})
    with run_mod.connect(settings.database) as con:
        summary = dispatch(con, DAY, settings, shards=shards, processes=processes)
        ledger = con.execute(LEDGER).fetchall()
        snapshots = con.execute("select shards, status from dispatch_snapshots").fetchall()
    assert snapshots == [(shards, "collected")]
    assert not any(dispatch_dir(settings).iterdir())  # every snapshot folder removed once collected
    outbox = {k: v for k, v in _files(settings.outbox).items() if not k.startswith("print/")}
    return summary, ledger, outbox, _files(settings.print_folder)


def _plan(root: Path, contracts) -> None:
    w = _world(root, contracts)
    settings = w.write()
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        run_mod.plan_day(con, date(2026, 3, 22), run_mod.RunMode.LIVE)
        run_mod.plan_day(con, DAY, run_mod.RunMode.LIVE)


def _compare(root: Path, contracts, processes: int | None = None) -> tuple:
    _plan(root / "world", contracts)
    one = _dispatched(root / "world", root / "one", 1)
    four = _dispatched(root / "world", root / "four", 4, processes)
    assert one[1] == four[1]  # the ledger, every column dispatch writes
    assert one[2] == four[2]  # every outbox file, manifests included, byte for byte
    assert one[3] == four[3]  # the print batches, byte for byte
    assert one[0].line() == four[0].line()
    return one


# no shrinking: each example renders real PDFs; a failure prints its world as generated
@hypothesis_settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                     phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(st.lists(contract, min_size=2, max_size=7))
def test_one_shard_and_four_shards_dispatch_the_same_bytes(contracts):
    with tempfile.TemporaryDirectory() as tmp:
        summary, ledger, outbox, batches = _compare(Path(tmp), contracts)
    letters = [r for r in ledger if r[2] == "letter"]
    assert summary.letters == sum(r[4] == "sent" for r in letters)
    assert all(r[4] in ("sent", "failed") for r in ledger)
    assert {r[4] for r in letters if r[0].startswith(tuple(f"ct-CT{n}-" for n, c in enumerate(contracts, 1) if c[3]))} <= {"failed"}
    # each day with emails or letters has its manifest (both runs wrote the same, compared above)
    days = {r[5].split("/")[0] for r in ledger if r[3] in ("reminder", "notify_merchant") and r[4] == "sent"}
    assert {k.split("/")[0] for k in outbox if k.endswith("/manifest.csv")} == days


def test_four_shards_in_two_processes_dispatch_the_same_bytes_as_one(tmp_path):
    contracts = [("", [120], 14, False), ("post", [90, 40], 15, False), ("mobile", [75], 14, False),
                 ("post", [310], 16, True), ("", [55], 16, False), ("post", [20], 14, False)]
    summary, ledger, outbox, batches = _compare(tmp_path, contracts, processes=2)
    assert len({shard_of(r[1], 4) for r in ledger}) >= 3  # the cases really spread over the shards
    assert [(r[0], r[4]) for r in ledger] == [
        ("ct-CT1-20260322/L1/notify_merchant", "sent"), ("ct-CT1-20260322/L1/reminder", "sent"),
        ("ct-CT2-20260322/L1/reminder", "sent"), ("ct-CT3-20260322/L1/sms", "sent"),
        ("ct-CT3-20260322/L1/webhook", "sent"), ("ct-CT4-20260322/L1/reminder", "failed"),
        ("ct-CT5-20260322/L1/notify_merchant", "sent"), ("ct-CT5-20260322/L1/reminder", "sent"),
        ("ct-CT6-20260322/L1/reminder", "sent")]
    assert (summary.rendered, summary.letters, summary.failed, summary.not_rendered) == (8, 2, 1, 1)
    assert sum(k.endswith("batch.pdf") for k in batches) == 1
