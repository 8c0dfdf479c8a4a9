"""Ingestion benchmark: batched events over real HTTP into SQLite and PostgreSQL.

Prints events/s (counted once committed: every request answered 200 only after its commit,
and the stored count is checked), the ratio to the rate at which this machine merely parses
the same payloads with orjson (measured in the same run), and single-event latency
percentiles at light load.

    .venv/bin/python bench/ingest.py --events 200000 --senders 8 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).parent))
from _common import PostConnection, basic_auth, database, served
from leadflow import Settings, open_leadflow
from leadflow.adapters.db.tables import Event, InboxRow
from leadflow.simulator import SimulationConfig, simulate


def payloads(events: int, batch: int, seed: int) -> list[bytes]:
    """Batch bodies of simulator messages, the way the Python clients send them."""
    leads = max(200, events // 12)
    messages = itertools.islice(
        simulate(SimulationConfig(seed=seed, leads=leads)).messages(), events
    )
    bodies: list[bytes] = []
    chunk: list[dict[str, object]] = []
    for message in messages:
        chunk.append(message)
        if len(chunk) == batch:
            bodies.append(orjson.dumps({"batch": chunk, "sentAt": message["timestamp"]}))
            chunk = []
    if chunk:
        bodies.append(orjson.dumps({"batch": chunk}))
    return bodies


def parse_rate(bodies: list[bytes], count: int) -> float:
    """Events/s at which orjson alone parses the same bodies (best of three)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for body in bodies:
            orjson.loads(body)
        best = min(best, time.perf_counter() - start)
    return count / best


