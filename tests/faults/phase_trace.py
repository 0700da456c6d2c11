"""The `dunning` command line, unchanged, that also says which phase of the run it is in.

    python tests/faults/phase_trace.py run --as-of 2026-04-01 --config dunning.yaml

is `dunning run --as-of 2026-04-01 --config dunning.yaml` (`pipeline.cli.main`), plus:
- DUNNING_PHASE_LOG=FILE: it appends `<unix time> <phase>` to FILE whenever the process enters a
  phase or goes back to the enclosing one, so the fault suite can tell in which phase its SIGKILL
  landed: the last line written before the kill. Each line is written and flushed on its own (a
  SIGKILL keeps what reached the kernel).
- DUNNING_KILL_AT_PHASE=PHASE: the process SIGKILLs itself as it enters PHASE (everything before
  it done and committed): exact kills outside dispatch, whose own checkpoints (`DUNNING_KILL_AT`,
  pipeline/delivery/faults.py) cover dispatch only.

The marks wrap the library's functions where the CLI and the library look them up (module
attributes); arguments, results and exceptions pass through untouched.

Phases: `startup` (interpreter, imports, settings, channel checks), `ingest` (`load_inputs`),
`plan` with `rewind`, `models` and `state` (`apply_day`) inside it, `dispatch` with `recover`,
`render`, `send` and `letters` (the print batch) inside it, `publish` (the analysts' copy), and
`cli` for the command line's own code between them (at the end: the review list and the exit).
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import time

LOG = os.environ.get("DUNNING_PHASE_LOG")
KILL_AT_PHASE = os.environ.get("DUNNING_KILL_AT_PHASE")  # SIGKILL on entering this phase (exact kills)
_stack: list[str] = []


def mark(phase: str) -> None:
    if LOG:
        with open(LOG, "a", encoding="utf-8") as fh:
            fh.write(f"{time.time():.6f} {phase}\n")
    if phase == KILL_AT_PHASE:
        os.kill(os.getpid(), signal.SIGKILL)


def _traced(module, attr: str, phase: str) -> None:
    fn = getattr(module, attr)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _stack.append(phase)
        mark(phase)
        try:
            return fn(*args, **kwargs)
        finally:
            _stack.pop()
            mark(_stack[-1] if _stack else "cli")

    setattr(module, attr, wrapper)


def install() -> None:
    from pipeline.delivery import dispatch
    from pipeline.engine import run

    for module, attr, phase in (
        (run, "load_inputs", "ingest"),
        (run, "plan_day", "plan"),
        (run, "rewind_to", "rewind"),
        (run, "run_daily_models", "models"),
        (run, "apply_day", "state"),
        (run, "dispatch_day", "dispatch"),
        (dispatch, "dispatch", "dispatch"),
        (dispatch, "recover", "recover"),
        (dispatch, "take_snapshot", "snapshot"),
        (dispatch, "run_shards", "shards"),
        (dispatch, "collect", "collect"),
        (dispatch, "send_letters", "letters"),
        (run, "publish_day", "publish"),
    ):
        _traced(module, attr, phase)


if __name__ == "__main__":
    mark("startup")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from pipeline import cli

    install()
    sys.argv[0] = "dunning"
    cli.main()
