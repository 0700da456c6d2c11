"""Throughput of SmtpSender: n realistic messages over one connection to a local server.

The server (aiosmtpd, accept and discard) runs in a separate process so that it
does not compete with the client for the GIL; what is measured is the client
plus a real SMTP conversation over loopback TCP. Messages are built before the
clock starts: rendering is not the transport's cost.

    .venv/bin/python -m pipeline.channels.smtp_bench [N]
"""

from __future__ import annotations

import email.policy
import multiprocessing as mp
import random
import socket
import sys
import time
from queue import Empty
from email.message import EmailMessage

from pipeline.channels.smtp import SmtpSender


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


def bench_smtp(n: int = 1000) -> dict:
    messages = build_messages(n)
    ctx = mp.get_context("spawn")  # no fork of a possibly threaded parent
    port_queue, result_queue, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(port_queue, stop, result_queue), daemon=True)
    server.start()
    try:
        port = _get(port_queue, server)
        start = time.perf_counter()
        with SmtpSender("127.0.0.1", port, security="none") as sender:
            for i, raw in enumerate(messages):
                sender.send(raw, "mahnwesen@billing.test", [f"kunde{i}@example.test"])
        seconds = time.perf_counter() - start
        stop.set()
        received = _get(result_queue, server)
    finally:
        stop.set()
        server.join(timeout=10)
        if server.is_alive():
            server.terminate()
    return {
        "messages": n,
        "bytes_per_message": sum(map(len, messages)) // n,
        "seconds": round(seconds, 3),
        "messages_per_second": round(n / seconds, 1),
        "server_received": received,
    }


if __name__ == "__main__":
    print(bench_smtp(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
