"""Shared plumbing for the throwaway server launchers: free ports, readiness polling, logs."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

LOOPBACK = "127.0.0.1"


class ServerStartError(RuntimeError):
    """A throwaway server did not start or did not answer in time."""


ServerT = TypeVar("ServerT", bound="ManagedServer")


class ManagedServer:
    """Context-manager protocol of every launcher: ``with X() as s`` starts it, and closes
    it on exit or when starting fails. Subclasses define ``start()`` (returning self) and
    ``close()``."""

    def start(self: ServerT) -> ServerT:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: ServerT) -> ServerT:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_port_with_bus(offset: int = 10000, host: str = LOOPBACK) -> int:
    """A free port ``p`` such that ``p + offset`` is a valid, free port too (Redis Cluster
    listens on its bus port ``p + 10000``)."""
    for _ in range(200):
        port = free_port(host)
        if port + offset > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port + offset))
            except OSError:
                continue
        return port
    raise ServerStartError("no free port pair for a cluster node")


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, or a note that it is missing."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def wait_until_ready(
    probe: Callable[[], bool],
    proc: subprocess.Popen[bytes],
    *,
    what: str,
    log: Path,
    timeout: float,
) -> None:
    """Poll ``probe`` until it is true; fail fast with the log when ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        if probe():
            return
        code = proc.poll()
        if code is not None:
            raise ServerStartError(f"{what} exited with code {code}:\n{log_tail(log)}")
        if time.monotonic() > deadline:
            raise ServerStartError(f"{what} did not answer within {timeout}s:\n{log_tail(log)}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def terminate(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    """Send ``sig`` to ``proc`` and wait; escalate to SIGKILL when it does not exit in time."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


def wait_port_closed(host: str, port: int, timeout: float = 10.0) -> None:
    """Wait until nothing accepts connections on ``host:port`` any more."""
    deadline = time.monotonic() + timeout
    while port_accepts(host, port, timeout=0.2):
        if time.monotonic() > deadline:
            raise ServerStartError(f"port {host}:{port} still accepts connections")
        time.sleep(0.05)


_LIVE: dict[int, Callable[[], None]] = {}


def track(key: int, closer: Callable[[], None]) -> None:
    """Remember a started server so it is closed at interpreter exit if nobody else did."""
    _LIVE[key] = closer


def untrack(key: int) -> None:
    """Forget a server that has been closed."""
    _LIVE.pop(key, None)


@atexit.register
def _close_leftovers() -> None:
    for closer in list(_LIVE.values()):
        with contextlib.suppress(Exception):
            closer()
    _LIVE.clear()
