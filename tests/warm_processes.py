"""Real processes to kill, started warm: forked from a server that has imported the pipeline already.

The exactly-once tests kill a dispatch at each of its crash points (`tests/integration/test_crash_recovery.py`):
some eighty processes per run of the suite. Started as `python -m pipeline.cli`, each spent about a
second of CPU importing the CLI, DuckDB and WeasyPrint before reaching its first crash point, about
half of what it did in all. Here each is forked instead from a forkserver of these tests' own (one
per test worker) that has imported those modules once. The child is still its own process, with its own
DuckDB connection and its own crash-point counter, and it still dies of its own SIGKILL without cleanup.
What it no longer exercises is the interpreter's start-up, which has no crash point: the clean run of
that module still starts `python -m pipeline.cli` as a user would. Measured on this
2-core machine, the module alone (48 tests, about 80 killed processes): 168 s of CPU started cold,
131 s forked from the renderer's server (WeasyPrint only), 97 s from this one.

The forkserver itself runs no thread and opens nothing, so forking it is safe; the test process
(which runs SMTP and HTTP servers in threads) is never forked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from multiprocessing import forkserver
from multiprocessing.context import ForkServerContext
from pathlib import Path

from pipeline.delivery.render.pdf import _RenderForkServerProcess

# What the server imports before it forks: what a dispatch or a shard imports, and `warm_fonts`, which lays
# out one line of text so that no child loads the system's fonts again.
PRELOAD = ["pipeline.cli", "pipeline.delivery.shards", "pipeline.delivery.dispatch", "pipeline.delivery.documents",
           "pipeline.delivery.render.pdf", "pipeline.delivery.sending", "weasyprint", "httpx", "jinja2",
           "warm_processes", "warm_fonts"]

# A forkserver of these tests' own, as the renderer has one (pipeline.delivery.render.pdf): not
# multiprocessing's process-wide one, which Dagster's multiprocess executor starts with its own
# preloads in tests that may run in this same worker process.
_SERVER = forkserver.ForkServer()
_SERVER.set_forkserver_preload(PRELOAD)


class _WarmProcess(_RenderForkServerProcess):
    forkserver = _SERVER


class _WarmContext(ForkServerContext):
    Process = _WarmProcess


def _child(target: Callable[..., object], args: tuple, env: dict[str, str], cwd: str, output: str) -> None:
    """In the forked child: the environment and working folder of a fresh process, output to a file."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    target(*args)


def run(target: Callable[..., object], *args: object, cwd: Path, env: dict[str, str], output: Path,
        timeout: float = 120) -> subprocess.CompletedProcess:
    """`target(*args)` in a warm child process; its return code as `subprocess.run` gives it (-9: SIGKILL).

    `target` must be importable by name (a module-level function). Its output is in `output` and in
    the result's `stderr` (stdout and stderr together)."""
    proc = _WarmContext().Process(target=_child, args=(target, args, env, str(cwd), str(output)))
    proc.start()
    proc.join(timeout)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
        raise subprocess.TimeoutExpired(repr(target), timeout)
    text = output.read_text(encoding="utf-8", errors="replace") if output.exists() else ""
    return subprocess.CompletedProcess([repr(target), *map(str, args)], proc.exitcode, "", text)


def cli(*argv: str) -> None:
    """`dunning <argv>` as the console script runs it, exiting with its code."""
    from pipeline import cli as dunning

    sys.argv = ["dunning", *argv]
    dunning.main()


def shard(folder: str, number: int, config: str) -> None:
    """One shard of a day's documents (`pipeline.delivery.shards.run_shard`), as a worker runs it."""
    from pipeline.config.settings import Settings
    from pipeline.delivery.shards import run_shard

    run_shard(folder, number, Settings.load(config))
