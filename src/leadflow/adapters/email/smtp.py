"""SmtpEmailSender: hands messages to an SMTP server (plain, STARTTLS or implicit SSL, with
optional AUTH), over one connection kept open between messages and reopened when dropped.

Answers map to the delivery errors: a 4xx reply, a timeout or a lost connection is
TransientDeliveryError (try again later); a 5xx refusal of the sender, the recipient or the
message is PermanentDeliveryError.
"""

from __future__ import annotations

import smtplib
import ssl
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from leadflow.adapters.email.mime import DkimSigner, build_mime, render_bytes
from leadflow.domain.errors import (
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from leadflow.ports import EmailMessage, SendReceipt
from leadflow.services.email import EmailSettings

_Now = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _reply(code: int, text: bytes | str) -> str:
    said = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(said.split())}".strip()


def refusal(code: int, text: bytes | str, what: str) -> DeliveryError:
    """The delivery error for an SMTP reply code: 5xx permanent, anything else transient."""
    message = f"{what}: {_reply(code, text)}"
    if 500 <= code < 600:
        return PermanentDeliveryError(message)
    return TransientDeliveryError(message)


class SmtpEmailSender:
    """An EmailSender over SMTP; safe to share between threads (one send at a time)."""

    def __init__(
        self,
        settings: EmailSettings,
        password: str = "",
        *,
        signer: DkimSigner | None = None,
        ssl_context: ssl.SSLContext | None = None,
        now: _Now = _utc_now,
    ) -> None:
        self.settings = settings
        self.password = password
        self.signer = signer
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.now = now
        self._conn: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    # connection ------------------------------------------------------------------------
    def _open(self) -> smtplib.SMTP:
        s = self.settings
        where = f"{s.host}:{s.smtp_port}"
        try:
            conn: smtplib.SMTP
            if s.security == "ssl":
                conn = smtplib.SMTP_SSL(
                    s.host, s.smtp_port, timeout=s.timeout, context=self.ssl_context
                )
            else:
                conn = smtplib.SMTP(s.host, s.smtp_port, timeout=s.timeout)
            conn.ehlo()
            if s.security == "starttls":
                conn.starttls(context=self.ssl_context)
                conn.ehlo()
            if s.username:
                conn.login(s.username, self.password)
        except smtplib.SMTPAuthenticationError as exc:
            raise TransientDeliveryError(
                f"SMTP server {where} refused the login of {s.username!r}: "
                f"{_reply(exc.smtp_code, exc.smtp_error)}"
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise TransientDeliveryError(f"SMTP server {where}: {exc}") from None
        except smtplib.SMTPResponseException as exc:
            raise TransientDeliveryError(
                f"SMTP server {where}: {_reply(exc.smtp_code, exc.smtp_error)}"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientDeliveryError(f"cannot connect to SMTP server {where}: {exc}") from None
        return conn

    def close(self) -> None:
        with self._lock:
            self._drop(polite=True)

    def _drop(self, polite: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if polite:
                conn.quit()
            else:
                conn.close()
        except (OSError, smtplib.SMTPException):
            conn.close()

    def __enter__(self) -> SmtpEmailSender:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # sending ---------------------------------------------------------------------------
    def send(self, message: EmailMessage) -> SendReceipt:
        """Hand the message over; the receipt holds the Message-ID and the server's answer."""
        mime, message_id = build_mime(message, self.settings.id_domain, self.now())
        raw = render_bytes(mime, self.signer)
        with self._lock:
            for attempt in (1, 2):
                fresh = self._conn is None
                if fresh:
                    self._conn = self._open()
                assert self._conn is not None
                try:
                    answer = self._transaction(self._conn, message, raw)
                except smtplib.SMTPServerDisconnected as exc:
                    self._drop()
                    if fresh or attempt == 2:  # a new connection dropped: not a stale one
                        raise TransientDeliveryError(f"SMTP server disconnected: {exc}") from None
                    continue
                except (OSError, smtplib.SMTPException) as exc:
                    self._drop()
                    raise TransientDeliveryError(f"SMTP error: {exc}") from None
                return SendReceipt(provider_id=message_id, detail=answer)
        raise AssertionError("unreachable")

    def _transaction(self, conn: smtplib.SMTP, message: EmailMessage, raw: bytes) -> str:
        sender = self.settings.from_address
        code, text = conn.mail(sender)
        if code == 421:  # the server closed the idle session: a new one may succeed
            self._drop()
            raise smtplib.SMTPServerDisconnected(_reply(code, text))
        if code != 250:
            self._reset(conn, code)
            raise refusal(code, text, f"sender {sender} refused")
        code, text = conn.rcpt(message.to)
        if code not in (250, 251):
            self._reset(conn, code)
            raise refusal(code, text, f"recipient {message.to} refused")
        try:
            code, text = conn.data(raw)
        except smtplib.SMTPDataError as exc:
            self._reset(conn, exc.smtp_code)
            raise refusal(exc.smtp_code, exc.smtp_error, "DATA refused") from None
        if code != 250:
            raise refusal(code, text, "message refused")
        return _reply(code, text)

    def _reset(self, conn: smtplib.SMTP, code: int) -> None:
        """After a refusal the connection stays usable once reset; a 421 closes it."""
        if code == 421:
            self._drop()
            return
        try:
            conn.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()
