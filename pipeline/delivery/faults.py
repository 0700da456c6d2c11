"""Crash points for the exactly-once tests: the process kills itself at the N-th one.

`DUNNING_KILL_AT=N` makes the N-th call of `checkpoint` in this process send
SIGKILL to itself (no cleanup, no flushing: as hard as a crash gets).
`DUNNING_CHECKPOINT_LOG=FILE` appends each checkpoint's name to FILE, which
is how a test learns how many distinct points a clean run passes. Unset (the
normal case) a checkpoint costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_count = 0


def checkpoint(name: str, detail: str = "") -> None:
    global _count
    kill_at, log = os.environ.get("DUNNING_KILL_AT"), os.environ.get("DUNNING_CHECKPOINT_LOG")
    if not kill_at and not log:
        return
    _count += 1
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{_count} {name} {detail}".rstrip() + "\n")
    if kill_at and _count == int(kill_at):
        os.kill(os.getpid(), signal.SIGKILL)
