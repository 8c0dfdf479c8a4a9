"""A real Kannel (bearerbox, smsbox, the fake SMS centre) and leadflow's API under uvicorn.

``KannelRig`` writes a kannel.conf on free ports, starts bearerbox, waits for its ports,
starts smsbox, waits for the sendsms port, then starts ``fakesmsc`` reading inbound (MO) lines
from a pipe, and waits until bearerbox reports the fake centre online. Every process logs into
the rig's folder; ``explain()`` prints those logs when a block fails; ``stop()`` ends them.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn

BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"
FAKESMSC = "/usr/lib/kannel/test/fakesmsc"
SHORT_CODE = "12345"
USERNAME, PASSWORD, ADMIN_PASSWORD = "leadflow", "sendsms-secret", "admin-secret"
WEBHOOK_TOKEN = "kannel-webhook-token"
_RECEIVED = re.compile(r"Got message \d+: <(.*)>\s*$")
_SENT = re.compile(r"fakesmsc: sent message \d+")
T = TypeVar("T")


def binaries_missing() -> str | None:
    for path in (BEARERBOX, SMSBOX, FAKESMSC):
        if shutil.which(path) is None:
            return (
                f"Kannel is not installed ({path} is missing: apt-get install kannel kannel-extras)"
            )
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 15.0) -> T:
    """Poll ``check`` until it returns something truthy; AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Received:
    """A message (one part) the fake SMS centre received: ``sender receiver kind ... data``."""

    sender: str
    receiver: str
    kind: str  # text, or udh for a part of a concatenated message
    data: str

    @classmethod
    def parse(cls, line: str) -> Received:
        sender, receiver, kind, rest = line.split(" ", 3)
        if kind == "udh":  # "udh %05%00%03%01%02%01 data <payload>"
            _udh, _data, rest = rest.split(" ", 2)
        return cls(sender, receiver, kind, rest)


@dataclass
class KannelRig:
    folder: Path
    app_port: int
    ports: dict[str, int] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['sendsms']}"

    def config(self) -> str:
        get_url = (
            f"http://127.0.0.1:{self.app_port}/sms/kannel/inbound?token={WEBHOOK_TOKEN}"
            "&from=%p&to=%P&text=%a&time=%T&id=%I"
        )
        return f"""
group = core
admin-port = {self.ports["admin"]}
smsbox-port = {self.ports["smsbox"]}
admin-password = {ADMIN_PASSWORD}
admin-allow-ip = 127.0.0.1
box-allow-ip = 127.0.0.1
log-file = "{self.folder / "bearerbox.log"}"
log-level = 0
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = fake
port = {self.ports["smsc"]}
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {self.ports["smsbox"]}
sendsms-port = {self.ports["sendsms"]}
log-file = "{self.folder / "smsbox.log"}"
log-level = 0

group = sendsms-user
username = {USERNAME}
password = {PASSWORD}
max-messages = 10
concatenation = true

group = sms-service
keyword = default
catch-all = true
get-url = "{get_url}"
max-messages = 0
"""

    def _spawn(self, name: str, *args: str, stdin: bool = False) -> subprocess.Popen[bytes]:
        out = (self.folder / f"{name}.out").open("wb")
        process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=self.folder,
        )
        self.processes.append(process)
        return process

    def start(self) -> None:
        for name in ("admin", "smsbox", "smsc", "sendsms"):
            self.ports[name] = free_port()
        conf = self.folder / "kannel.conf"
        conf.write_text(self.config())
        self._spawn("bearerbox", BEARERBOX, str(conf))
        wait_for(
            lambda: _listening(self.ports["admin"]) and _listening(self.ports["smsbox"]),
            "bearerbox's admin and box ports",
        )
        self._spawn("smsbox", SMSBOX, str(conf))
        wait_for(lambda: _listening(self.ports["sendsms"]), "smsbox's sendsms port")
        self.fakesmsc = self._spawn(
            "fakesmsc",
            FAKESMSC,
            "-H",
            "127.0.0.1",
            "-r",
            str(self.ports["smsc"]),
            "-i",
            "0.1",
            stdin=True,
        )
        wait_for(self._smsc_online, "the fake SMS centre to be online")

    def _smsc_online(self) -> bool:
        try:
            status = httpx.get(
                f"http://127.0.0.1:{self.ports['admin']}/status.txt",
                params={"password": ADMIN_PASSWORD},
                timeout=1,
            ).text
        except httpx.HTTPError:
            return False
        return bool(re.search(r"fake\[fake\].*online", status))

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    # the fake SMS centre -----------------------------------------------------------------
    def received(self) -> list[Received]:
        text = (self.folder / "fakesmsc.out").read_text(errors="replace")
        return [
            Received.parse(match.group(1))
            for line in text.splitlines()
            if (match := _RECEIVED.search(line))
        ]

    def received_by(self, number: str) -> list[Received]:
        return [r for r in self.received() if r.receiver == number]

    def type_inbound(self, sender: str, text: str, receiver: str = SHORT_CODE) -> None:
        """A handset sends ``text`` (a mobile-originated message through the fake centre)."""
        assert self.fakesmsc.stdin is not None
        before = self._sent_count()
        self.fakesmsc.stdin.write(f"{sender} {receiver} text {text}\n".encode())
        self.fakesmsc.stdin.flush()
        # fakesmsc takes one line per read: the next line waits until this one went out.
        wait_for(lambda: self._sent_count() > before, f"fakesmsc to send {text!r}")

    def _sent_count(self) -> int:
        text = (self.folder / "fakesmsc.out").read_text(errors="replace")
        return len(_SENT.findall(text))

    @contextmanager
    def explain(self) -> Iterator[None]:
        """Print the tail of every log when the block fails."""
        try:
            yield
        except BaseException:
            for path in sorted(self.folder.glob("*.log")) + sorted(self.folder.glob("*.out")):
                lines = path.read_text(errors="replace").splitlines()[-40:]
                print(f"----- {path.name} (last {len(lines)} lines)")
                print("\n".join(lines))
            raise


@contextmanager
def serving(app: Any, port: int) -> Iterator[str]:
    """Run an ASGI app under uvicorn in a thread on ``port``; yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, f"uvicorn on port {port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
