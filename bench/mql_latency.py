"""MQL latency benchmark: from the decisive event to the new stage in the API, under load.

Goal (from the issue): an event that makes a lead an MQL shows the new stage through the API
within 1 second of ingestion, measured under load.

For each backend, a fresh database and `leadflow serve` (uvicorn with --workers processes, the
app `leadflow serve` runs) in a subprocess. Each probe creates a fresh known lead that the
default model grades A (identify: industry software, 200 employees, 'VP Marketing', US, a
business email), checks through the API that it is a grade-A lead and not yet an MQL, then
sends the decisive event (track 'Demo Requested', an MQL under the default policy) and polls
GET /api/leads?email=... until stage == 'mql'. The latency is the time from sending that
event to seeing the MQL. Probes run first with no other traffic (the reference), then while a
background thread offers batched simulator traffic over HTTP at a fixed rate (open loop, at
most --in-flight requests outstanding); the achieved rate is the events committed (HTTP 200)
while the probes ran, divided by that time.

Prints p50/p95/p99/max latency, the share under the goal, the ratio loaded/unloaded, and
what the decisive POST alone took. Timings are reported, never asserted.

    .venv/bin/python bench/mql_latency.py --rate 2000 --probes 50
    .venv/bin/python bench/mql_latency.py --backends sqlite,postgresql --worker
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _common import database, served
from leadflow import Settings, open_leadflow
from leadflow.simulator import SimulationConfig, simulate

GOAL_SECONDS = 1.0
GOOD_FIT = {
    "industry": "software",
    "company_size": 200,
    "title": "VP Marketing",
    "country": "US",
}


# --- background load -----------------------------------------------------------------------


def load_bodies(events: int, batch: int, seed: int) -> tuple[list[bytes], list[int]]:
    """Batch bodies of simulator messages (sentAt set: the server corrects the clock skew,
    so the events land at the time they are sent) and the number of events in each."""
    leads = max(200, events // 12)
    messages = itertools.islice(
        simulate(SimulationConfig(seed=seed, leads=leads)).messages(), events
    )
    bodies: list[bytes] = []
    counts: list[int] = []
    while chunk := list(itertools.islice(messages, batch)):
        bodies.append(orjson.dumps({"batch": chunk, "sentAt": chunk[-1]["timestamp"]}))
        counts.append(len(chunk))
    return bodies, counts


@dataclass
class Load:
    """Batched traffic offered at a fixed rate from a thread with its own event loop."""

    base: str
    key: str
    bodies: list[bytes]
    counts: list[int]
    rate: float
    in_flight: int
    acked: list[tuple[float, int]] = field(default_factory=list)  # (perf_counter, events)
    retries: int = 0
    late: int = 0  # sends issued more than 100 ms after their slot (server behind)
    last_send: float = math.inf  # perf_counter of the last send, once the bodies ran out
    error: BaseException | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._main, name="load", daemon=True)
        self.thread.start()

    def finish(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=120)
        if self.error is not None:
            raise RuntimeError(f"background load failed: {self.error!r}") from self.error

    def committed_between(self, start: float, end: float) -> int:
        return sum(n for at, n in self.acked if start <= at <= end)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by finish()
            self.error = exc

    async def _run(self) -> None:
        limits = httpx.Limits(
            max_connections=self.in_flight, max_keepalive_connections=self.in_flight
        )
        gate = asyncio.Semaphore(self.in_flight)
        pending: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(
            base_url=self.base, auth=(self.key, ""), limits=limits, timeout=120
        ) as client:
            started = time.perf_counter()
            offered = 0
            for body, count in zip(self.bodies, self.counts, strict=True):
                slot = started + offered / self.rate
                offered += count
                delay = slot - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await gate.acquire()
                if self.stop.is_set():
                    gate.release()
                    break
                if time.perf_counter() - slot > 0.1:
                    self.late += 1
                task = asyncio.create_task(self._send(client, gate, body, count))
                pending.add(task)
                task.add_done_callback(pending.discard)
            else:
                self.last_send = time.perf_counter()
            await asyncio.gather(*pending)

    async def _send(
        self, client: httpx.AsyncClient, gate: asyncio.Semaphore, body: bytes, count: int
    ) -> None:
        try:
            while True:
                answer = await client.post(
                    "/v1/batch", content=body, headers={"content-type": "application/json"}
                )
                if answer.status_code == 200:
                    self.acked.append((time.perf_counter(), count))
                    return
                if answer.status_code != 429:
                    raise RuntimeError(f"{answer.status_code}: {answer.text[:300]}")
                self.retries += 1
                await asyncio.sleep(float(answer.headers.get("retry-after", "0.05")))
        finally:
            gate.release()


# --- probes --------------------------------------------------------------------------------


@dataclass
class Probe:
    started: float  # perf_counter when the decisive event was sent
    total: float  # seconds from sending the decisive event to seeing stage == 'mql'
    post: float  # seconds the decisive POST took (answered after its commit)
    polls: int


def find_lead(client: httpx.Client, email: str) -> dict[str, object] | None:
    answer = client.get("/api/leads", params={"email": email})
    answer.raise_for_status()
    items = answer.json()["items"]
    return items[0] if items else None


def probe(client: httpx.Client, label: str, poll: float, timeout: float) -> Probe:
    """One fresh grade-A lead, then the decisive event; time until the API shows the MQL."""
    email = f"{label}@northwind-{label}.com"
    identify = {
        "type": "identify",
        "userId": label,
        "messageId": f"{label}-identify",
        "traits": {"email": email, **GOOD_FIT},
    }
    answer = client.post("/v1/identify", json=identify)
    if answer.status_code != 200:
        raise RuntimeError(f"identify: {answer.status_code} {answer.text[:300]}")
    lead = find_lead(client, email)
    if lead is None or lead["stage"] != "lead":
        raise RuntimeError(f"{label}: expected a fresh lead before the decisive event: {lead}")
    grade = lead["scores"]["fit_grade"]  # type: ignore[index]
    if grade != "A":
        raise RuntimeError(f"{label}: fit grade {grade}, expected A; the model changed?")
    decisive = {
        "type": "track",
        "userId": label,
        "event": "Demo Requested",
        "messageId": f"{label}-demo",
        "properties": {},
    }
    start = time.perf_counter()
    answer = client.post("/v1/track", json=decisive)
    posted = time.perf_counter() - start
    if answer.status_code != 200:
        raise RuntimeError(f"track: {answer.status_code} {answer.text[:300]}")
    polls = 0
    while True:
        polls += 1
        found = find_lead(client, email)
        elapsed = time.perf_counter() - start
        if found is not None and found["stage"] == "mql":
            return Probe(start, elapsed, posted, polls)
        if elapsed > timeout:
            return Probe(start, math.inf, posted, polls)
        time.sleep(poll)


def run_probes(
    base: str, key: str, tag: str, count: int, interval: float, args: argparse.Namespace
) -> tuple[list[Probe], float, float]:
    """`count` probes, one every `interval` seconds (or back to back when slower)."""
    found: list[Probe] = []
    with httpx.Client(base_url=base, auth=(key, ""), timeout=60) as client:
        started = time.perf_counter()
        for i in range(count):
            time.sleep(max(0.0, started + i * interval - time.perf_counter()))
            found.append(probe(client, f"probe-{tag}-{i}", args.poll, args.timeout))
        ended = time.perf_counter()
    return found, started, ended


# --- reporting -----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(probes: list[Probe]) -> dict[str, float]:
    totals = [p.total * 1000 for p in probes]
    return {
        "p50": percentile(totals, 0.5),
        "p95": percentile(totals, 0.95),
        "p99": percentile(totals, 0.99),
        "max": max(totals),
        "under": sum(p.total < GOAL_SECONDS for p in probes) / len(probes),
        "post_p50": percentile([p.post * 1000 for p in probes], 0.5),
        "post_p99": percentile([p.post * 1000 for p in probes], 0.99),
        "polls": sum(p.polls for p in probes) / len(probes),
    }


def line(name: str, s: dict[str, float]) -> str:
    return (
        f"  {name:9s} p50 {s['p50']:8.1f} ms  p95 {s['p95']:8.1f}  p99 {s['p99']:8.1f}  "
        f"max {s['max']:8.1f}  under {GOAL_SECONDS:g} s: {s['under']:6.1%}  "
        f"(decisive POST p50 {s['post_p50']:.1f} ms, p99 {s['post_p99']:.1f}; "
        f"{s['polls']:.1f} polls)"
    )


def load_average() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


@contextlib.contextmanager
def worker_process(url: str, folder: Path, wanted: bool) -> Iterator[None]:
    """`leadflow worker` beside the server, as a deployment runs it (--worker)."""
    if not wanted:
        yield
        return
    log = (folder / "worker.log").open("w")
    env = {**os.environ, "LEADFLOW_DATABASE_URL": url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "leadflow.cli", "worker", "--interval", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def run_backend(backend: str, args: argparse.Namespace, folder: Path) -> None:
    loaded_seconds = args.warmup + args.probes * args.interval
    events = int(args.rate * (loaded_seconds + args.slack))
    bodies, counts = load_bodies(events, args.batch, args.seed)
    with database(backend, folder) as url:
        core = open_leadflow(Settings(database_url=url))
        key = core.create_source("bench").write_key
        core.close()
        with served(url, args.workers, folder) as base, worker_process(url, folder, args.worker):
            run_probes(base, key, "warmup", 5, 0.0, args)
            quiet, _, _ = run_probes(base, key, "quiet", args.probes, args.quiet_interval, args)
            before = load_average()
            load = Load(base, key, bodies, counts, args.rate, args.in_flight)
            load.start()
            try:
                time.sleep(args.warmup)
                busy, start, end = run_probes(base, key, "busy", args.probes, args.interval, args)
            finally:
                load.finish()
            after = load_average()
    end = min(end, load.last_send)
    achieved = load.committed_between(start, end) / (end - start)
    loaded = [p for p in busy if p.started <= load.last_send]
    q = summary(quiet)
    print(f"{backend}: {args.probes} probes each, {args.workers} uvicorn workers")
    print(line("unloaded", q))
    if not loaded:
        print("  no probe ran under load: the load ran out first (raise --slack)")
        return
    b = summary(loaded)
    print(line("loaded", b))
    print(
        f"  ratio loaded/unloaded: p50 {b['p50'] / q['p50']:.2f}, p99 {b['p99'] / q['p99']:.2f}; "
        f"background load offered {args.rate:,.0f} events/s in batches of {args.batch}, "
        f"achieved {achieved:,.0f} events/s while the probes ran ({achieved / args.rate:.0%}); "
        f"{load.late} late sends, {load.retries} retries after 429"
    )
    if len(loaded) < len(busy):
        print(
            f"  warning: the background load ran out before the probes ended: the loaded figures "
            f"are of the {len(loaded)} probes sent while it ran (raise --slack)"
        )
    print(f"  machine: {before} as the loaded run began, {after} at its end")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--backends", default="postgresql", help="sqlite,postgresql")
    parser.add_argument("--rate", type=float, default=2000, help="offered events/s of load")
    parser.add_argument("--batch", type=int, default=100, help="events per load request")
    parser.add_argument("--in-flight", type=int, default=16, help="most load requests open")
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.5, help="s between loaded probes")
    parser.add_argument("--quiet-interval", type=float, default=0.05)
    parser.add_argument("--warmup", type=float, default=3.0, help="s of load before probing")
    parser.add_argument("--slack", type=float, default=20.0, help="s of extra load events")
    parser.add_argument("--poll", type=float, default=0.005, help="s between polls")
    parser.add_argument("--timeout", type=float, default=30.0, help="s before a probe fails")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help="also run `leadflow worker`")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    print(f"goal: the MQL visible through the API within {GOAL_SECONDS:g} s of the event")
    print(f"machine: {os.cpu_count()} cores, {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            run_backend(backend, args, Path(tmp))


if __name__ == "__main__":
    main()
