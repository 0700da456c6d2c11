"""Exactly once under SIGKILL: `dunning dispatch` is killed at every crash point of a day's
dispatch while it sends to a real SMTP server and a real HTTP receiver; the next run recovers.

A clean run (`python -m pipeline.cli dispatch`, as a user starts it) first lists its crash points
(pipeline.delivery.faults). Then, for each point k, a fresh copy of the planned day is dispatched by a
process of its own that kills itself at point k (forked from a warm server: tests/warm_processes.py),
and dispatched again in this process. Afterwards every action was delivered exactly once, except
an email whose hand-over was under way when the process died: the SMTP server may or may not
have it, so it must be in `dispatch_review` and must not have been resent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
import yaml

import warm_processes
from http_receiver import WebhookReceiver
from pipeline.engine import run as run_mod
from pipeline.delivery.channels.print_batch import keys_in_batches
from pipeline.config.settings import PROJECT_ROOT, Settings
from smtp_server import SmtpServer
from world import ORG, World

pytestmark = pytest.mark.slow(150)  # long: each worker starts with its share (tests/conftest.py)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DAY = date(2026, 3, 22)
DEFAULT = {"handle": "default", "default": True, "versions": [{
    "effective_from": "2020-01-01", "scope": "contract", "levels": [{
        "name": "Reminder", "timing": {"after": "due_date", "days": 7}, "channel": "email",
        "actions": [{"type": "reminder"}, {"type": "notify_merchant"}, {"type": "sms"}, {"type": "webhook"}]}]}]}
POST = {"handle": "post", "versions": [{
    "effective_from": "2020-01-01", "scope": "contract", "levels": [{
        "name": "Letter", "timing": {"after": "due_date", "days": 7}, "channel": "letter"}]}]}


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> World:
    """Three contracts whose first level is due on DAY, planned but not yet dispatched."""
    root = tmp_path_factory.mktemp("crash")
    w = World(root / "world", {"policies": [DEFAULT, POST]})
    for n, pol in ((1, ""), (2, ""), (3, "post")):
        w.customer(f"CU{n}", phone=f"+4915550100{n}").contract(f"CT{n}", f"CU{n}", policy=pol)
        w.invoice(f"I{n}", f"{n}00.00", "2026-03-01", "2026-03-15", f"CT{n}", f"CU{n}")
    settings = w.write()
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        run_mod.run_range(con, date(2026, 3, 16), date(2026, 3, 21), settings, mode=run_mod.RunMode.SIMULATE)
        run_mod.plan_day(con, DAY, run_mod.RunMode.LIVE)
        con.execute("checkpoint")
    return w


def _config(w: World, folder: Path, smtp: SmtpServer, rx: WebhookReceiver) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(w.root / "dunning.duckdb", folder / "dunning.duckdb")
    config = {
        "data_dir": str(w.root / "data"), "database": str(folder / "dunning.duckdb"),
        "outbox": str(folder / "outbox"), "policy_file": str(w.root / "policy.yaml"),
        "templates": str(PROJECT_ROOT / "templates"), "render_workers": 1, "organization": ORG,
        "channels": {
            "email": {"host": smtp.host, "port": smtp.port, "security": "none"},
            "webhook": {"url": rx.url, "secret_env": "TEST_SIGNING_SECRET", "backoff_seconds": 0},
            "sms": {"url": rx.url_for("/sms"), "secret_env": "TEST_SIGNING_SECRET", "backoff_seconds": 0},
            "print_folder": str(folder / "print"),
        },
        "dispatch": {"batch_size": 3, "max_payment_age_days": None},
    }
    path = folder / "dunning.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _dispatch_subprocess(config: Path, **env: str) -> subprocess.CompletedProcess:
    """`dunning dispatch` as a user starts it: a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "dispatch", "--as-of", DAY.isoformat(), "--config", str(config)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "TEST_SIGNING_SECRET": SECRET, **env},
    )


