"""SmtpEmailSender against a real SMTP server (aiosmtpd on 127.0.0.1): plain, STARTTLS and
implicit TLS, AUTH PLAIN and LOGIN, DKIM, refusals mapped to transient or permanent errors,
a dropped connection reopened."""

from __future__ import annotations

import base64
import socket
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage as MimeMessage
from pathlib import Path

import dkim
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from leadflow.adapters.email.capture import CaptureEmailSender
from leadflow.adapters.email.capture_server import CaptureServer, free_port
from leadflow.adapters.email.mime import DkimSigner
from leadflow.adapters.email.smtp import SmtpEmailSender
from leadflow.domain.errors import PermanentDeliveryError, TransientDeliveryError
from leadflow.ports import EmailMessage
from leadflow.services.email import DkimSettings, EmailSettings

SENT_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MESSAGE = EmailMessage(
    key="run:5:welcome:1",
    to="ann@example.com",
    from_addr="Acme News <news@acme.test>",
    subject="Grüße, Ann",
    text="Hallo Ann, schön dich zu sehen.\n.leading dot line\n",
    html="<p>Hallo <b>Ann</b>, schön dich zu sehen.</p>",
    headers={
        "List-Unsubscribe": "<https://t.acme.test/u/TOKEN>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    },
)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost, made for this test run."""
    folder = tmp_path_factory.mktemp("tls")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture(scope="module")
def client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """Trusts the test certificate only (and checks it is for localhost)."""
    context = ssl.create_default_context(cafile=str(certificate[0]))
    context.check_hostname = False  # the server is reached as 127.0.0.1
    return context


@pytest.fixture
def plain_server() -> Iterator[CaptureServer]:
    with CaptureServer() as server:
        yield server


def settings(server: CaptureServer, **changes: object) -> EmailSettings:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port,
        "from_address": "news@acme.test",
        "timeout": 5,
    }
    values.update(changes)
    return EmailSettings.model_validate(values)


def sender(config: EmailSettings, password: str = "", **kwargs: object) -> SmtpEmailSender:
    return SmtpEmailSender(config, password, now=lambda: SENT_AT, **kwargs)  # type: ignore[arg-type]


def only(server: CaptureServer) -> MimeMessage:
    [received] = server.received
    return received.message


def test_a_message_arrives_with_both_parts_and_its_headers(plain_server: CaptureServer) -> None:
    with sender(settings(plain_server)) as smtp:
        receipt = smtp.send(MESSAGE)
    [received] = plain_server.received
    got = received.message
    assert received.mail_from == "news@acme.test" and received.rcpt_tos == ["ann@example.com"]
    assert got["From"] == "Acme News <news@acme.test>"
    assert got["To"] == "ann@example.com"
    assert got["Subject"] == "Grüße, Ann"
    assert got["Date"] == "Mon, 02 Mar 2026 09:00:00 +0000"
    assert got["Message-ID"] == "<run=3A5=3Awelcome=3A1@acme.test>"
    assert got["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert got.get_content_type() == "multipart/alternative"
    text = got.get_body(("plain",))
    html = got.get_body(("html",))
    assert text is not None and html is not None
    # the line starting with a dot arrives intact (dot-stuffing undone by the server)
    assert text.get_content().replace("\r\n", "\n") == MESSAGE.text
    assert html.get_content().strip() == MESSAGE.html
    assert text.get_content_charset() == "utf-8"
    assert receipt.provider_id == "<run=3A5=3Awelcome=3A1@acme.test>"
    assert receipt.detail.startswith("250")


def test_the_same_delivery_keeps_its_message_id(plain_server: CaptureServer) -> None:
    with sender(settings(plain_server)) as smtp:
        first, again = smtp.send(MESSAGE), smtp.send(MESSAGE)
    assert first.provider_id == again.provider_id
    ids = {r.message["Message-ID"] for r in plain_server.received}
    assert ids == {"<run=3A5=3Awelcome=3A1@acme.test>"}


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_starttls_with_auth(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext, mechanism: str
) -> None:
    hidden = ["LOGIN"] if mechanism == "PLAIN" else ["PLAIN"]
    with CaptureServer(tls=server_tls, users={"mailer": "s3cret"}, auth_exclude=hidden) as srv:
        config = settings(srv, security="starttls", username="mailer")
        with sender(config, "s3cret", ssl_context=client_tls) as smtp:
            smtp.send(MESSAGE)
        [received] = srv.received
    assert received.authenticated_as == "mailer"
    assert received.message["Subject"] == "Grüße, Ann"


def test_a_wrong_password_is_a_transient_error_naming_the_login(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    with CaptureServer(tls=server_tls, users={"mailer": "s3cret"}) as srv:
        config = settings(srv, security="starttls", username="mailer")
        with (
            sender(config, "wrong", ssl_context=client_tls) as smtp,
            pytest.raises(TransientDeliveryError, match="refused the login of 'mailer'"),
        ):
            smtp.send(MESSAGE)
        assert srv.received == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_implicit_tls(server_tls: ssl.SSLContext, client_tls: ssl.SSLContext) -> None:
    with CaptureServer(implicit_tls=server_tls, users={"mailer": "pw"}) as srv:
        config = settings(srv, security="ssl", username="mailer")
        with sender(config, "pw", ssl_context=client_tls) as smtp:
            smtp.send(MESSAGE)
        assert only(srv)["To"] == "ann@example.com"


def test_an_untrusted_certificate_is_refused(server_tls: ssl.SSLContext) -> None:
    with CaptureServer(implicit_tls=server_tls) as srv:
        config = settings(srv, security="ssl")
        with sender(config) as smtp, pytest.raises(TransientDeliveryError, match="certificate"):
            smtp.send(MESSAGE)  # the default context trusts public CAs only


def test_starttls_missing_on_the_server_is_refused(plain_server: CaptureServer) -> None:
    config = settings(plain_server, security="starttls")
    with sender(config) as smtp, pytest.raises(TransientDeliveryError, match="STARTTLS"):
        smtp.send(MESSAGE)
    assert plain_server.received == []


@pytest.mark.parametrize(
    ("where", "reply", "error"),
    [
        ("rcpt", "550 5.1.1 <ann@example.com>: user unknown", PermanentDeliveryError),
        ("rcpt", "451 4.7.1 greylisted, try again later", TransientDeliveryError),
        ("data", "554 5.7.1 message rejected as spam", PermanentDeliveryError),
        ("data", "452 4.3.1 insufficient system storage", TransientDeliveryError),
    ],
)
def test_refusals_map_to_delivery_errors(
    plain_server: CaptureServer, where: str, reply: str, error: type[Exception]
) -> None:
    if where == "rcpt":
        plain_server.refuse_recipient("ann@example.com", reply)
    else:
        plain_server.refuse_data("ann@example.com", reply)
    other = EmailMessage(key="k2", to="bob@example.com", from_addr="news@acme.test",
                         subject="s", text="t")  # fmt: skip
    with sender(settings(plain_server)) as smtp:
        with pytest.raises(error) as caught:
            smtp.send(MESSAGE)
        assert reply.split(" ", 1)[1] in str(caught.value)
        smtp.send(other)  # the connection is still good for the next message
    assert [r.rcpt_tos for r in plain_server.received] == [["bob@example.com"]]


def test_a_server_that_is_down_is_transient() -> None:
    config = EmailSettings(host="127.0.0.1", port=free_port(), timeout=2)
    with sender(config) as smtp, pytest.raises(TransientDeliveryError, match="cannot connect"):
        smtp.send(MESSAGE)


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        config = EmailSettings(host="127.0.0.1", port=silent.getsockname()[1], timeout=0.5)
        started = time.monotonic()
        with sender(config) as smtp, pytest.raises(TransientDeliveryError, match="timed out"):
            smtp.send(MESSAGE)
        assert time.monotonic() - started < 5


def test_a_connection_closed_by_the_server_is_reopened() -> None:
    with CaptureServer(idle_timeout=0.5) as srv, sender(settings(srv)) as smtp:
        smtp.send(MESSAGE)
        time.sleep(1.2)  # the server drops the idle session
        smtp.send(MESSAGE)
        assert len(srv.received) == 2


def test_dkim_signature_verifies(plain_server: CaptureServer, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    signer = DkimSigner.from_settings(DkimSettings(selector="s1", domain="acme.test",
                                                   key_file=key_file))  # fmt: skip
    with sender(settings(plain_server), signer=signer) as smtp:
        smtp.send(MESSAGE)
    [received] = plain_server.received

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"s1._domainkey.acme.test."
        return record

    assert dkim.verify(received.raw, dnsfunc=dns)
    signature = received.message["DKIM-Signature"]
    signed = signature.split("h=", 1)[1].split(";", 1)[0].replace(" ", "").lower().split(":")
    for header in ("from", "to", "subject", "date", "message-id", "list-unsubscribe",
                   "list-unsubscribe-post"):  # fmt: skip
        assert header in signed
    tampered = received.raw.replace(b"Subject: ", b"Subject: Re: ", 1)
    assert not dkim.verify(tampered, dnsfunc=dns)


def test_the_capture_transport_files_eml_messages(tmp_path: Path) -> None:
    capture = CaptureEmailSender(tmp_path / "outbox", "acme.test", now=lambda: SENT_AT)
    receipt = capture.send(MESSAGE)
    files = list((tmp_path / "outbox").glob("*.eml"))
    assert [f.name for f in files] == ["run_5_welcome_1.eml"]
    assert receipt.provider_id == "<run=3A5=3Awelcome=3A1@acme.test>"
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in files[0].read_bytes()


def test_a_header_with_a_line_break_is_refused(plain_server: CaptureServer) -> None:
    injected = EmailMessage(
        key="k3",
        to="ann@example.com",
        from_addr="news@acme.test",
        subject="hi",
        text="t",
        headers={"Reply-To": "a@b.test\r\nBcc: x@y"},
    )
    with (
        sender(settings(plain_server)) as smtp,
        pytest.raises(PermanentDeliveryError, match="Reply-To"),
    ):
        smtp.send(injected)
    assert plain_server.received == []
