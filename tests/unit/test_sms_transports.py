"""How the transports build their requests and read the answers (httpx.MockTransport), and
the capture file. The real Kannel and a real HTTP server are in tests/integration."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from leadflow.adapters.sms import CaptureSmsSender, KannelSmsSender, decode_key, encode_key
from leadflow.domain.errors import PermanentDeliveryError, TransientDeliveryError
from leadflow.ports import SmsMessage


def _kannel(handler: httpx.MockTransport, dlr: str | None = "http://app/sms/kannel/dlr?token=t"):
    client = httpx.Client(transport=handler)
    return KannelSmsSender("http://kannel:13013/", "u", "p", "12345", dlr, client)


def test_kannel_request_carries_coding_parts_and_the_report_url() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, text="0: Accepted for delivery")

    receipt = _kannel(httpx.MockTransport(answer)).send(
        SmsMessage("run:1/step a", "+12025550100", "😀" * 40)
    )
    params = seen[0].url.params
    assert seen[0].url.path == "/cgi-bin/sendsms"
    assert (params["coding"], params["charset"], params["from"]) == ("2", "UTF-8", "12345")
    assert (params["max-messages"], params["dlr-mask"]) == ("3", "31")
    dlr = params["dlr-url"]
    assert dlr.startswith("http://app/sms/kannel/dlr?token=t&key=b64.")
    assert "&status=%d&answer=%A&time=%T" in dlr
    key = dlr.split("key=", 1)[1].split("&", 1)[0]
    assert decode_key(key) == "run:1/step a"
    assert (receipt.provider_id, receipt.parts) == ("run:1/step a", 2)


def test_kannel_without_a_report_url_asks_for_no_report() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, text="3: Queued for later delivery")

    receipt = _kannel(httpx.MockTransport(answer), dlr=None).send(SmsMessage("k", "+1", "Hi"))
    assert "dlr-url" not in seen[0].url.params and seen[0].url.params["coding"] == "0"
    assert receipt.detail.startswith("3: Queued")


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (503, "Temporal failure, try again later.", TransientDeliveryError),
        (500, "", TransientDeliveryError),
        (403, "Authorization failed for sendsms", PermanentDeliveryError),
        (400, "Sender missing and no global set, rejected", PermanentDeliveryError),
        (202, "4: something else", PermanentDeliveryError),
    ],
)
def test_kannel_answers_are_transient_or_permanent(
    status: int, body: str, error: type[Exception]
) -> None:
    sender = _kannel(httpx.MockTransport(lambda _r: httpx.Response(status, text=body)))
    with pytest.raises(error, match=f"HTTP {status}"):
        sender.send(SmsMessage("k", "+12025550100", "Hi"))


def test_kannel_timeouts_are_transient() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    with pytest.raises(TransientDeliveryError, match="timed out"):
        _kannel(httpx.MockTransport(slow)).send(SmsMessage("k", "+12025550100", "Hi"))


@pytest.mark.parametrize("key", ["plain-key:1", "with space/slash", "ünïcode", "b64.looks"])
def test_keys_survive_the_url(key: str) -> None:
    encoded = encode_key(key)
    assert decode_key(encoded) == key
    assert httpx.URL("http://x/", params={"key": encoded}).params["key"] == encoded


def test_capture_appends_one_json_line_per_text(tmp_path: Path) -> None:
    path = tmp_path / "out" / "sms.jsonl"
    sender = CaptureSmsSender(path, "12345")
    sender.send(SmsMessage("k1", "+12025550100", "a" * 170))
    receipt = sender.send(SmsMessage("k2", "+12025550101", "Hi", sender="999"))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(x["key"], x["from"], x["parts"]) for x in lines] == [
        ("k1", "12345", 2),
        ("k2", "999", 1),
    ]
    assert receipt.provider_id == "k2"