async def send_all(base: str, key: str, bodies: list[bytes], senders: int) -> float:
    """Post every body to /v1/batch over ``senders`` keep-alive connections; a 429 waits
    for its Retry-After and is sent again. Returns the seconds it took."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    host, _, port = base.removeprefix("http://").partition(":")

    async def sender() -> None:
        connection = PostConnection(host, int(port), basic_auth(key))
        try:
            while not queue.empty():
                body = queue.get_nowait()
                while True:
                    status, headers, answer = await connection.post("/v1/batch", body)
                    if status == 200:
                        break
                    if status != 429:
                        raise RuntimeError(f"{status}: {answer[:300]!r}")
                    await asyncio.sleep(float(headers.get("retry-after", "0.05")))
        finally:
            connection.close()

    start = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(senders)))
    return time.perf_counter() - start


def latency(base: str, key: str, requests: int) -> list[float]:
    """Single-event round trips at light load (one sender, one event per request), in ms."""
    took: list[float] = []
    with httpx.Client(base_url=base, auth=(key, ""), timeout=10) as client:
        for i in range(requests):
            body = {
                "type": "track",
                "event": "Pricing Viewed",
                "anonymousId": f"lat-{i % 50}",
                "messageId": f"lat-{i}",
                "properties": {"plan": "pro"},
            }
            start = time.perf_counter()
            answer = client.post("/v1/track", json=body)
            took.append((time.perf_counter() - start) * 1000)
            if answer.status_code != 200:
                raise RuntimeError(answer.text)
            time.sleep(0.005)
    return took


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def inbox_left(core: Any) -> tuple[int, int]:
    """Inbox rows waiting and events stored."""
    with core.engine.connect() as conn:
        waiting = conn.scalar(select(func.count()).select_from(InboxRow)) or 0
        stored = conn.scalar(select(func.count()).select_from(Event)) or 0
    return int(waiting), int(stored)


@contextlib.contextmanager
def drainers(url: str, count: int, folder: Path) -> Iterator[None]:
    """``leadflow inbox drain --follow`` processes at a lower CPU priority (nice 10) than the
    server, so that accepting requests comes first and processing catches up."""
    command = [str(Path(sys.executable).parent / "leadflow"), "--db", url, "inbox", "drain",
               "--follow"]  # fmt: skip
    logs = [(folder / f"drain-{n}.log").open("w") for n in range(count)]
    procs = [
        subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=lambda: os.nice(10)
        )
        for log in logs
    ]
    try:
        yield
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc, log in zip(procs, logs, strict=True):
            proc.wait(timeout=30)
            log.close()


def run_backend(
    backend: str, mode: str, args: argparse.Namespace, bodies: list[bytes], total: int,
    folder: Path,
) -> dict[str, float]:  # fmt: skip
    """One backend in one ingestion mode. ``eps``: events/s answered 200, each only after
    its commit (direct: events stored and scored; staged: the body stored in the inbox).
    ``processed_eps`` (staged): events/s from the first request until the last event is
    stored and scored by the drainer processes, read from the database while they work."""
    with database(backend, folder) as url:
        core = open_leadflow(Settings(database_url=url))
        key = core.create_source("bench").write_key
        env = {"LEADFLOW_INGEST_MODE": mode, "LEADFLOW_INBOX_DRAINER": "false"}
        with (
            served(url, args.workers, folder, env) as base,
            drainers(url, args.drainers if mode == "staged" else 0, folder),
        ):
            started = time.perf_counter()
            seconds = asyncio.run(send_all(base, key, bodies, args.senders))
            processed = seconds
            backlog = 0
            if mode == "staged":
                backlog = inbox_left(core)[0]  # requests accepted but not yet processed
                while inbox_left(core) != (0, total):
                    if time.perf_counter() - started > 3600:
                        raise RuntimeError(f"{backend}: not drained: {inbox_left(core)}")
                    time.sleep(0.05)
                processed = time.perf_counter() - started
            lat = latency(base, key, args.latency_requests)
            time.sleep(0.5 if mode == "staged" else 0)
            while mode == "staged" and inbox_left(core)[0]:
                time.sleep(0.05)
        with core.engine.connect() as conn:
            stored = conn.scalar(select(func.count()).select_from(Event)) or 0
        core.close()
    stored -= args.latency_requests
    if stored != total:
        raise RuntimeError(f"{backend}: {stored} events stored, {total} sent")
    return {
        "eps": total / seconds,
        "seconds": seconds,
        "processed_eps": total / processed,
        "processed_seconds": processed,
        "backlog": backlog,
        "p50": percentile(lat, 0.5),
        "p99": percentile(lat, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency-requests", type=int, default=500)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--drainers", type=int, default=1, help="staged mode: `leadflow inbox drain` processes"
    )
    parser.add_argument(
        "--modes", default="direct,staged", help="ingestion modes: direct, staged (comma list)"
    )
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    bodies = payloads(args.events, args.batch, args.seed)
    total = sum(len(orjson.loads(b)["batch"]) for b in bodies)
    reference = parse_rate(bodies, total)
    print(f"payloads: {total} events in {len(bodies)} requests of {args.batch}")
    print(f"reference: orjson parse only      {reference:12,.0f} events/s")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            for mode in args.modes.split(","):
                r = run_backend(backend, mode, args, bodies, total, Path(tmp))
                line = (
                    f"{backend:10s} {mode:6s}: {r['eps']:10,.0f} events/s answered 200 after "
                    f"commit ({r['seconds']:.1f} s), ratio to parse-only "
                    f"{r['eps'] / reference:.4f}; single-event latency p50 {r['p50']:.1f} ms, "
                    f"p99 {r['p99']:.1f} ms"
                )
                if mode == "staged":
                    line += (
                        f"\n{'':17s}  {r['processed_eps']:10,.0f} events/s stored and scored "
                        f"({r['processed_seconds']:.1f} s until the inbox was empty; "
                        f"{r['backlog']:,} requests were waiting when the last was answered)"
                    )
                line += f"\n{'':17s}  load average {os.getloadavg()[0]:.2f}"
                print(line, flush=True)


if __name__ == "__main__":
    main()
