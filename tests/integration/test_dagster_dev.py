"""`make dagster` as a user starts it: `python -m dagster_project.dev` serves the UI on 127.0.0.1 with
the code location loaded, prints no warning, and stops on SIGTERM; the day's job runs with the
multiprocess executor (one process per step) under the instance settings of dagster_project/dagster.yaml."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
import yaml

from dagster._core.definitions.reconstruct import ReconstructableRepository
from pipeline.config.settings import PROJECT_ROOT
from world import World, policy, query

pytestmark = pytest.mark.slow(60)  # long: each worker starts with its share (tests/conftest.py)


def _world(tmp_path) -> World:
    w = World(tmp_path, policy([("due_date", 14, 7)]))
    w.customer("CU1").contract("CT1", "CU1")
    w.invoice("I1", "100.00", "2026-04-26", "2026-05-10")
    return w


def _free_port() -> int:
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    except OSError as exc:
        pytest.skip(f"cannot bind 127.0.0.1: {exc}")


LOCATIONS = '{"query": "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"}'


def _locations(port: int) -> list[tuple[str, str]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=LOCATIONS.encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        entries = json.loads(response.read())["data"]["workspaceOrError"]["locationEntries"]
    return [(e["name"], e["loadStatus"]) for e in entries]


def test_dev_serves_the_code_location_and_stops_on_sigterm_without_warnings(tmp_path):
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "DUNNING_CONFIG": str(_world(tmp_path).write_config())}
    env.pop("VIRTUAL_ENV", None)
    out, err = open(tmp_path / "stdout", "wb"), open(tmp_path / "stderr", "wb")
    # a new session: started in the background, as a service manager or `make dagster &` would
    proc = subprocess.Popen([sys.executable, "-m", "dagster_project.dev", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=tmp_path, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline, locations = time.monotonic() + 180, []
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                locations = _locations(port)
            except OSError:
                locations = []
            if locations and locations[0][1] == "LOADED":
                break
            time.sleep(1)
        assert proc.poll() is None, (tmp_path / "stderr").read_text()
        assert locations == [("dunning", "LOADED")]
        while b"Instance is configured with the following daemons" not in (tmp_path / "stdout").read_bytes() \
                and time.monotonic() < deadline:  # the daemon has loaded the code location too
            time.sleep(0.5)
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        assert time.monotonic() - stopped_at < 20
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        try:  # anything of that session left behind (the code server, webserver, daemon)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out.close()
        err.close()
    lines = [*(tmp_path / "stdout").read_text().splitlines(), *(tmp_path / "stderr").read_text().splitlines()]
    assert [line for line in lines if "warn" in line.lower()] == []
    assert any("Dagster services shut down" in line for line in lines)
    assert (tmp_path / "home" / "dagster.yaml").read_text() == (PROJECT_ROOT / "dagster_project" / "dagster.yaml"
                                                                ).read_text()


def _run_in_processes(tmp_path, job_name: str, partition: str, config_file: str, executor, **run_config):
    """Run a job of the code location on the multiprocess executor, one process per step, as the UI's
    run launcher does; (steps that succeeded, process ids of the steps, all events). `executor` wraps
    the start method in the job's executor config."""
    instance_settings = yaml.safe_load((PROJECT_ROOT / "dagster_project" / "dagster.yaml").read_text())
    # forked from a server that imported Dagster's loading code once (spawning costs seconds a step); only
    # modules that open no DuckDB connection when imported, so no database thread is forked with it
    preload = ["dagster._utils.test", "dagster.components", "dagster_project.definitions", "pipeline.engine.run"]
    # the settings travel in the run config: a step forked from a server started earlier in this process
    # would see that server's environment, not a variable set now
    run_config = {"execution": {"config": executor({"start_method": {"forkserver": {"preload_modules": preload}}})},
                  "resources": {"dunning": {"config": {"config_file": config_file}}}, **run_config}
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(overrides=instance_settings, temp_dir=str(tmp_path / "home")) as instance:
        # the code location's own pointer, as the UI's run launcher has it
        job = ReconstructableRepository.for_module("dagster_project.definitions", "defs").get_reconstructable_job(
            job_name)
        result = dg.execute_job(job, instance=instance, run_config=run_config, tags={"dagster/partition": partition})
        assert result.success
        events = list(result.all_events)
    steps = {e.step_key for e in events if e.event_type_value == "STEP_SUCCESS"}
    processes = {e.pid for e in events if e.event_type_value == "STEP_START"}
    return steps, processes, events