def _dispatch_process(config: Path, **env: str) -> subprocess.CompletedProcess:
    """`dunning dispatch` in a process of its own, forked warm (tests/warm_processes.py says why)."""
    return warm_processes.run(warm_processes.cli, "dispatch", "--as-of", DAY.isoformat(), "--config", str(config),
                              cwd=PROJECT_ROOT, env={**os.environ, "TEST_SIGNING_SECRET": SECRET, **env},
                              output=config.parent / "dispatch.out")


def _outcome(config: Path, smtp: SmtpServer, rx: WebhookReceiver) -> dict:
    settings = Settings.load(config)
    with run_mod.connect(settings.database) as con:
        ledger = dict(con.execute("select action_key, status from action_ledger").fetchall())
        review = [r[0] for r in con.execute("select action_key from dispatch_review").fetchall()]
    mails = Counter(m["message"]["X-Dunning-Action-Key"] for m in smtp.messages)
    hooks = Counter(d["id"] for d in rx.deliveries)
    letters = Counter()
    for batch in (settings.print_folder / DAY.isoformat()).glob("batch-*/manifest.json"):
        letters.update(yaml.safe_load(batch.read_text())["letters"][i]["action_key"]
                       for i in range(len(yaml.safe_load(batch.read_text())["letters"])))
    return {"ledger": ledger, "review": review, "delivered": mails + hooks + letters,
            "batches": keys_in_batches(settings.print_folder, DAY)}


EMAILS = {f"ct-CT{n}-20260316/L1/{a}" for n in (1, 2) for a in ("reminder", "notify_merchant")}
HTTP = {f"ct-CT{n}-20260316/L1/{a}" for n in (1, 2) for a in ("sms", "webhook")}
LETTERS = {"ct-CT3-20260316/L1/reminder"}


def test_a_clean_dispatch_delivers_everything_once(planned, tmp_path):
    with SmtpServer() as smtp, WebhookReceiver(SECRET) as rx:
        config = _config(planned, tmp_path / "clean", smtp, rx)
        done = _dispatch_subprocess(config, DUNNING_CHECKPOINT_LOG=str(tmp_path / "points.log"))
        assert done.returncode == 0, done.stderr
        out = _outcome(config, smtp, rx)
    assert out["ledger"] == {k: "sent" for k in EMAILS | HTTP | LETTERS}
    assert out["delivered"] == Counter({k: 1 for k in EMAILS | HTTP | LETTERS})
    points = (tmp_path / "points.log").read_text().splitlines()
    assert Counter(p.split()[1] for p in points) == Counter({
        "snapshot.written": 1, "snapshot.committed": 1, "render.document": 5, "shard.rendered": 1,
        "send.reserved": 3, "journal.begin": 8, "send.outcome": 8, "shard.done": 1, "collect.committed": 1,
        "letters.marked": 1, "letters.batch_written": 1})


POINTS = 31  # the clean run above passes 31 crash points


def _killed_dispatch(planned: World, tmp_path: Path, smtp, rx, kill_at: int) -> tuple[Path, str]:
    """`dunning dispatch` of the planned world, SIGKILLed at crash point `kill_at`: its config and the
    last crash point it passed (`<n> <point> <detail>...`)."""
    config = _config(planned, tmp_path / "run", smtp, rx)
    trace = tmp_path / "points.log"
    killed = _dispatch_process(config, DUNNING_KILL_AT=str(kill_at), DUNNING_CHECKPOINT_LOG=str(trace))
    assert killed.returncode == -9, killed.stderr
    return config, trace.read_text().splitlines()[-1]


@pytest.mark.parametrize("kill_at", range(1, POINTS + 1))
def test_killed_at_any_point_the_next_run_delivers_exactly_once(planned, tmp_path, kill_at, monkeypatch):
    monkeypatch.setenv("TEST_SIGNING_SECRET", SECRET)
    with SmtpServer() as smtp, WebhookReceiver(SECRET) as rx:
        config, last_point = _killed_dispatch(planned, tmp_path, smtp, rx, kill_at)
        _, point, *detail = last_point.split()
        # the next run, in this process: recovers, then delivers what is left
        settings = Settings.load(config)
        with run_mod.connect(settings.database) as con:
            run_mod.dispatch_day(con, DAY, settings)
            run_mod.dispatch_day(con, DAY, settings)  # and once more: nothing changes
        out = _outcome(config, smtp, rx)

    everything = EMAILS | HTTP | LETTERS
    # an email whose SMTP hand-over had begun when the process died cannot be known: review
    in_doubt = set(detail) if point == "journal.begin" and detail[0] in EMAILS else set()
    assert out["review"] == sorted(in_doubt)
    assert out["ledger"] == {k: "needs_review" if k in in_doubt else "sent" for k in everything}
    # never twice; never lost, except what is listed for review
    assert out["delivered"] == Counter({k: 1 for k in everything - in_doubt})
    assert set(out["batches"]) == LETTERS


