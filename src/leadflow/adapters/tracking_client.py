"""A tracking-protocol client: posts Segment messages to a leadflow server over HTTP."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

BATCH = 100
SENDERS = 4


@dataclass
class SendReport:
    requests: int = 0
    messages: int = 0
    rejected: int = 0
    errors: list[str] | None = None


def batches(
    messages: Iterable[dict[str, Any]], size: int = BATCH
) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(messages)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


async def _send(
    base_url: str,
    write_key: str,
    chunks: Iterator[list[dict[str, Any]]],
    on_batch: Callable[[int], None],
    senders: int,
) -> SendReport:
    report = SendReport(errors=[])
    async with httpx.AsyncClient(base_url=base_url, auth=(write_key, ""), timeout=60) as client:

        async def sender() -> None:
            for chunk in chunks:  # the shared iterator hands each batch to one sender
                answer = await client.post(
                    "/v1/batch",
                    content=orjson.dumps({"batch": chunk}),
                    headers={"content-type": "application/json"},
                )
                report.requests += 1
                report.messages += len(chunk)
                if answer.status_code != 200:
                    body = answer.json() if answer.content else {}
                    report.rejected += len(body.get("errors", [])) or len(chunk)
                    assert report.errors is not None
                    report.errors.append(f"{answer.status_code}: {body.get('message', '')}")
                on_batch(len(chunk))

        await asyncio.gather(*(sender() for _ in range(senders)))
    return report


def send_over_http(
    base_url: str,
    write_key: str,
    messages: Iterable[dict[str, Any]],
    on_batch: Callable[[int], None] = lambda _n: None,
    senders: int = SENDERS,
) -> SendReport:
    """Post the messages in batches of 100 to /v1/batch, the way the tracking clients do."""
    return asyncio.run(_send(base_url, write_key, batches(messages), on_batch, senders))
