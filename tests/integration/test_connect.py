"""`run.connect` opens the database in a process whose memory the kernel backs with ordinary pages
(`without_transparent_huge_pages`): with transparent huge pages on, fresh memory of a process holding
a large database can cost 30x more to fault in (pipeline/engine/run.py)."""

from __future__ import annotations

import ctypes
import sys

import pytest

from pipeline.engine import run as run_mod

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="prctl and /proc are Linux's")


def _thp_enabled() -> str:
    with open("/proc/self/status", encoding="ascii") as status:
        found = next((line.split(":", 1)[1].strip() for line in status if line.startswith("THP_enabled:")), None)
    if found is None:  # kernels before 5.0 do not show it
        pytest.skip("this kernel does not report THP_enabled")
    return found


def test_a_connection_turns_transparent_huge_pages_off_for_its_process(tmp_path):
    # as a process starts: allowed (an earlier test in this worker may have opened a connection)
    assert ctypes.CDLL(None, use_errno=True).prctl(
        *(ctypes.c_ulong(v) for v in (run_mod._PR_SET_THP_DISABLE, 0, 0, 0, 0))) == 0
    run_mod.without_transparent_huge_pages.cache_clear()
    assert _thp_enabled() == "1"

    with run_mod.connect(tmp_path / "dunning.duckdb") as con:
        assert con.execute("select 42").fetchall() == [(42,)]
        assert _thp_enabled() == "0"
    assert run_mod.without_transparent_huge_pages() is True
