"""``migrate --status`` and ``prune --dry-run`` against a real PostgreSQL schema: they
report and change nothing."""

from __future__ import annotations

import json

import psycopg2
from typer.testing import CliRunner

from memory_resources.cli import app
from memory_resources.stores.postgres.migrate import load_migrations

runner = CliRunner()


def _partitions(dsn: str, schema: str) -> set[str]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))
        names = {row[0] for row in cur.fetchall()}
    conn.close()
    return {name for name in names if "_p20" in name}


def test_migrate_status_lists_pending_then_applied(postgres_dsn: str, pg_schema: str) -> None:
    """On an empty schema every file is pending and nothing gets applied; after migrate,
    every file is applied and none pending."""
    files = load_migrations()
    before = runner.invoke(app, ["migrate", "--status", "--json", "--dsn", postgres_dsn,
                                 "--schema", pg_schema])
    assert before.exit_code == 0, before.output
    status = json.loads(before.output)
    assert status["applied"] == []
    assert [m["version"] for m in status["pending"]] == [m.version for m in files]
    again = runner.invoke(app, ["migrate", "--status", "--dsn", postgres_dsn,
                                "--schema", pg_schema])
    assert f"0 applied, {len(files)} pending" in again.output
    assert runner.invoke(app, ["migrate", "--dsn", postgres_dsn, "--schema", pg_schema]
                         ).exit_code == 0
    after = runner.invoke(app, ["migrate", "--status", "--dsn", postgres_dsn,
                                "--schema", pg_schema])
    assert after.exit_code == 0, after.output
    assert f"{len(files)} applied, 0 pending" in after.output
    assert f"applied  {files[0].version:>4} {files[0].name} at " in after.output


def test_prune_dry_run_names_old_partitions_and_drops_none(postgres_dsn: str,
                                                           pg_schema: str) -> None:
    """With month partitions of 2020 present, ``prune --dry-run`` lists them and leaves
    them; the real prune then drops exactly those."""
    assert runner.invoke(app, ["migrate", "--dsn", postgres_dsn, "--schema", pg_schema]
                         ).exit_code == 0
    with psycopg2.connect(postgres_dsn) as conn, conn.cursor() as cur:
        cur.execute(f'SELECT count(*) FROM "{pg_schema}".memory_create_partitions('
                    "'2020-01-01T00:00:00Z', 1)")
    conn.close()
    old = {name for name in _partitions(postgres_dsn, pg_schema) if "_p2020_" in name}
    assert len(old) >= 2
    dry = runner.invoke(app, ["prune", "--older-than", "365d", "--dry-run", "--json",
                              "--dsn", postgres_dsn, "--schema", pg_schema])
    assert dry.exit_code == 0, dry.output
    preview = json.loads(dry.output)
    assert preview["dry_run"] is True
    assert set(preview["dropped_partitions"]) == old
    assert old <= _partitions(postgres_dsn, pg_schema)
    real = runner.invoke(app, ["prune", "--older-than", "365d", "--json",
                               "--dsn", postgres_dsn, "--schema", pg_schema])
    assert real.exit_code == 0, real.output
    assert set(json.loads(real.output)["dropped_partitions"]) == old
    assert not old & _partitions(postgres_dsn, pg_schema)
