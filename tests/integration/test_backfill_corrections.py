"""A backfill after corrected inputs, over generated worlds: live days dunned and sent, then the
invoices' due dates corrected (earlier or later), a backfill from before any case opened with the
highest level caught up, then more live days. Whatever the recomputation opens on other days than
the live days did, no level reaches a target twice, no level's fee is counted twice, and no target
is left with two open cases (`backfill._continue_live_cases`).

The worlds have no payments: every case stays open from the day it opens, so a level sent twice to
a target could only be the backfill's doing."""

from __future__ import annotations

import os
import tempfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from pipeline.engine import run as run_mod
from pipeline.engine.backfill import backfill
from world import World, policy, query

pytestmark = pytest.mark.slow(60)  # long: each worker starts with its share (tests/conftest.py)

LIVE_FROM, LIVE_TO = date(2026, 3, 13), date(2026, 3, 28)
BACKFILL_FROM = date(2026, 3, 8)  # before any case of these worlds opens (the earliest due date is 9 March)
AFTER = (date(2026, 3, 29), date(2026, 3, 30))
LEVELS = [("due_date", 7, 7), ("previous_level", 0, 7, {"EUR": "5.00"})]

# an invoice: due this many days after 12 March on the live days, then moved by the correction
invoice = st.tuples(st.integers(0, 6), st.integers(-3, 5))
world = st.tuples(st.lists(st.lists(invoice, min_size=1, max_size=2), min_size=1, max_size=3),
                  st.sampled_from(["contract", "invoice", "customer"]))


def _world(root: Path, spec, corrected: bool) -> World:
    contracts, scope = spec
    w = World(root, policy(LEVELS, scope=scope))
    for c, invoices in enumerate(contracts):
        w.customer(f"CU{c}").contract(f"CT{c}", f"CU{c}")
        for i, (due, moved) in enumerate(invoices):
            due_on = date(2026, 3, 12) + timedelta(days=due + (moved if corrected else 0))
            w.invoice(f"I{c}-{i}", "100.00", "2026-03-01", due_on.isoformat(), f"CT{c}", f"CU{c}")
    return w


def _live(settings, first: date, last: date) -> None:
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        for n in range((last - first).days + 1):
            run_mod.run_day(con, first + timedelta(days=n), settings)


# DUNNING_REPLAY_EXAMPLES: more worlds, for a long search (the suite draws five)
@settings(max_examples=int(os.environ.get("DUNNING_REPLAY_EXAMPLES", "5")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(world)
@example(([[(3, 2)], [(0, -3)]], "contract"))  # one case opens later, one earlier than it did live
def test_a_backfill_after_corrections_sends_no_level_twice(spec):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _live(_world(root, spec, corrected=False).write(), LIVE_FROM, LIVE_TO)
        s = _world(root, spec, corrected=True).write()  # the same database, the corrected files
        with run_mod.connect(s.database) as con:
            run_mod.load_inputs(con, s)
            backfill(con, BACKFILL_FROM, LIVE_TO, s, catch_up="highest")
        _live(s, *AFTER)

        assert query(s, "select target_id, level_no, count(*) from action_ledger where status = 'sent' "
                        "group by all having count(*) > 1") == []
        assert query(s, "select target_id, level_no, count(*) from action_ledger "
                        "where fee <> 0 and status_is_done(status) group by all having count(*) > 1") == []
        assert query(s, "select target_id, count(*) from case_register where closed_on is null "
                        "group by all having count(*) > 1") == []
        # every target the live days dunned is still dunned, by one case, with its levels done once
        assert query(s, "select count(distinct target_id) from case_register where closed_on is null") == \
            query(s, "select count(distinct target_id) from action_ledger where status = 'sent'")