def _paid_the_day_before(planned: World, tmp_path: Path, settings: Settings) -> Settings:
    """`settings` reading a copy of the world's files in which every invoice was paid on 21 March."""
    data = tmp_path / "data"
    shutil.copytree(planned.root / "data", data)
    with open(data / "payments.csv", "a", encoding="utf-8") as fh:
        fh.writelines(f"P{n},CT{n},I{n},{n}00.00,EUR,2026-03-21,settled,,,\n" for n in (1, 2, 3))
    return settings.model_copy(update={"data_dir": data})


# Killed while an SMS (point 14) or a webhook (point 17) was being handed over, then recovered not by a
# dispatch but by a re-run of the day, after the invoices were paid (the inputs changed). The re-run
# recomputes only what no one was handed: the snapshot's rows are dispatch records, so it first
# finishes and collects the snapshot (the receiver de-duplicates the message sent again) and only then
# decides the day again. Nothing is lost from the ledger, nothing arrives twice.
@pytest.mark.parametrize("kill_at, key", [(14, "ct-CT1-20260316/L1/sms"), (17, "ct-CT1-20260316/L1/webhook")])
def test_killed_during_an_http_hand_over_a_rerun_with_new_payments_loses_and_repeats_nothing(
        planned, tmp_path, kill_at, key, monkeypatch):
    monkeypatch.setenv("TEST_SIGNING_SECRET", SECRET)
    with SmtpServer() as smtp, WebhookReceiver(SECRET) as rx:
        config, last_point = _killed_dispatch(planned, tmp_path, smtp, rx, kill_at)
        assert last_point == f"{kill_at} journal.begin {key}"
        settings = _paid_the_day_before(planned, tmp_path, Settings.load(config))
        with run_mod.connect(settings.database) as con:
            run_mod.load_inputs(con, settings)
            run_mod.run_day(con, DAY, settings)
            run_mod.run_day(con, DAY, settings)  # and once more: nothing changes
            cases = con.execute("select case_id, closed_on, close_reason from case_register order by 1").fetchall()
        out = _outcome(config, smtp, rx)

    everything = EMAILS | HTTP | LETTERS
    assert out["ledger"] == {k: "sent" for k in everything}
    assert out["delivered"] == Counter({k: 1 for k in everything})
    assert out["review"] == []
    # the day decided again on the new payments: every case closes, with its documents as the record
    assert cases == [(f"ct-CT{n}-20260316", DAY, "balance_cleared") for n in (1, 2, 3)]


# -- a shard killed mid-send ------------------------------------------------------------------------
# The day in four shards (pipeline/delivery/shards.py): CT1's case falls in shard 2, CT2's and CT3's
# in shard 3, which has emails, an SMS, a webhook and the letter. Shard 3 runs in a subprocess that
# kills itself at its k-th crash point, the other shards run cleanly, shard 3 is run again, then
# the collect step and the print batch run: every document arrives exactly once.
SHARDS = 4
VICTIM = 3
VICTIM_POINTS = 15  # render.document 3, shard.rendered 1, send.reserved 2, journal.begin 4, send.outcome 4, shard.done 1


def _shard_process(config: Path, folder: Path, shard: int, **env: str) -> subprocess.CompletedProcess:
    """One shard in a process of its own, forked warm, as a worker of the fan-out runs it."""
    return warm_processes.run(warm_processes.shard, str(folder), shard, str(config), cwd=PROJECT_ROOT,
                              env={**os.environ, "TEST_SIGNING_SECRET": SECRET, **env},
                              output=config.parent / f"shard-{shard}.out")


