"""SmtpSender against a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage

import pytest

from pipeline.delivery.channels.base import AmbiguousDelivery, PermanentError, TransientError
from pipeline.delivery.channels.smtp import SmtpSender
from tests.smtp_server import SmtpServer, free_port

FROM, TO = "mahnwesen@billing.test", "kunde@example.test"
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n.\r\n..\n%%EOF\n"  # binary, dots at line starts


def message(n: int = 1) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = FROM, TO, f"Zahlungserinnerung {n}"
    # Lines starting with "." must survive dot-stuffing; umlauts force 8bit/QP.
    msg.set_content(f"Sehr geehrte Damen und Herren,\n.\n..nicht vergessen\nRechnung {n} ist fällig.\n")
    msg.add_alternative(f"<p>Rechnung {n} ist f&auml;llig.</p>", subtype="html")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename=f"mahnung-{n}.pdf")
    return msg.as_bytes(policy=email.policy.SMTP)


def plain_sender(srv: SmtpServer, **kwargs) -> SmtpSender:
    return SmtpSender(srv.host, srv.port, security="none", **kwargs)


def test_multipart_with_pdf_arrives_intact_and_provider_id_is_queued_as():
    raw = message(7)
    with SmtpServer() as srv, plain_sender(srv) as sender:
        result = sender.send(raw, FROM, [TO])
    assert result.provider_message_id == "2.0.0 Ok: queued as 1"
    [got] = srv.messages
    assert (got["mail_from"], got["rcpt_tos"], got["data"]) == (FROM, [TO], raw)
    assert got["mail_options"] == ["BODY=8BITMIME"]  # the text part is 8bit UTF-8
    parsed = got["message"]
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_filename() == "mahnung-7.pdf"
    assert attachment.get_content() == PDF
    text = parsed.get_body(("plain",)).get_content()  # keeps the wire's CRLFs
    assert text.splitlines() == ["Sehr geehrte Damen und Herren,", ".", "..nicht vergessen", "Rechnung 7 ist fällig."]


def test_fifty_messages_share_one_connection():
    with SmtpServer() as srv:
        with plain_sender(srv) as sender:
            ids = [sender.send(message(i), FROM, [TO]).provider_message_id for i in range(50)]
        assert ids == [f"2.0.0 Ok: queued as {i}" for i in range(1, 51)]
        assert srv.connections == 1
        assert [m["message"]["Subject"] for m in srv.messages] == [f"Zahlungserinnerung {i}" for i in range(50)]


def test_starttls_with_login():
    with SmtpServer(starttls=True, auth=("mahnung", "geheim")) as srv:
        with SmtpSender(
            srv.host, srv.port, username="mahnung", password="geheim", ssl_context=srv.client_ssl_context()
        ) as sender:
            sender.send(message(), FROM, [TO])
            sender.send(message(), FROM, [TO])
        assert [(m["tls"], m["login"]) for m in srv.messages] == [(True, "mahnung")] * 2
        assert srv.connections == 1


def test_wrong_password_is_transient_and_names_the_reply():
    with SmtpServer(starttls=True, auth=("mahnung", "geheim")) as srv:
        sender = SmtpSender(
            srv.host, srv.port, username="mahnung", password="falsch", ssl_context=srv.client_ssl_context()
        )
        with pytest.raises(TransientError, match=rf"127\.0\.0\.1:{srv.port}.* 535 "):
            sender.send(message(), FROM, [TO])
        assert srv.messages == []


def test_starttls_rejects_an_untrusted_certificate():
    with SmtpServer(starttls=True) as srv, SmtpSender(srv.host, srv.port) as sender:
        with pytest.raises(TransientError, match="CERTIFICATE_VERIFY_FAILED"):
            sender.send(message(), FROM, [TO])


def test_implicit_tls_with_login():
    with SmtpServer(implicit_tls=True, auth=("mahnung", "geheim")) as srv:
        with SmtpSender(
            srv.host,
            srv.port,
            security="tls",
            username="mahnung",
            password="geheim",
            ssl_context=srv.client_ssl_context(),
        ) as sender:
            assert sender.send(message(), FROM, [TO]).provider_message_id == "2.0.0 Ok: queued as 1"
        assert [(m["tls"], m["login"]) for m in srv.messages] == [(True, "mahnung")]


def test_plaintext_login_only_to_loopback():
    with pytest.raises(ValueError, match="plaintext"):
        SmtpSender("smtp.example.com", 587, security="none", username="u", password="p")
    with SmtpServer(auth=("u", "p")) as srv, plain_sender(srv, username="u", password="p") as sender:
        sender.send(message(), FROM, [TO])
        assert srv.messages[0]["login"] == "u"


def test_4xx_is_transient_5xx_is_permanent_and_the_connection_stays_usable():
    with SmtpServer() as srv, plain_sender(srv) as sender:
        srv.reject_next(1, code=451, text="4.3.0 Mailbox busy")
        with pytest.raises(TransientError, match=rf"127\.0\.0\.1:{srv.port}: end of DATA answered 451 4\.3\.0 Mailbox busy"):
            sender.send(message(), FROM, [TO])
        srv.reject_next(1, code=550, text="5.1.1 No such user")
        with pytest.raises(PermanentError, match="550 5.1.1 No such user"):
            sender.send(message(), FROM, [TO])
        assert sender.send(message(), FROM, [TO]).provider_message_id == "2.0.0 Ok: queued as 1"
        assert srv.connections == 1


def test_recipients_refused():
    with SmtpServer() as srv, plain_sender(srv) as sender:
        with pytest.raises(PermanentError, match="all recipients refused: a@refused.test: 550 5.1.1"):
            sender.send(message(), FROM, ["a@refused.test"])
        with pytest.raises(TransientError, match="all recipients refused: b@greylist.test: 450"):
            sender.send(message(), FROM, ["b@greylist.test"])
        # Some refused: the others still get it (as with smtplib's sendmail).
        sender.send(message(), FROM, ["a@refused.test", TO])
        assert [m["rcpt_tos"] for m in srv.messages] == [[TO]]
        assert srv.connections == 1


def test_connection_lost_after_data_is_ambiguous_and_the_server_has_it():
    with SmtpServer() as srv, plain_sender(srv) as sender:
        srv.drop_after_data_next()
        with pytest.raises(AmbiguousDelivery, match=rf"127\.0\.0\.1:{srv.port}"):
            sender.send(message(1), FROM, [TO])
        assert [m["message"]["Subject"] for m in srv.messages] == ["Zahlungserinnerung 1"]
        sender.send(message(2), FROM, [TO])  # a new connection for the next one
        assert srv.connections == 2


def test_timeout_after_data_is_ambiguous():
    with SmtpServer() as srv, plain_sender(srv, timeout_seconds=0.3) as sender:
        srv.stall_after_data_next()
        with pytest.raises(AmbiguousDelivery, match="timed out"):
            sender.send(message(), FROM, [TO])
        assert len(srv.messages) == 1


def test_server_down_is_transient():
    port = free_port()
    with SmtpSender("127.0.0.1", port, security="none") as sender:
        with pytest.raises(TransientError, match=rf"127\.0\.0\.1:{port}: cannot connect.*refused"):
            sender.send(message(), FROM, [TO])


def test_idle_connection_closed_by_server_is_reopened_transparently():
    with SmtpServer() as srv, plain_sender(srv) as sender:
        sender.send(message(1), FROM, [TO])
        srv.disconnect_all()
        assert sender.send(message(2), FROM, [TO]).provider_message_id == "2.0.0 Ok: queued as 2"
        assert srv.connections == 2
        assert len(srv.messages) == 2


def test_ehlo_name_is_deterministic():
    with SmtpServer() as srv, plain_sender(srv) as sender:
        sender.send(message(), FROM, [TO])
        assert srv.messages[0]["helo"] == "dunning.localhost"
