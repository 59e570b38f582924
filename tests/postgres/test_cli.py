"""`memory-resources migrate` and `memory-resources prune` against a real schema."""

from __future__ import annotations

import datetime as dt

import pytest
import typer
from typer.testing import CliRunner

from memory_resources.cli import app
from memory_resources.cli.postgres_commands import parse_duration

runner = CliRunner()


def test_migrate_prints_what_it_applied_then_nothing(postgres_dsn: str, pg_schema: str) -> None:
    """The first run lists every applied file; the second says the schema is up to date."""
    first = runner.invoke(app, ["migrate", "--dsn", postgres_dsn, "--schema", pg_schema])
    assert first.exit_code == 0, first.output
    assert "applied 001_create_memory_tables" in first.output
    assert "applied 003_add_memory_partitions" in first.output
    second = runner.invoke(app, ["migrate", "--dsn", postgres_dsn, "--schema", pg_schema])
    assert second.exit_code == 0
    assert "up to date" in second.output


def test_prune_reports_and_refuses_bad_durations(postgres_dsn: str, pg_schema: str) -> None:
    """prune --older-than 90d reports the cut-off; a bad duration is a usage error."""
    runner.invoke(app, ["migrate", "--dsn", postgres_dsn, "--schema", pg_schema])
    result = runner.invoke(app, ["prune", "--older-than", "90d", "--dsn", postgres_dsn,
                                 "--schema", pg_schema])
    assert result.exit_code == 0, result.output
    assert "cut-off" in result.output and "expired context" in result.output
    bad = runner.invoke(app, ["prune", "--older-than", "ninety", "--dsn", postgres_dsn])
    assert bad.exit_code == 2


def test_unsafe_schema_and_missing_dsn_exit_with_code_2(
    monkeypatch: pytest.MonkeyPatch, postgres_dsn: str
) -> None:
    """An unsafe --schema or no DSN at all exits 2 with an error message, running no SQL."""
    result = runner.invoke(app, ["migrate", "--dsn", postgres_dsn, "--schema", "x; DROP"])
    assert result.exit_code == 2
    monkeypatch.delenv("MEMORY_RESOURCES_POSTGRES_DSN", raising=False)
    missing = runner.invoke(app, ["migrate"])
    assert missing.exit_code == 2


@pytest.mark.parametrize(("text", "expected"), [
    ("90d", dt.timedelta(days=90)), ("12h", dt.timedelta(hours=12)),
    ("2w", dt.timedelta(weeks=2)), ("45s", dt.timedelta(seconds=45)),
])
def test_durations_parse(text: str, expected: dt.timedelta) -> None:
    """--older-than accepts a positive number with s, m, h, d or w."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["0d", "-3d", "3", "3y", "", "52200w", "9" * 30 + "d"])
def test_bad_durations_are_refused(text: str) -> None:
    """Zero, negative, unit-less, unknown-unit or over-1000-year durations are refused
    (a typed BadParameter, never an OverflowError)."""
    with pytest.raises(typer.BadParameter):
        parse_duration(text)
