"""Throughput of SmtpSender: n realistic messages over one connection to a local server.

The server (aiosmtpd, accept and discard) runs in a separate process so that it
does not compete with the client for the GIL; what is measured is the client
plus a real SMTP conversation over loopback TCP. Messages are built before the
clock starts: rendering is not the transport's cost.

    .venv/bin/python -m bench.smtp [N]
"""

from __future__ import annotations

import email.policy
import multiprocessing as mp
import random
import shutil
import socket
import sys
import time
from queue import Empty
from contextlib import contextmanager
from datetime import date
from email.message import EmailMessage
from pathlib import Path

from pipeline.delivery.channels.smtp import SmtpSender


class _CountingHandler:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.count += 1
        return f"250 2.0.0 Ok: queued as {self.count}"


def _serve(port_queue, stop, result_queue) -> None:
    """Server process: report the port, serve until told to stop, report the count."""
    from aiosmtpd.controller import Controller

    with socket.socket() as s:  # Controller does not take port=0 on every version
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = _CountingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port, server_hostname="bench.localhost")
    controller.start()
    port_queue.put(port)
    stop.wait()
    controller.stop()
    result_queue.put(handler.count)


def _get(queue, server, timeout: float = 30.0):
    """The next value from the server process; fail fast if it died instead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return queue.get(timeout=0.1)
        except Empty:
            if not server.is_alive():
                raise RuntimeError(f"bench server process exited with {server.exitcode}") from None
    raise TimeoutError("bench server process did not answer")


def build_messages(n: int, seed: int = 0) -> list[bytes]:
    """About 40 KB each: a text and an HTML part and a ~30 KB PDF-like attachment."""
    rng = random.Random(seed)
    paragraph = (
        "Sehr geehrte Damen und Herren,\n\nbei der Durchsicht unserer Konten haben wir "
        "festgestellt, dass die unten genannte Rechnung noch offen ist. Bitte überweisen "
        "Sie den fälligen Betrag innerhalb von 14 Tagen.\n\n"
    )
    messages = []
    for i in range(n):
        msg = EmailMessage()
        msg["From"] = "Mahnwesen <mahnwesen@billing.test>"
        msg["To"] = f"Kunde {i} <kunde{i}@example.test>"
        msg["Subject"] = f"Zahlungserinnerung zu Rechnung R-{100000 + i}"
        msg["Message-ID"] = f"<dunning-{i}@billing.test>"
        msg.set_content(paragraph * 3 + f"Rechnung R-{100000 + i}: {rng.randint(1000, 99999) / 100:.2f} EUR\n")
        msg.add_alternative(f"<html><body><p>{paragraph * 3}</p></body></html>", subtype="html")
        pdf = b"%PDF-1.7\n" + rng.randbytes(30_000) + b"\n%%EOF\n"
        msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"mahnung-{i}.pdf")
        messages.append(msg.as_bytes(policy=email.policy.SMTP))
    return messages


@contextmanager
def bench_server():
    """A counting SMTP server in another process: yields (port, received() -> count after stop)."""
    ctx = mp.get_context("spawn")  # no fork of a possibly threaded parent
    port_queue, result_queue, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(port_queue, stop, result_queue), daemon=True)
    server.start()
    try:
        port = _get(port_queue, server)

        def received() -> int:
            stop.set()
            return _get(result_queue, server)

        yield port, received
    finally:
        stop.set()
        server.join(timeout=10)
        if server.is_alive():
            server.terminate()


def bench_smtp(n: int = 1000) -> dict:
    """The transport alone: n prebuilt messages over one connection."""
    messages = build_messages(n)
    with bench_server() as (port, received):
        start = time.perf_counter()
        with SmtpSender("127.0.0.1", port, security="none") as sender:
            for i, raw in enumerate(messages):
                sender.send(raw, "mahnwesen@billing.test", [f"kunde{i}@example.test"])
        seconds = time.perf_counter() - start
        count = received()
    return {
        "messages": n,
        "bytes_per_message": sum(map(len, messages)) // n,
        "seconds": round(seconds, 3),
        "messages_per_second": round(n / seconds, 1),
        "server_received": count,
    }


def bench_dispatch(workdir: Path, n: int = 1000) -> dict:
    """The product's send phase: n rendered email actions in a ledger, handed over the way dispatch
    does it: a snapshot (`pipeline.delivery.shards.take_snapshot`), one shard sending them
    (journal lines, one fsync per `dispatch.batch_size` messages, one SMTP connection) and the
    collect step writing every outcome to the ledger in one transaction. All three are timed."""
    import duckdb

    from pipeline.delivery.shards import collect, run_shards, take_snapshot
    from pipeline.config.settings import Settings
    from pipeline.warehouse.state import ensure_state

    workdir = Path(workdir) / "email_bench"
    if workdir.exists():
        shutil.rmtree(workdir)
    day = date(2026, 5, 10)
    outbox = workdir / "outbox"
    keys = [f"ct-CT{i:07d}-20260401/L1/reminder" for i in range(n)]
    for key, raw in zip(keys, build_messages(n)):
        folder = outbox / day.isoformat() / key.replace("/", "__")
        folder.mkdir(parents=True)
        (folder / "message.eml").write_bytes(raw)
    con = duckdb.connect(str(workdir / "bench.duckdb"))
    ensure_state(con)
    con.execute("create table stg_customers (customer_id varchar, name varchar, address_line1 varchar, "
                "address_line2 varchar, postal_code varchar, city varchar, country varchar)")
    con.execute(
        """insert into action_ledger by name
           select k as action_key, split_part(k, '/', 1) as case_id, 'contract' as scope, 'T' as target_id,
                  'CT' as contract_id, 'CU' as customer_id, 'EUR' as currency, 'default' as policy_id,
                  'default@0' as policy_version, 1 as level_no, 'Reminder' as level_name,
                  'reminder' as action, 'email' as channel, ? as executed_on, 0 as principal, 0 as fee,
                  0 as fees_total, 0 as interest, 0 as amount_demanded, 'rendered' as status,
                  'live' as dispatch_mode, ? || '/' || replace(k, '/', '__') as document_path
           from (select unnest(?) as k)""",
        [day, day.isoformat(), keys],
    )
    with bench_server() as (port, received):
        settings = Settings.model_validate(dict(
            data_dir=workdir, database=workdir / "bench.duckdb", outbox=outbox, policy_file=workdir / "none.yaml",
            templates=workdir, organization=dict(name="Bench", email="billing@bench.test", iban="DE89370400440532013000",
                              bic="COBADEFFXXX", bank="Bench Bank", country="DE"),
            channels={"email": {"host": "127.0.0.1", "port": port, "security": "none"}}))
        start = time.perf_counter()
        snapshot, _ = take_snapshot(con, day, settings)
        snapshot_s = time.perf_counter() - start
        run_shards(snapshot, settings)
        send_s = time.perf_counter() - start - snapshot_s
        done = collect(con, snapshot, settings)
        seconds = time.perf_counter() - start
        count = received()
    sent = con.execute("select count(*) from action_ledger where status = 'sent'").fetchall()[0][0]
    con.close()
    return {"messages": n, "seconds": round(seconds, 3), "messages_per_second": round(n / seconds, 1),
            "snapshot_seconds": round(snapshot_s, 3), "send_seconds": round(send_s, 3),
            "collect_seconds": round(seconds - snapshot_s - send_s, 3),
            "server_received": count, "ledger_sent": sent, "failed": done.outcomes["failed"]}


if __name__ == "__main__":
    print(bench_smtp(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