def test_the_day_runs_with_the_multiprocess_executor(tmp_path):
    w = _world(tmp_path)
    config_file = str(w.write_config())
    settings = w.write()
    # the daily job's executor is chosen in the run config (in process or multiprocess)
    steps, processes, _ = _run_in_processes(tmp_path, "daily_dunning", "2026-05-24", config_file,
                                            lambda start_method: {"multiprocess": start_method})
    assert steps == {"billing_inputs", "dunning_state", "outbox_documents", "daily_report"}
    assert len(processes) == 4  # one process per step, each opening the database in turn
    assert query(settings, "select action_key, status from action_ledger") == [
        ("ct-CT1-20260524/L1/reminder", "sent")], query(settings, "select last_error from action_ledger")
    assert (Path(settings.reports_dir) / "2026-05-24" / "report.pdf").is_file()


def test_the_documents_fan_out_in_shards_on_the_multiprocess_executor(tmp_path):
    """The sharded documents job (snapshot -> one step per shard -> collect), one process per step,
    dispatches exactly what `dunning dispatch` does in one process: same ledger, same outbox bytes."""
    import hashlib
    import shutil
    from datetime import date

    from pipeline.delivery.dispatch import dispatch
    from pipeline.engine import run as run_mod
    from pipeline.delivery.shards import shard_of

    w = World(tmp_path / "world", {"policies": [{"handle": "default", "default": True, "versions": [{
        "effective_from": "2020-01-01", "levels": [{"name": "Reminder", "timing": {"after": "due_date", "days": 7},
                                                    "channel": "email",
                                                    "actions": [{"type": "reminder"}, {"type": "webhook"}]}]}]}]})
    for n in range(1, 7):
        w.customer(f"CU{n}").contract(f"CT{n}", f"CU{n}")
        w.invoice(f"I{n}", f"{n}0.00", "2026-05-01", "2026-05-10", f"CT{n}", f"CU{n}")
    config_file = w.write_config()
    settings = w.write()
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        run_mod.plan_day(con, date(2026, 5, 17), run_mod.RunMode.LIVE)
    busy = sorted({shard_of(f"ct-CT{n}-20260517", 4) for n in range(1, 7)})
    # the same day dispatched by the library in one process, on a copy
    shutil.copytree(tmp_path / "world", tmp_path / "copy")
    copy = World(tmp_path / "copy", {}).write().model_copy(update={"policy_file": settings.policy_file,
                                                                   "data_dir": settings.data_dir})
    with run_mod.connect(copy.database) as con:
        dispatch(con, date(2026, 5, 17), copy)

    # the sharded job is built on the multiprocess executor: its config is the executor's own
    steps, processes, events = _run_in_processes(tmp_path, "sharded_documents", "2026-05-17", str(config_file),
                                                 lambda start_method: start_method,
                                                 ops={"documents_snapshot": {"config": {"shards": 4}}})
    materialized = {e.asset_key.to_user_string() for e in events if e.event_type_value == "ASSET_MATERIALIZATION"}
    assert steps == {"documents_snapshot", "documents_collect",
                     *(f"documents_shard[shard_{n:03d}]" for n in busy)}
    assert len(busy) >= 3 and len(processes) == len(steps)  # one process per step
    assert materialized == {"documents/outbox", "documents/email", "documents/letter", "documents/sms",
                            "documents/webhook", "documents/manual", "analyst_copy"}

    ledger = "select action_key, status, document_path, provider_message_id from action_ledger order by 1"
    assert query(settings, ledger) == query(copy, ledger)
    assert [r[1] for r in query(settings, ledger)] == ["sent"] * 12

    def files(root):
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in root.rglob("*") if p.is_file()}
    assert files(settings.outbox) == files(copy.outbox)
