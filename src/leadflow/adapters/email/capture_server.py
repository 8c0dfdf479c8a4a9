"""A small SMTP server that keeps what it receives: aiosmtpd in a thread, on 127.0.0.1 and a
free port. The demo points leadflow's SMTP transport at it; the tests use it as the real
server it is, with STARTTLS, implicit TLS, AUTH and scripted refusals.
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage as MimeMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True, slots=True)
class Received:
    """One message as the server got it."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: MimeMessage
    authenticated_as: str | None


@dataclass
class _Handler:
    """Keeps messages; answers RCPT/DATA with scripted replies for chosen recipients."""

    received: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        reply = self.rcpt_replies.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        for rcpt in envelope.rcpt_tos:
            reply = self.data_replies.get(rcpt.lower())
            if reply is not None:
                return reply
        content = envelope.content or b""
        raw = content.encode() if isinstance(content, str) else bytes(content)
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, MimeMessage)
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        with self.lock:
            self.received.append(
                Received(
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=list(envelope.rcpt_tos),
                    raw=raw,
                    message=parsed,
                    authenticated_as=login.decode() if isinstance(login, bytes) else None,
                )
            )
        return "250 2.0.0 Ok: queued"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class CaptureServer:
    """An SMTP server on 127.0.0.1 that keeps messages in ``received``.

    ``tls`` enables STARTTLS with that context, ``implicit_tls`` serves TLS from the first
    byte (port 465 style); ``users`` ({name: password}) turns on AUTH LOGIN/PLAIN, required
    (``auth_exclude`` hides mechanisms); ``idle_timeout`` closes idle sessions.
    """

    def __init__(
        self,
        *,
        tls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        users: dict[str, str] | None = None,
        auth_exclude: list[str] | None = None,
        idle_timeout: float = 300,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.handler = _Handler()
        self.host = host
        self.port = port or free_port(host)
        self.users = dict(users or {})
        kwargs: dict[str, Any] = {"timeout": idle_timeout}
        if tls is not None:
            kwargs["tls_context"] = tls
        if self.users:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=tls is not None,  # implicit TLS protects the whole session
                auth_exclude_mechanism=auth_exclude or [],
            )
        self._controller = Controller(
            self.handler,
            hostname=host,
            port=self.port,
            ssl_context=implicit_tls,
            server_hostname="localhost",
            **kwargs,
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            expected = self.users.get(data.login.decode())
            if expected is not None and expected.encode() == data.password:
                return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False)

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def refuse_recipient(self, address: str, reply: str) -> None:
        """Answer RCPT TO for ``address`` with ``reply`` (like '550 5.1.1 no such user')."""
        self.handler.rcpt_replies[address.lower()] = reply

    def refuse_data(self, address: str, reply: str) -> None:
        """Answer the end of DATA with ``reply`` when ``address`` is a recipient."""
        self.handler.data_replies[address.lower()] = reply

    def start(self) -> CaptureServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> CaptureServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
