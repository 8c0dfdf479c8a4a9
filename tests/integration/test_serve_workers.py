"""``leadflow serve --workers N``: one listening socket per worker process (SO_REUSEPORT),
connections spread over the workers, a dead worker replaced, SIGTERM stops them all.

Linux only: the sockets are read from /proc.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.skipif(
    not Path("/proc/net/tcp").exists() or not hasattr(socket, "SO_REUSEPORT"),
    reason="needs Linux (/proc/net/tcp) and SO_REUSEPORT",
)

LISTEN, ESTABLISHED = "0A", "01"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def socket_inodes(port: int, state: str) -> set[str]:
    """Inodes of the IPv4 TCP sockets on local ``port`` in ``state``."""
    found: set[str] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, st, inode = fields[1], fields[3], fields[9]
        if int(local.rsplit(":", 1)[1], 16) == port and st == state:
            found.add(inode)
    return found


def owners(inodes: set[str], pids: list[int]) -> dict[int, set[str]]:
    """Which of ``pids`` hold which of the socket ``inodes``."""
    held: dict[int, set[str]] = {}
    for pid in pids:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except (FileNotFoundError, ProcessLookupError):
            continue
        mine = {link[8:-1] for link in links if link.startswith("socket:[")} & inodes
        if mine:
            held[pid] = mine
    return held


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Whether the process exists and has not exited (a zombie waiting to be reaped has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(check: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        time.sleep(0.2)


def listeners(server: subprocess.Popen[bytes], port: int) -> dict[int, set[str]]:
    return owners(socket_inodes(port, LISTEN), children(server.pid))


def healthy(port: int, timeout: float = 2) -> bool:
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    db = f"sqlite:///{tmp_path / 'served.db'}"
    command = [sys.executable, "-m", "leadflow.cli", "--db", db, "serve", "--port", str(port),
               "--workers", "2", "--no-access-log"]  # fmt: skip
    server = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_for(lambda: healthy(port) and len(listeners(server, port)) == 2)
        yield server, port
    finally:
        if server.poll() is None:
            workers = children(server.pid)
            server.terminate()
            try:
                server.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                for pid in [*workers, server.pid]:
                    os.kill(pid, signal.SIGKILL)
                server.communicate(timeout=15)


def test_each_worker_listens_on_its_own_socket_and_connections_spread(
    served: tuple[subprocess.Popen[bytes], int],
) -> None:
    server, port = served
    held = listeners(server, port)
    assert len(held) == 2, held
    first, second = held.values()
    assert first.isdisjoint(second), "the workers share one listening socket"

    # 32 keep-alive connections: under the kernel's spreading, all on one worker would have
    # a chance of 2 in 2**32.
    connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
    try:
        for connection in connections:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        for connection in connections:
            assert connection.recv(4096).startswith(b"HTTP/1.1 200")
        serving = owners(socket_inodes(port, ESTABLISHED), children(server.pid))
        assert len(serving) == 2, f"connections by worker: {serving}"
        assert sum(len(held) for held in serving.values()) == 32
    finally:
        for connection in connections:
            connection.close()


def test_a_dead_worker_is_replaced_and_sigterm_stops_them_all(
    served: tuple[subprocess.Popen[bytes], int],
) -> None:
    server, port = served
    victim = next(iter(listeners(server, port)))
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in listeners(server, port) and len(listeners(server, port)) == 2)
    # The replacement listens before it starts: a connection that reaches it meanwhile waits
    # in its queue and is served once it is up, none is refused.
    for _ in range(10):
        assert healthy(port, timeout=30)

    workers = list(listeners(server, port))
    server.send_signal(signal.SIGTERM)
    output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output.decode()
    assert "2 worker processes, each on its own socket" in output.decode()
    assert not any(running(pid) for pid in workers)
    assert not socket_inodes(port, LISTEN), "a listening socket outlived the server"


def test_workers_that_keep_exiting_stop_the_server_with_a_message(
    served: tuple[subprocess.Popen[bytes], int],
) -> None:
    server, port = served
    killed: set[int] = set()
    for _ in range(5):
        held = listeners(server, port)
        victim = next(pid for pid in held if pid not in killed)
        os.kill(victim, signal.SIGKILL)
        killed.add(victim)
        if len(killed) < 5:  # replaced each time until the fifth exit in a minute
            wait_for(lambda v=victim: v not in listeners(server, port)  # type: ignore[misc]
                     and len(listeners(server, port)) == 2)  # fmt: skip
    output, _ = server.communicate(timeout=60)
    assert server.returncode == 1, output.decode()
    assert "error: workers keep exiting (5 in 60 s); see the log above" in output.decode()
    assert not socket_inodes(port, LISTEN), "a listening socket outlived the server"


def test_workers_do_not_outlive_a_supervisor_killed_outright(
    served: tuple[subprocess.Popen[bytes], int],
) -> None:
    server, port = served
    workers = list(listeners(server, port))
    assert len(workers) == 2
    server.kill()  # SIGKILL: the supervisor cannot stop anyone itself
    server.communicate(timeout=30)
    wait_for(lambda: not any(running(pid) for pid in workers), timeout=30)
    assert not socket_inodes(port, LISTEN), "a listening socket outlived the server"