@pytest.mark.parametrize("kill_at", [None, *range(1, VICTIM_POINTS + 1)])
def test_a_shard_killed_mid_send_and_run_again_delivers_exactly_once(planned, tmp_path, kill_at, monkeypatch):
    from pipeline.delivery.sending import send_letters
    from pipeline.delivery.shards import collect, shard_of, take_snapshot

    monkeypatch.setenv("TEST_SIGNING_SECRET", SECRET)
    assert [shard_of(f"ct-CT{n}-20260316", SHARDS) for n in (1, 2, 3)] == [2, VICTIM, VICTIM]
    with SmtpServer() as smtp, WebhookReceiver(SECRET) as rx:
        config = _config(planned, tmp_path / "run", smtp, rx)
        settings = Settings.load(config)
        with run_mod.connect(settings.database) as con:
            snapshot, not_rendered = take_snapshot(con, DAY, settings, SHARDS)
        assert (not_rendered, snapshot.busy_shards()) == (0, [2, VICTIM])
        trace = tmp_path / "points.log"
        for shard in snapshot.busy_shards():
            env = {"DUNNING_CHECKPOINT_LOG": str(trace)} if shard == VICTIM else {}
            if shard == VICTIM and kill_at:
                env["DUNNING_KILL_AT"] = str(kill_at)
            done = _shard_process(config, snapshot.folder, shard, **env)
            assert done.returncode == (-9 if shard == VICTIM and kill_at else 0), done.stderr
        points = trace.read_text().splitlines()
        _, point, *detail = points[-1].split()
        if kill_at is None:
            assert len(points) == VICTIM_POINTS
            assert Counter(p.split()[1] for p in points) == Counter({
                "render.document": 3, "shard.rendered": 1, "send.reserved": 2, "journal.begin": 4,
                "send.outcome": 4, "shard.done": 1})
        else:
            assert len(points) == kill_at
            again = _shard_process(config, snapshot.folder, VICTIM)
            assert again.returncode == 0, again.stderr
        with run_mod.connect(settings.database) as con:
            collect(con, snapshot, settings)
            send_letters(con, DAY, settings)
            run_mod.dispatch_day(con, DAY, settings)  # and a whole dispatch after it: nothing changes
        out = _outcome(config, smtp, rx)

    everything = EMAILS | HTTP | LETTERS
    in_doubt = set(detail) if kill_at and point == "journal.begin" and detail[0] in EMAILS else set()
    assert out["review"] == sorted(in_doubt)
    assert out["ledger"] == {k: "needs_review" if k in in_doubt else "sent" for k in everything}
    assert out["delivered"] == Counter({k: 1 for k in everything - in_doubt})
    assert set(out["batches"]) == LETTERS
    assert not snapshot.folder.exists()  # collected: the ledger holds everything the journals said


