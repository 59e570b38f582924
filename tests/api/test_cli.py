"""`memory-resources health` and `memory-resources stats` on the process default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memory_resources import default
from memory_resources.cli import app

runner = CliRunner()


def test_health_json_reports_healthy(memory_home: Path) -> None:
    """`health --json` prints the health report and exits 0 on the embedded default."""
    result = runner.invoke(app, ["health", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["overall_status"] == "healthy"
    assert report["adapters"]["redis"]["backend"] == "sqlite"


def test_health_table_lists_every_adapter(memory_home: Path) -> None:
    """`health` renders a table naming each adapter and its backend."""
    result = runner.invoke(app, ["health"])
    assert result.exit_code == 0, result.output
    for word in ("redis", "postgres", "vector", "sqlite", "numpy", "healthy"):
        assert word in result.output


def test_health_exits_1_when_unhealthy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                       ) -> None:
    """With every store unusable `health` reports unhealthy and exits with code 1."""
    blocker = tmp_path / "file"
    blocker.write_text("blocks directory creation")
    monkeypatch.setenv("MEMORY_RESOURCES_HOME", str(blocker / "home"))
    for name in (default.ENV_REDIS_URL, default.ENV_POSTGRES_DSN, default.ENV_VECTOR_BACKEND,
                 default.ENV_VECTOR_DIMENSION):
        monkeypatch.delenv(name, raising=False)
    default.reset_memory_api()
    try:
        result = runner.invoke(app, ["health", "--json"])
        assert result.exit_code == 1, result.output
        assert json.loads(result.stdout)["overall_status"] == "unhealthy"
    finally:
        default.reset_memory_api()


def test_stats_json_and_table(memory_home: Path) -> None:
    """`stats --json` has the spec's keys; `stats` renders one table per adapter."""
    default.get_memory_api().index_embedding("cli", [1.0] + [0.0] * 767)
    result = runner.invoke(app, ["stats", "--json"])
    assert result.exit_code == 0, result.output
    adapters = json.loads(result.stdout)["adapters"]
    assert adapters["vector"]["total_embeddings"] == 1
    assert "used_memory" in adapters["redis"]
    assert "active_connections" in adapters["postgres"]
    table = runner.invoke(app, ["stats"])
    assert table.exit_code == 0, table.output
    assert "total_embeddings" in table.output and "used_memory" in table.output


def test_bad_configuration_exits_2_with_a_message(memory_home: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad MEMORY_RESOURCES_VECTOR_DIMENSION is reported as an error, exit code 2."""
    monkeypatch.setenv(default.ENV_VECTOR_DIMENSION, "many")
    result = runner.invoke(app, ["stats"])
    assert result.exit_code == 2
    assert default.ENV_VECTOR_DIMENSION in result.output


def test_unreachable_redis_is_degraded_not_unhealthy(memory_home: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """With Redis unreachable only its adapter is unhealthy: overall degraded, exit code 0."""
    monkeypatch.setenv(default.ENV_REDIS_URL, "redis://127.0.0.1:1/0")
    result = runner.invoke(app, ["health", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["overall_status"] == "degraded"
    assert report["adapters"]["redis"]["status"] == "unhealthy"
    assert report["adapters"]["redis"]["backend"] == "redis"
    assert report["adapters"]["postgres"]["status"] == "healthy"


def test_console_script_prints_clean_json(tmp_path: Path) -> None:
    """The installed `memory-resources` script prints only JSON on stdout."""
    script = Path(sys.executable).parent / "memory-resources"
    env = {"MEMORY_RESOURCES_HOME": str(tmp_path), "PATH": os.environ.get("PATH", "")}
    done = subprocess.run([str(script), "stats", "--json"], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["adapters"]["vector"]["total_embeddings"] == 0
