"""Where webhooks may go: public http(s) targets only, unless private targets are allowed."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from leadflow.adapters.webhooks.http import HttpWebhookSender
from leadflow.adapters.webhooks.ssrf import (
    Unresolved,
    check_configured_target,
    check_target,
    refusal,
)
from leadflow.services.webhooks import Endpoint


def resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, _port: int) -> list[str]:
        return table.get(host, [])

    return resolve


NOWHERE = resolver({})


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://127.9.9.9:8080/hook", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://10.1.2.3/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.1.10/", "private"),
        ("http://[fd00::1]/", "private"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://[64:ff9b::a00:1]/", "private"),
        ("http://[2002:a00:1::]/", "private"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://100.64.0.1/", "not globally reachable"),
    ],
)
def test_non_public_addresses_are_refused(url: str, kind: str) -> None:
    with pytest.raises(ValueError, match=kind):
        check_target(url, allow_private=False, resolver=NOWHERE)


def test_a_host_name_resolving_to_loopback_is_refused() -> None:
    sneaky = resolver({"hooks.example.test": ["93.184.216.34", "127.0.0.1"]})
    with pytest.raises(ValueError, match=r"'hooks.example.test' resolves to 127.0.0.1"):
        check_target("https://hooks.example.test/in", allow_private=False, resolver=sneaky)


def test_a_public_target_passes_with_its_addresses() -> None:
    public = resolver({"crm.example.com": ["93.184.216.34", "2606:2800:220:1::1"]})
    found = check_target("https://crm.example.com/hooks", allow_private=False, resolver=public)
    assert found == ["93.184.216.34", "2606:2800:220:1::1"]


def test_allow_private_targets_lets_loopback_through() -> None:
    assert check_target("http://127.0.0.1:9000/", allow_private=True, resolver=NOWHERE) == [
        "127.0.0.1"
    ]
    inside = resolver({"crm.internal": ["10.0.0.7"]})
    assert check_target("http://crm.internal/", allow_private=True, resolver=inside) == ["10.0.0.7"]


def test_at_config_load_an_allowed_private_target_is_not_resolved() -> None:
    check_configured_target("https://crm.internal.test/hooks", allow_private=True)
    with pytest.raises(ValueError, match="only http and https"):
        check_configured_target("ftp://crm.internal.test/hooks", allow_private=True)
    check_configured_target("https://nowhere.example.test/", allow_private=False)  # later


# --- the send connects to an approved address (no second lookup: DNS rebinding) ----------
def sent_through(url: str, answers: dict[str, list[str]], refuse: frozenset[str] = frozenset()):  # type: ignore[no-untyped-def]
    """Send one webhook through a transport that records each request (and refuses to
    connect to the addresses in ``refuse``); the answer and the requests."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host in refuse:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(204)

    endpoint = Endpoint("crm", url, b"0" * 32, frozenset({"sql"}), True, 5.0)
    with httpx.Client(transport=httpx.MockTransport(handle)) as client:
        sender = HttpWebhookSender(client, False, resolver=resolver(answers))
        answer = sender.send(endpoint, "msg_1", b"{}")
    return answer, seen


def test_the_request_goes_to_the_checked_address_with_the_host_name_kept() -> None:
    answer, [request] = sent_through(
        "https://crm.example.com:8443/hooks?team=emea", {"crm.example.com": ["93.184.216.34"]}
    )
    assert answer.status == 204
    assert str(request.url) == "https://93.184.216.34:8443/hooks?team=emea"
    assert request.headers["host"] == "crm.example.com:8443"
    assert request.extensions["sni_hostname"] == "crm.example.com"  # TLS checks the name


def test_the_next_checked_address_is_tried_when_one_refuses_the_connection() -> None:
    both = {"crm.example.com": ["2606:2800:220:1::1", "93.184.216.34"]}
    answer, requests = sent_through(
        "http://crm.example.com/hooks", both, frozenset({"2606:2800:220:1::1"})
    )
    assert answer.status == 204
    assert [str(r.url) for r in requests] == [
        "http://[2606:2800:220:1::1]/hooks",
        "http://93.184.216.34/hooks",
    ]
    assert "sni_hostname" not in requests[-1].extensions
    assert {r.headers["host"] for r in requests} == {"crm.example.com"}


def test_a_name_that_resolves_to_a_private_address_is_never_connected_to() -> None:
    answer, requests = sent_through(
        "http://crm.example.com/hooks", {"crm.example.com": ["93.184.216.34", "10.0.0.7"]}
    )
    assert answer.refused
    assert requests == []


def test_when_every_checked_address_refuses_the_last_error_is_the_answer() -> None:
    answer, requests = sent_through(
        "http://crm.example.com/hooks",
        {"crm.example.com": ["93.184.216.34"]},
        frozenset({"93.184.216.34"}),
    )
    assert answer.status is None
    assert "ConnectError" in answer.error
    assert len(requests) == 1


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "file:///etc/passwd", "gopher://x/", "//example.com/"]
)
def test_only_http_and_https_are_allowed(url: str) -> None:
    with pytest.raises(ValueError, match="only http and https"):
        check_target(url, allow_private=True, resolver=NOWHERE)


def test_credentials_in_the_url_are_refused() -> None:
    with pytest.raises(ValueError, match="credentials"):
        check_target("https://user:pw@example.com/", allow_private=True, resolver=NOWHERE)


def test_a_host_that_does_not_resolve_is_unresolved_not_refused() -> None:
    with pytest.raises(Unresolved):
        check_target("https://nowhere.example.test/", allow_private=False, resolver=NOWHERE)
    assert (
        check_target("https://nowhere.example.test/", False, resolver=NOWHERE, unresolved_ok=True)
        == []
    )


def test_public_addresses_have_no_refusal() -> None:
    for text in ("8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8"):
        assert refusal(ipaddress.ip_address(text)) is None