# A shard killed while an SMS (its point 10) or a webhook (13) was being handed over, and the snapshot
# collected without running the shard again, as `dispatch.finish` collects after a failed shard. The
# receiver may have the message: it stays in the ledger as a record, `failed` to be sent again, and a
# re-run of the day with the invoices paid since (the cases close) neither recomputes it away nor
# loses it; the dispatch of that re-run sends it again under the same idempotency key.
@pytest.mark.parametrize("kill_at, key", [(10, "ct-CT2-20260316/L1/sms"), (13, "ct-CT2-20260316/L1/webhook")])
def test_a_possibly_delivered_http_message_stays_on_record_through_a_rerun(planned, tmp_path, kill_at, key,
                                                                            monkeypatch):
    from pipeline.delivery.sending import INTERRUPTED
    from pipeline.delivery.shards import collect, take_snapshot

    monkeypatch.setenv("TEST_SIGNING_SECRET", SECRET)
    with SmtpServer() as smtp, WebhookReceiver(SECRET) as rx:
        config = _config(planned, tmp_path / "run", smtp, rx)
        settings = Settings.load(config)
        with run_mod.connect(settings.database) as con:
            snapshot, _ = take_snapshot(con, DAY, settings, SHARDS)
        trace = tmp_path / "points.log"
        for shard in snapshot.busy_shards():
            env = {"DUNNING_CHECKPOINT_LOG": str(trace), "DUNNING_KILL_AT": str(kill_at)} if shard == VICTIM else {}
            done = _shard_process(config, snapshot.folder, shard, **env)
            assert done.returncode == (-9 if shard == VICTIM else 0), done.stderr
        assert trace.read_text().splitlines()[-1] == f"{kill_at} journal.begin {key}"
        with run_mod.connect(settings.database) as con:
            collect(con, snapshot, settings)
            after_collect = con.execute("select status, attempts, last_error from action_ledger where action_key = ?",
                                        [key]).fetchall()
        settings = _paid_the_day_before(planned, tmp_path, settings)
        with run_mod.connect(settings.database) as con:
            run_mod.load_inputs(con, settings)
            run_mod.run_day(con, DAY, settings)
            run_mod.run_day(con, DAY, settings)  # and once more: nothing changes
            again = con.execute("select status, attempts from action_ledger where action_key = ?", [key]).fetchall()
        out = _outcome(config, smtp, rx)

    assert after_collect == [("failed", 1, INTERRUPTED)]
    assert again == [("sent", 2)]
    # CT1's shard and what the victim had sent before, then the message sent again; the victim's rows
    # it never reached went back, and the re-run decided them again: the cases closed, unsent
    reached = ("notify_merchant", "reminder", "sms") + (("webhook",) if kill_at == 13 else ())
    sent = {k for k in EMAILS | HTTP if k.startswith("ct-CT1")} | {f"ct-CT2-20260316/L1/{a}" for a in reached}
    assert out["delivered"] == Counter({k: 1 for k in sent})
    assert out["ledger"] == {k: "sent" for k in sent}


# -- one process at a time on a shard ---------------------------------------------------------------

def test_a_dispatch_started_while_a_shard_is_sending_leaves_the_snapshot_to_it(planned, tmp_path, monkeypatch):
    """A fan-out's shard step is still sending (held at the SMS gateway) when a second dispatch starts
    (an operator's `dunning dispatch`, another Dagster run): the second finds the shard's lock taken,
    exits 4 having sent and marked nothing, and leaves the snapshot to the shard. The shard finishes;
    the next dispatch collects it. Every document arrives once."""
    from pipeline.delivery.shards import take_snapshot

    monkeypatch.setenv("TEST_SIGNING_SECRET", SECRET)
    with SmtpServer() as smtp, WebhookReceiver(SECRET) as rx:
        config = _config(planned, tmp_path / "run", smtp, rx)
        settings = Settings.load(config)
        with run_mod.connect(settings.database) as con:
            snapshot, _ = take_snapshot(con, DAY, settings, 1)
        assert snapshot.busy_shards() == [0]
        release, shard_done = rx.hold_next(), []
        shard = threading.Thread(target=lambda: shard_done.append(_shard_process(config, snapshot.folder, 0)))
        shard.start()
        try:
            deadline = time.monotonic() + 60
            while not rx.requests and time.monotonic() < deadline:
                time.sleep(0.02)
            assert rx.requests, "the shard never reached the HTTP receiver"
            mails_before = len(smtp.messages)
            second = _dispatch_process(config)
            with run_mod.connect(settings.database) as con:
                left = dict(con.execute("select action_key, status from action_ledger").fetchall())
                snapshots = con.execute("select snapshot_id, status from dispatch_snapshots").fetchall()
            mails_during = len(smtp.messages) - mails_before
        finally:
            release.set()
            shard.join(120)
        with run_mod.connect(settings.database) as con:
            run_mod.dispatch_day(con, DAY, settings)  # collects the shard's snapshot
            run_mod.dispatch_day(con, DAY, settings)  # and once more: nothing changes
        out = _outcome(config, smtp, rx)

    assert second.returncode == 4, second.stderr
    assert ("NOTHING SENT: shard 0 of dispatch snapshot 2026-03-22-001 is being worked on by another process"
            in " ".join(second.stderr.split()))
    assert (mails_during, snapshots) == (0, [("2026-03-22-001", "open")])
    assert left == {k: "sending" for k in EMAILS | HTTP | LETTERS}
    assert shard_done[0].returncode == 0, shard_done[0].stderr
    everything = EMAILS | HTTP | LETTERS
    assert out["ledger"] == {k: "sent" for k in everything}
    assert out["delivered"] == Counter({k: 1 for k in everything})
    assert set(out["batches"]) == LETTERS
    assert not snapshot.folder.exists()


