"""Where webhooks may go: public http(s) targets only, unless private targets are allowed."""

from __future__ import annotations

import ipaddress

import pytest

from leadflow.adapters.webhooks.ssrf import Unresolved, check_target, refusal


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
    assert check_target("http://127.0.0.1:9000/", allow_private=True, resolver=NOWHERE) == []


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
