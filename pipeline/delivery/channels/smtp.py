"""SMTP transport: one kept-open connection, and failures classified by phase.

A message goes through SMTP in phases: connect (greeting, EHLO, STARTTLS,
AUTH), MAIL FROM, RCPT TO, DATA (the server's 354), the body up to the final
"<CRLF>.<CRLF>", and the server's final reply. Until the final dot has been
written the server cannot have accepted the message, so any failure before it
(refused connection, timeout, dropped connection, a 4xx reply) is a
TransientError and resending later is safe; a 5xx reply is a PermanentError.

After the final dot has gone out, the server may already have queued the
message and only its "250 queued as ..." may have been lost. Resending would
risk a second dunning notice to the customer, dropping would risk none at
all, so a lost connection or timeout in that window is AmbiguousDelivery and
the action goes to review. That is why this module drives MAIL/RCPT/DATA
itself instead of calling smtplib's sendmail(): sendmail() (and even data())
raises the same SMTPServerDisconnected before and after the body was sent.

One connection is opened lazily and reused for every message (reconnecting
per message caps throughput at a few dozen messages a second once TLS and
AUTH are involved). A connection the server has closed while idle shows up on
the next RSET or MAIL FROM, before anything was handed over, so it is
reopened once, transparently. Not thread-safe: one sender per thread.

Failures while setting up the connection (including a refused AUTH or a
server without STARTTLS) are TransientError even when the reply is 5xx: they
say nothing about the message, and a configuration fix should let the queued
actions go out instead of marking them all as permanently failed.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import smtplib
import ssl
from typing import Literal

from pipeline.delivery.channels.base import (
    AmbiguousDelivery,
    PermanentError,
    SendResult,
    TransientError,
)

log = logging.getLogger(__name__)

Security = Literal["none", "starttls", "tls"]

# What we say in EHLO: stable across machines (the default would be the
# machine's FQDN, which leaks into Received: headers and varies per host).
DEFAULT_LOCAL_HOSTNAME = "dunning.localhost"

_LEADING_DOT = re.compile(rb"(?m)^\.")


def _is_loopback(host: str) -> bool:
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    return reply.strip()


class _Dropped(Exception):
    """The reused connection turned out to be closed before MAIL FROM went through."""


class SmtpSender:
    """Sends serialised messages over one SMTP connection, opened on first use."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: Security = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout_seconds: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if security not in ("none", "starttls", "tls"):
            raise ValueError(f"security must be none, starttls or tls, not {security!r}")
        if (username is None) != (password is None):
            raise ValueError("username and password go together")
        if security == "none" and username is not None and not _is_loopback(host):
            raise ValueError(
                f"refusing to send SMTP credentials over plaintext to {host}:{port}; "
                "use security='starttls' or 'tls'"
            )
        self.host, self.port, self.security = host, port, security
        self._username, self._password = username, password
        self._timeout = timeout_seconds
        self._ssl_context = ssl_context
        self._local_hostname = local_hostname or DEFAULT_LOCAL_HOSTNAME
        self._conn: smtplib.SMTP | None = None
        self._needs_rset = False  # the last transaction ended early

    @property
    def _where(self) -> str:
        return f"SMTP {self.host}:{self.port}"

    # -- connection ---------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def _connect(self) -> smtplib.SMTP:
        # Host and port go to the constructor (which connects): smtplib takes the
        # name it checks the server certificate against from there.
        kwargs = dict(local_hostname=self._local_hostname, timeout=self._timeout)
        conn: smtplib.SMTP | None = None
        try:
            if self.security == "tls":
                conn = smtplib.SMTP_SSL(self.host, self.port, context=self._tls_context(), **kwargs)
            else:
                conn = smtplib.SMTP(self.host, self.port, **kwargs)
            conn.ehlo()
            if self.security == "starttls":
                conn.starttls(context=self._tls_context())  # raises if not offered
                conn.ehlo()
            if self._username is not None:
                conn.login(self._username, self._password)
        except smtplib.SMTPResponseException as exc:
            if conn is not None:
                conn.close()
            raise TransientError(
                f"{self._where}: connection setup answered {exc.smtp_code} {_text(exc.smtp_error)}"
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            if conn is not None:
                conn.close()
            raise TransientError(f"{self._where}: cannot connect: {exc}") from exc
        self._needs_rset = False
        return conn

    def _discard(self) -> None:
        """Forget a connection that is broken or in an unknown state (no QUIT)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        """Say QUIT and close; the next send() opens a new connection."""
        if self._conn is not None:
            try:
                self._conn.quit()
            except (smtplib.SMTPException, OSError):
                pass
            finally:
                self._discard()

    def __enter__(self) -> SmtpSender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- sending ------------------------------------------------------------

    def _begin(self, conn: smtplib.SMTP, from_addr: str, options: list[str]) -> tuple[int, bytes]:
        """RSET if needed, then MAIL FROM; _Dropped if the connection is gone."""
        try:
            if self._needs_rset:
                code, reply = conn.rset()
                if code == 421:
                    raise _Dropped(f"RSET answered 421 {_text(reply)}")
                self._needs_rset = False
            code, reply = conn.mail(from_addr, options)
        except smtplib.SMTPServerDisconnected as exc:
            raise _Dropped(str(exc)) from exc
        if code == 421:  # "closing transmission channel", e.g. an idle timeout
            raise _Dropped(f"MAIL FROM answered 421 {_text(reply)}")
        return code, reply

    def _fail(self, step: str, code: int, reply: bytes) -> None:
        self._needs_rset = True
        if code == 421:
            self._discard()
        cls = TransientError if 400 <= code < 500 else PermanentError
        raise cls(f"{self._where}: {step} answered {code} {_text(reply)}")

    def send(self, message: bytes, from_addr: str, to_addrs: list[str]) -> SendResult:
        """Send serialised message bytes (CRLF line ends, e.g. email.policy.SMTP)."""
        if not to_addrs:
            raise PermanentError(f"{self._where}: no recipients")
        if any("\r" in a or "\n" in a for a in [from_addr, *to_addrs]):
            raise PermanentError(f"{self._where}: line break in an address")
        options = []
        if not (from_addr.isascii() and all(a.isascii() for a in to_addrs)):
            options.append("SMTPUTF8")
        if not message.isascii():
            options.append("BODY=8BITMIME")  # only if offered, see below

        # Open (or reuse) the connection and get MAIL FROM through. Nothing has
        # been handed over yet, so a reused connection found closed is reopened once.
        reopened = False
        while True:
            fresh = self._conn is None
            if fresh:
                self._conn = self._connect()
            conn = self._conn
            offered = [o for o in options if o != "BODY=8BITMIME" or conn.has_extn("8bitmime")]
            try:
                code, reply = self._begin(conn, from_addr, offered)
                break
            except _Dropped as exc:
                self._discard()
                if fresh or reopened:
                    raise TransientError(f"{self._where}: connection closed before MAIL FROM: {exc}") from None
                log.info("%s: idle connection was closed by the server; reconnecting", self._where)
                reopened = True
            except smtplib.SMTPNotSupportedError as exc:  # SMTPUTF8 needed, not offered
                raise PermanentError(f"{self._where}: {exc}") from exc

        phase = "MAIL FROM"
        try:
            if code != 250:
                self._fail("MAIL FROM", code, reply)
            phase = "RCPT TO"
            refused: dict[str, tuple[int, str]] = {}
            for rcpt in to_addrs:
                code, reply = conn.rcpt(rcpt)
                if code not in (250, 251):
                    refused[rcpt] = (code, _text(reply))
                    if code == 421:
                        self._fail(f"RCPT TO {rcpt}", code, reply)
            if len(refused) == len(to_addrs):
                # Retry only if every refusal was temporary (e.g. greylisting).
                worst = max(refused.values())
                self._needs_rset = True
                cls = PermanentError if worst[0] >= 500 else TransientError
                detail = "; ".join(f"{a}: {c} {t}" for a, (c, t) in refused.items())
                raise cls(f"{self._where}: all recipients refused: {detail}")
            if refused:
                log.warning("%s: some recipients refused, sending to the rest: %s", self._where, refused)
            phase = "DATA"
            conn.putcmd("data")
            code, reply = conn.getreply()
            if code != 354:
                self._fail("DATA", code, reply)
            phase = "message body"
            body = _LEADING_DOT.sub(b"..", message)  # dot-stuffing, RFC 5321 4.5.2
            if not body.endswith(b"\r\n"):
                body += b"\r\n"
            conn.send(body + b".\r\n")  # until this returns, the server cannot have accepted it
            phase = "final reply"
            code, reply = conn.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            self._discard()
            if phase == "final reply":
                raise AmbiguousDelivery(
                    f"{self._where}: message body sent, but no final reply ({exc}); "
                    "it may or may not have been queued"
                ) from exc
            raise TransientError(f"{self._where}: connection lost during {phase}: {exc}") from exc
        if not 200 <= code < 300:
            if code < 400:  # not a valid answer to the final dot: we cannot tell
                self._discard()
                raise AmbiguousDelivery(f"{self._where}: final reply {code} {_text(reply)}")
            self._fail("end of DATA", code, reply)
        return SendResult(provider_message_id=_text(reply) or None)