def test_collect_refuses_while_a_shard_holds_its_lock_and_a_late_shard_finds_nothing(planned, tmp_path):
    """The lock itself: `collect` while a shard's lock is held applies nothing (DispatchBusy); after the
    collect, a shard started on the collected snapshot does nothing."""
    from pipeline.delivery.shards import DispatchBusy, collect, run_shard, shard_lock, take_snapshot

    with SmtpServer() as smtp, WebhookReceiver(SECRET) as rx:
        config = _config(planned, tmp_path / "run", smtp, rx)
        settings = Settings.load(config)
        with run_mod.connect(settings.database) as con:
            snapshot, _ = take_snapshot(con, DAY, settings, 1)
            with shard_lock(snapshot.folder, 0):
                with pytest.raises(DispatchBusy, match="shard 0 of dispatch snapshot 2026-03-22-001"):
                    collect(con, snapshot, settings)
                with pytest.raises(DispatchBusy):
                    run_shard(snapshot.folder, 0, settings)
            assert con.execute("select status from dispatch_snapshots").fetchall() == [("open",)]
            assert {s for (s,) in con.execute("select distinct status from action_ledger").fetchall()} == {"sending"}
            collect(con, snapshot, settings)  # nothing ran: every row goes back as it was
            assert con.execute("select status from dispatch_snapshots").fetchall() == [("collected",)]
            assert {s for (s,) in con.execute("select distinct status from action_ledger").fetchall()} == {"planned"}
        assert not snapshot.folder.exists()
        result = run_shard(snapshot.folder, 0, settings)
        assert (result.rendered, result.outcomes, smtp.messages, rx.requests) == (0, {}, [], [])


def test_killed_after_the_collect_committed_the_next_dispatch_writes_the_days_manifest(planned, tmp_path, monkeypatch):
    """Killed between the collect's commit and the outbox manifest: the next dispatch finds the
    collected snapshot's folder, writes the day's manifest from the ledger, then deletes the folder."""
    monkeypatch.setenv("TEST_SIGNING_SECRET", SECRET)
    with SmtpServer() as smtp, WebhookReceiver(SECRET) as rx:
        clean = _config(planned, tmp_path / "clean", smtp, rx)
        assert _dispatch_process(clean).returncode == 0
    expected = (tmp_path / "clean/outbox" / DAY.isoformat() / "manifest.json").read_text(encoding="utf-8")
    assert [d["action_key"] for d in json.loads(expected)["documents"]] == sorted(EMAILS | LETTERS)
    with SmtpServer() as smtp, WebhookReceiver(SECRET) as rx:
        config = _config(planned, tmp_path / "run", smtp, rx)
        trace = tmp_path / "points.log"
        killed = _dispatch_process(config, DUNNING_KILL_AT="29", DUNNING_CHECKPOINT_LOG=str(trace))
        assert killed.returncode == -9, killed.stderr
        assert trace.read_text().splitlines()[-1].split()[1:] == ["collect.committed", "2026-03-22-001"]
        manifest = tmp_path / "run/outbox" / DAY.isoformat() / "manifest.json"
        assert not manifest.exists()
        settings = Settings.load(config)
        with run_mod.connect(settings.database) as con:
            run_mod.dispatch_day(con, DAY, settings)
        out = _outcome(config, smtp, rx)
    assert manifest.read_text(encoding="utf-8") == expected
    assert not (tmp_path / "run/dunning.duckdb.dispatch/2026-03-22-001").exists()
    everything = EMAILS | HTTP | LETTERS
    assert out["ledger"] == {k: "sent" for k in everything}
    assert out["delivered"] == Counter({k: 1 for k in everything})
