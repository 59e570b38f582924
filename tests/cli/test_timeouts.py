"""Every command takes --timeout and ends within it; `health --strict` fails on degraded."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
from typer.testing import CliRunner

from memory_resources import default
from memory_resources.cli import app
from memory_resources.cli.guard import GRACE
from tests.servers.proxy import TcpProxy

runner = CliRunner()
SLACK = 1.0  # thread start-up on a loaded 2-core machine


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """MEMORY_RESOURCES_HOME in a temporary folder, no backend env vars, a fresh default."""
    monkeypatch.setenv("MEMORY_RESOURCES_HOME", str(tmp_path / "home"))
    for name in (default.ENV_REDIS_URL, default.ENV_POSTGRES_DSN, default.ENV_VECTOR_BACKEND,
                 default.ENV_VECTOR_DIMENSION):
        monkeypatch.delenv(name, raising=False)
    default.reset_memory_api()
    yield tmp_path / "home"
    default.reset_memory_api()


@pytest.fixture
def hung_postgres(postgres_dsn: str) -> Iterator[str]:
    """A DSN whose server accepts connections and never answers (a black-holed proxy)."""
    target = urlsplit(postgres_dsn)
    with TcpProxy("127.0.0.1", target.port or 5432) as proxy:
        proxy.blackhole()
        yield f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres"


def _commands(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every leaf command of ``group`` (a click-style group) with its full name."""
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield prefix + name, command


def test_every_command_takes_timeout() -> None:
    """Each command (and subcommand) has a --timeout option with a positive default."""
    found = dict(_commands(typer.main.get_command(app)))
    assert {"health", "stats", "migrate", "prune", "maintain", "history", "outputs",
            "outbox status", "outbox replay"} <= set(found)
    for name, command in found.items():
        options = {opt: param for param in command.params for opt in param.opts}
        assert "--timeout" in options, name
        assert float(options["--timeout"].default) > 0, name


def test_migrate_against_a_hung_server_ends_within_its_timeout(hung_postgres: str) -> None:
    """`migrate --timeout 1.5` on a server that never answers exits 2 with a typed error
    in about 1.5 s (was 2 minutes)."""
    started = time.monotonic()
    result = runner.invoke(app, ["migrate", "--dsn", hung_postgres, "--timeout", "1.5"])
    took = time.monotonic() - started
    assert result.exit_code == 2, result.output
    assert "error:" in result.output
    assert took < 1.5 + SLACK


def test_health_strict_exits_1_when_degraded(home: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    """With only Redis unreachable the store is degraded: `health` exits 0, `health
    --strict` exits 1."""
    monkeypatch.setenv(default.ENV_REDIS_URL, "redis://127.0.0.1:1/0")
    relaxed = runner.invoke(app, ["health", "--json"])
    assert relaxed.exit_code == 0, relaxed.output
    assert json.loads(relaxed.stdout)["overall_status"] == "degraded"
    strict = runner.invoke(app, ["health", "--json", "--strict"])
    assert strict.exit_code == 1, strict.output


def test_health_strict_is_0_when_healthy(home: Path) -> None:
    """On the embedded default every backend is healthy: `health --strict` exits 0."""
    result = runner.invoke(app, ["health", "--strict"])
    assert result.exit_code == 0, result.output


def test_health_strict_fails_on_a_bad_url(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Redis URL that is not a URL makes `health --strict` exit non-zero."""
    monkeypatch.setenv(default.ENV_REDIS_URL, "notaurl")
    result = runner.invoke(app, ["health", "--strict"])
    assert result.exit_code != 0, result.output


def test_health_against_a_hung_postgres_ends_within_its_timeout(
    home: Path, monkeypatch: pytest.MonkeyPatch, hung_postgres: str
) -> None:
    """`health --strict --timeout 1` with a PostgreSQL that never answers ends non-zero
    within the timeout (plus the guard's grace)."""
    monkeypatch.setenv(default.ENV_POSTGRES_DSN, hung_postgres)
    started = time.monotonic()
    result = runner.invoke(app, ["health", "--strict", "--timeout", "1"])
    took = time.monotonic() - started
    assert result.exit_code != 0, result.output
    assert took < 1 + GRACE + SLACK
