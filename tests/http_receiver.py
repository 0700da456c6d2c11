"""A real HTTP receiver for tests: verifies signatures, de-duplicates, misbehaves on request.

    with WebhookReceiver("whsec_...") as rx:
        SignedHttpSender(rx.url, secret).post("msg-1", {...})
        SignedHttpSender(rx.url_for("/sms"), secret).post("sms-1", {...})
        assert [d["id"] for d in rx.deliveries] == ["msg-1", "sms-1"]

It behaves like a well-made receiver should: a repeated webhook-id on the same
path is answered 200 again but not acted on twice. That is the half of
exactly-once that lives on the other side, and the tests rely on it.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pipeline.delivery.channels.http import verify


class WebhookReceiver:
    def __init__(self, secret: str, path: str = "/webhook", *, tolerance_seconds: int = 300) -> None:
        self.secret, self.path, self.tolerance_seconds = secret, path, tolerance_seconds
        self.deliveries: list[dict[str, Any]] = []  # first arrival of each (path, webhook-id)
        self.requests: list[dict[str, Any]] = []  # everything, duplicates and rejections included
        self._seen: dict[tuple[str, str], str] = {}  # (path, webhook-id) -> our id for it
        self._fail: list[tuple[int, float | None]] = []  # queued (status, retry_after)
        self._delay: list[float | threading.Event] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- misbehaviour -------------------------------------------------------------
    def fail_next(self, n: int, status: int = 503, *, retry_after: float | None = None) -> None:
        """The next n requests are answered with `status` (and Retry-After if given)."""
        with self._lock:
            self._fail.extend([(status, retry_after)] * n)

    def delay_next(self, n: int, seconds: float) -> None:
        """The next n requests are processed, then answered only after `seconds`.

        Processing first is the interesting case: the client times out although
        the message arrived, and its retry must be recognised as a duplicate.
        """
        with self._lock:
            self._delay.extend([seconds] * n)

    def hold_next(self) -> threading.Event:
        """The next request is processed, then answered only once the returned event is set (or after
        30 s): a sender held in the middle of its hand-over for as long as a test needs."""
        event = threading.Event()
        with self._lock:
            self._delay.append(event)
        return event

    # -- lifecycle ----------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._server is not None, "receiver not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        return self.base_url + self.path

    def url_for(self, path: str) -> str:
        return self.base_url + path

    def __enter__(self) -> WebhookReceiver:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True  # a handler still sleeping must not block shutdown
        # A short poll interval: shutdown() waits for it, and tests start many receivers.
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    # -- the request ----------------------------------------------------------------
    def _handle(self, path: str, headers: dict[str, str], body: bytes, peer: Any) -> tuple[int, dict, dict, float]:
        """Decide the answer: (status, extra headers, JSON body, delay before answering)."""
        with self._lock:
            record = {"path": path, "id": headers.get("webhook-id"), "headers": headers, "body": body, "peer": peer}
            self.requests.append(record)
            delay = self._delay.pop(0) if self._delay else 0.0
            if self._fail:
                status, retry_after = self._fail.pop(0)
                extra = {} if retry_after is None else {"Retry-After": str(retry_after)}
                record["status"] = status
                return status, extra, {"error": "told to fail"}, delay
            if not verify(self.secret, headers, body, tolerance_seconds=self.tolerance_seconds):
                record["status"] = 401
                return 401, {}, {"error": "bad signature"}, delay
            try:
                payload = json.loads(body)
            except ValueError:
                record["status"] = 400
                return 400, {}, {"error": "body is not JSON"}, delay
            key = (path, record["id"])
            if key not in self._seen:
                self._seen[key] = f"rx-{len(self.deliveries) + 1}"
                self.deliveries.append(
                    {"id": record["id"], "path": path, "payload": payload, "headers": headers}
                )
            record["status"] = 200
            return 200, {}, {"id": self._seen[key]}, delay


def _handler_for(rx: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so the sender's connection reuse is real
        # The answer's headers and body leave in two writes: with Nagle's algorithm the body waited for
        # the sender's delayed ACK, about 10 ms a request on a kept-alive connection (a test sending
        # 500 webhooks waited 10 s). Receivers in production answer without that wait.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, answer, delay = rx._handle(self.path, headers, body, self.client_address)
            if isinstance(delay, threading.Event):
                delay.wait(30)
            elif delay:
                time.sleep(delay)
            data = json.dumps(answer).encode()
            try:
                self.send_response(status)
                for name, value in {**extra, "Content-Type": "application/json"}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    return Handler
