"""POSTs signed webhooks with an injected ``httpx.Client``: no redirects followed, the target
checked against the SSRF rules before every send, and every outcome turned into an Answer.

The request goes to an address the check approved, not to whatever the host name resolves to
a moment later: otherwise a name that answers a public address to the check and a private
one to the connection (DNS rebinding) would reach the private network. The URL's host stays
in the Host header and in TLS (SNI and certificate verification).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from leadflow.adapters.webhooks.ssrf import Resolver, Unresolved, check_target, system_resolver
from leadflow.services.webhooks import Answer, Endpoint, parse_retry_after, signed_headers

USER_AGENT = "leadflow-webhooks"
BODY_SHOWN = 300


class HttpWebhookSender:
    """Sends one signed event to one endpoint. ``webhook-timestamp`` is the wall-clock time of
    the send: receivers compare it with their own clock to refuse replayed requests."""

    def __init__(
        self,
        client: httpx.Client,
        allow_private: bool = False,
        resolver: Resolver = system_resolver,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.allow_private = allow_private
        self.resolver = resolver
        self.wall_clock = wall_clock

    def send(self, endpoint: Endpoint, event_id: str, body: bytes) -> Answer:
        try:
            addresses = check_target(endpoint.url, self.allow_private, self.resolver)
        except Unresolved as exc:
            return Answer(None, str(exc))
        except ValueError as exc:
            return Answer(None, f"refused: {exc}", refused=True)
        headers = signed_headers(endpoint.secret, event_id, int(self.wall_clock()), body)
        headers["user-agent"] = USER_AGENT
        try:
            return self._post_pinned(endpoint, addresses, headers, body)
        except httpx.TimeoutException:
            return Answer(None, f"no answer within {endpoint.timeout:g}s")
        except httpx.HTTPError as exc:
            return Answer(None, f"{type(exc).__name__}: {exc}")

    def _post_pinned(
        self, endpoint: Endpoint, addresses: list[str], headers: dict[str, str], body: bytes
    ) -> Answer:
        """POST to the first approved address that accepts a connection (the URL as it is
        when there is nothing to pin: private targets allowed, or a literal address)."""
        url = httpx.URL(endpoint.url)
        try:
            literal = ipaddress.ip_address(url.host)
        except ValueError:
            literal = None
        if not addresses or literal is not None:
            return self._post(endpoint, url, headers, body, {})
        pinned = {**headers, "host": url.netloc.decode("ascii")}
        extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
        *others, last = addresses
        for address in others:
            try:
                return self._post(endpoint, url.copy_with(host=address), pinned, body, extensions)
            except httpx.ConnectError:
                continue  # the next approved address
        return self._post(endpoint, url.copy_with(host=last), pinned, body, extensions)

    def _post(
        self,
        endpoint: Endpoint,
        url: httpx.URL,
        headers: dict[str, str],
        body: bytes,
        extensions: dict[str, str],
    ) -> Answer:
        with self.client.stream(
            "POST",
            url,
            content=body,
            headers=headers,
            timeout=endpoint.timeout,
            follow_redirects=False,
            extensions=extensions,
        ) as response:
            status = response.status_code
            text = b""
            for chunk in response.iter_bytes():
                text += chunk
                if len(text) >= BODY_SHOWN:
                    break
        wait = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
        if 200 <= status < 300:
            return Answer(status)
        shown = " ".join(text[:BODY_SHOWN].decode("utf-8", "replace").split())
        if 300 <= status < 400:
            where = response.headers.get("location", "?")
            return Answer(status, f"HTTP {status}: redirect to {where} not followed")
        return Answer(status, f"HTTP {status}: {shown}".rstrip(": "), wait)
