"""Worker processes for ``leadflow serve --workers N``, each on its own listening socket.

uvicorn's own supervisor shares one listening socket between its workers. The worker whose
event loop wakes first accepts every connection waiting, so the few long-lived keep-alive
connections that carry most tracking traffic (a proxy, a batching client, a load balancer)
tend to land on one process while the others idle. Here each worker binds its own socket
with SO_REUSEPORT and the kernel spreads new connections over them.

The supervisor restarts a worker that dies and stops every worker on SIGINT or SIGTERM. It
gives up when a worker fails before it serves, or when workers keep exiting: a broken app
would fail every restart. The port is checked free beforehand (``leadflow serve``), so the
workers never join the sockets of another server already on it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn
from uvicorn.config import STARTUP_FAILURE

log = logging.getLogger("uvicorn.error")
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def spreads_connections() -> bool:
    """Whether the kernel spreads connections over sockets sharing a port: Linux does with
    SO_REUSEPORT; macOS and the BSDs accept the option but hand every connection to one
    socket, which would be worse than uvicorn's shared one."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    # Listening before the worker starts joins the socket to the group at once: connections
    # hashed to it wait in its queue while the worker starts, instead of all going to the
    # workers that happen to be up already.
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def die_with(parent: int) -> None:
    """Ask Linux to send this process SIGTERM when its parent dies, so that workers never
    outlive a supervisor that was killed outright (SIGKILL, OOM); a no-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # no prctl: the supervisor's own stop still applies
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def serve_on(config: uvicorn.Config, sock: socket.socket, parent: int) -> None:
    """A worker process: tied to the supervisor's life, uvicorn's logging set up again, then
    the app served on ``sock``."""
    die_with(parent)
    config.configure_logging()
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C reaches every process: no traceback
        uvicorn.Server(config).run(sockets=[sock])


class Workers:
    """Starts ``count`` workers and keeps them running. A worker that exits is replaced,
    unless workers keep exiting (``burst`` exits within ``window`` seconds: a crash loop, such
    as an app that cannot load) or one fails before it serves: then every worker stops and
    :meth:`run` says why."""

    def __init__(
        self, config: uvicorn.Config, count: int, burst: int = 5, window: float = 60.0
    ) -> None:
        self.config = config
        self.count = count
        self.burst = burst
        self.window = window
        self.stopping = threading.Event()
        self.failure = ""
        self._exits: deque[float] = deque()

    def _start(self) -> BaseProcess:
        sock = listening_socket(self.config.host, self.config.port, self.config.backlog)
        process = multiprocessing.get_context("spawn").Process(
            target=serve_on, args=(self.config, sock, os.getpid()), name="leadflow-worker"
        )
        process.start()
        sock.close()  # the worker holds its own copy; ours would keep a dead worker's queue
        return process

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping.set()

    def _give_up(self, process: BaseProcess) -> str:
        """Why to stop instead of replacing this exited worker; empty: replace it."""
        if process.exitcode == STARTUP_FAILURE:
            return f"worker {process.pid} failed to start"
        now = time.monotonic()
        self._exits.append(now)
        while self._exits and self._exits[0] < now - self.window:
            self._exits.popleft()
        if len(self._exits) >= self.burst:
            return f"workers keep exiting ({len(self._exits)} in {self.window:g} s)"
        return ""

    def run(self) -> str:
        """Serve until SIGINT or SIGTERM. Returns why the workers stopped on their own (empty
        after a signal)."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._stop)
        processes = [self._start() for _ in range(self.count)]
        while not self.stopping.wait(0.5):
            for index, process in enumerate(processes):
                if process.is_alive():
                    continue
                self.failure = self._give_up(process)
                if self.failure:
                    log.error("%s; stopping", self.failure)
                    self.stopping.set()
                    break
                log.warning("worker %s exited (%s); starting another", process.pid,
                            process.exitcode)  # fmt: skip
                processes[index] = self._start()
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
        return self.failure
