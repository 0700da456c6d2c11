"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, in a background thread.

    with SmtpServer(starttls=True, auth=("user", "secret")) as srv:
        sender = SmtpSender(srv.host, srv.port, ssl_context=srv.client_ssl_context(), ...)
        ...
        srv.messages[0]["message"]  # parsed EmailMessage

Faults on demand: reject_next() answers the next DATA with an error code,
drop_after_data_next() records the message and hangs up without answering (an
ambiguous delivery), stall_after_data_next() records it and never answers (a
timeout after DATA), disconnect_all() closes idle connections like a server's
idle timeout. Recipients at REFUSED_DOMAINS are refused at RCPT TO.
`connections` counts the connections clients opened.
"""

from __future__ import annotations

import asyncio
import email.policy
import socket
import ssl
import threading
from email.parser import BytesParser

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

_PARSER = BytesParser(policy=email.policy.default)
_CA: trustme.CA | None = None
_CERT: trustme.LeafCert | None = None


def _ca() -> tuple[trustme.CA, trustme.LeafCert]:
    """One test CA and server certificate per process (key generation is not free)."""
    global _CA, _CERT
    if _CA is None:
        _CA = trustme.CA()
        _CERT = _CA.issue_cert("127.0.0.1", "localhost")
    return _CA, _CERT


# Recipients at these domains are refused at RCPT TO with this reply.
REFUSED_DOMAINS = {
    "refused.test": "550 5.1.1 No such user",
    "greylist.test": "450 4.7.1 Greylisted, try again later",
}


def free_port() -> int:
    """A port nothing listens on right now (Controller does not accept port=0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Controller(Controller):
    """Keeps every per-connection SMTP instance, to count and close connections."""

    def __init__(self, owner: SmtpServer, *args, **kwargs):
        self._owner = owner
        super().__init__(*args, **kwargs)

    def factory(self) -> SMTP:
        smtpd = super().factory()
        if self._owner._plain_auth_ok:
            # Set after construction: passing auth_require_tls=False warns on every connection.
            smtpd._auth_require_tls = False
        self._owner._smtpds.append(smtpd)
        return smtpd


class _Handler:
    def __init__(self, owner: SmtpServer):
        self._owner = owner

    async def handle_RCPT(self, smtpd: SMTP, session, envelope, address: str, options) -> str:
        domain = address.rpartition("@")[2].lower()
        if domain in REFUSED_DOMAINS:
            return REFUSED_DOMAINS[domain]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtpd: SMTP, session, envelope) -> str:
        status, fault = self._owner._record(session, envelope)
        if fault == "drop":
            smtpd.transport.close()
        if fault:
            await asyncio.Event().wait()  # cancelled by connection_lost; never answers
        return status


class SmtpServer:
    def __init__(
        self,
        *,
        starttls: bool = False,
        implicit_tls: bool = False,
        auth: tuple[str, str] | None = None,
    ) -> None:
        if starttls and implicit_tls:
            raise ValueError("starttls and implicit_tls are exclusive")
        self.host = "127.0.0.1"
        self.port = free_port()
        self.messages: list[dict] = []
        self._auth = auth
        self._lock = threading.Lock()
        self._smtpds: list[SMTP] = []
        self._rejects: list[str] = []
        self._faults: list[str] = []
        kwargs: dict = dict(server_hostname="smtp.test", ready_timeout=10.0)
        if starttls or implicit_tls:
            server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            _ca()[1].configure_cert(server_ctx)
            if starttls:
                kwargs.update(tls_context=server_ctx, require_starttls=True)
            else:
                kwargs.update(ssl_context=server_ctx)
        if auth is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True)
        # With implicit TLS aiosmtpd does not know the socket is encrypted, so
        # "AUTH only after STARTTLS" must be off; plaintext AUTH is there for
        # loopback tests of security="none".
        self._plain_auth_ok = not starttls
        self._controller = _Controller(self, _Handler(self), hostname=self.host, port=self.port, **kwargs)

    # -- lifecycle ----------------------------------------------------------

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        self._smtpds.clear()  # start() opened one connection to check the server is up
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._controller.stop()

    def client_ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        _ca()[0].configure_trust(ctx)
        return ctx

    # -- observations and faults ---------------------------------------------

    @property
    def connections(self) -> int:
        return len(self._smtpds)

    def reject_next(self, n: int = 1, code: int = 451, text: str = "4.3.0 Try again later") -> None:
        with self._lock:
            self._rejects += [f"{code} {text}"] * n

    def drop_after_data_next(self, n: int = 1) -> None:
        with self._lock:
            self._faults += ["drop"] * n

    def stall_after_data_next(self, n: int = 1) -> None:
        with self._lock:
            self._faults += ["stall"] * n

    def disconnect_all(self) -> None:
        """Close every open connection now, as a server's idle timeout would."""

        async def close_all() -> None:
            for smtpd in self._smtpds:
                if smtpd.transport is not None:
                    smtpd.transport.close()
            await asyncio.sleep(0.01)  # let the closes reach the sockets

        asyncio.run_coroutine_threadsafe(close_all(), self._controller.loop).result(5)

    # -- called from the server thread -----------------------------------------

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and (auth_data.login.decode(), auth_data.password.decode()) == self._auth
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def _record(self, session, envelope) -> tuple[str, str | None]:
        """Record a message unless it is rejected; return the reply and any fault."""
        with self._lock:
            if self._rejects:
                return self._rejects.pop(0), None
            data = envelope.content
            self.messages.append(
                dict(
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    mail_options=list(envelope.mail_options),
                    data=data,
                    message=_PARSER.parsebytes(data),
                    tls=session.ssl is not None or self._controller.ssl_context is not None,
                    helo=session.host_name,
                    login=session.auth_data.login.decode() if session.auth_data else None,
                )
            )
            fault = self._faults.pop(0) if self._faults else None
            return f"250 2.0.0 Ok: queued as {len(self.messages)}", fault
