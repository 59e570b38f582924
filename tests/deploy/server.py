"""A real ``prefect server start`` on a loopback port, in its own temporary Prefect home.

Used by the deployment, cancellation and UI tests. The server (and anything started with
:meth:`PrefectServer.popen`) is stopped by :meth:`PrefectServer.stop`, which kills the
whole process group so no uvicorn or worker child survives the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent
PREFECT = str(VENV_BIN / "prefect")
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrefectServer:
    """One Prefect API + UI server bound to 127.0.0.1, with a sqlite database in ``home``."""

    def __init__(self, home: Path, *, ui: bool = False) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api"
        self.ui = ui
        self.log_path = home / "server.log"
        self._children: list[subprocess.Popen[bytes]] = []
        self._server: subprocess.Popen[bytes] | None = None

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a client process (CLI, worker, served flow) of this server."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("PREFECT_") and k != "PYTEST_CURRENT_TEST"}
        env.update({
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_CLI_PROMPT": "false",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "PREFECT_API_DATABASE_CONNECTION_URL":
                f"sqlite+aiosqlite:///{self.home / 'prefect.db'}",
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(self.port),
            "PREFECT_UI_ENABLED": "true" if self.ui else "false",
            "PREFECT_UI_API_URL": self.api_url,
            "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
            "PREFECT_UI_SHOW_PROMOTIONAL_CONTENT": "false",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
            "MEMORY_RESOURCES_HOME": str(self.home / "memory_resources"),
            "PYTHONPATH": os.pathsep.join(
                [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        })
        env.update(extra)
        return env

    def start(self, timeout: float = 120.0) -> None:
        """Start the server and wait until ``/api/health`` answers."""
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self._server = subprocess.Popen(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
            + ([] if self.ui else ["--no-ui"]),
            env=self.env(), cwd=self.home, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._server.poll() is not None:
                raise RuntimeError(f"prefect server exited early:\n{self.tail()}")
            with contextlib.suppress(OSError, ValueError):
                if self.get("/api/health", timeout=2) is True:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"prefect server not healthy after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        """The last lines of the server's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def get(self, path: str, timeout: float = 10) -> Any:
        """GET ``path`` on the server, decoded from JSON."""
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            return json.loads(response.read())

    def post(self, path: str, body: Any, timeout: float = 10) -> Any:
        """POST JSON ``body`` to ``path``, decoded from JSON (None on an empty answer)."""
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return json.loads(raw) if raw else None

    def cli(self, args: Sequence[str], *, cwd: Path | None = None, timeout: float = 120,
            check: bool = True, program: str = PREFECT, **env: str
            ) -> subprocess.CompletedProcess[str]:
        """Run ``prefect <args>`` (or ``program``) against this server; raise with its
        output on failure."""
        result = subprocess.run(
            [program, *args], env=self.env(**env), cwd=cwd or REPO, text=True,
            capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{Path(program).name} {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}")
        return result

    def cli_python(self, code: str, *args: str, timeout: float = 120) -> str:
        """Run ``python -c code args...`` as a client of this server; its stdout."""
        result = subprocess.run(
            [sys.executable, "-c", code, *args], env=self.env(), cwd=REPO, text=True,
            capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise AssertionError(f"python client exited {result.returncode}\n"
                                 f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
        return result.stdout

    def popen(self, argv: Sequence[str], log_name: str, *, cwd: Path | None = None,
              **env: str) -> subprocess.Popen[bytes]:
        """Start a client process (worker, served flow) stopped with the server."""
        log = (self.home / log_name).open("ab")
        process = subprocess.Popen(
            list(argv), env=self.env(**env), cwd=cwd or REPO, stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        self._children.append(process)
        return process

    def log_of(self, log_name: str) -> str:
        """The output of a process started with :meth:`popen`."""
        try:
            return (self.home / log_name).read_text(errors="replace")[-6000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop every child process group, then the server's."""
        for process in [*self._children, *([self._server] if self._server else [])]:
            terminate(process)
        self._children.clear()
        self._server = None


def terminate(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group of ``process``, SIGKILL it after ``grace`` seconds."""
    if process.poll() is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # stray children of a finished leader
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_server(home: Path, *, ui: bool = False) -> Iterator[PrefectServer]:
    """A started server, stopped (with its children) on exit."""
    server = PrefectServer(home, ui=ui)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def wait_for(predicate: Any, timeout: float, interval: float = 0.5, what: str = "") -> Any:
    """Poll ``predicate()`` until it returns a truthy value; raise after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
