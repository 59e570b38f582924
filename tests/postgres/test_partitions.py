"""Monthly partitions of flow_run_history / audit_log: created ahead, default partition,
retention by dropping partitions, and partition pruning in query plans."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import psycopg2
import pytest

from memory_resources.clock import ManualClock
from memory_resources.errors import MemoryValidationError
from memory_resources.records import FlowRunWrite
from memory_resources.stores.postgres import PostgresStore
from tests.fixtures.postgres import make_postgres_store

MAY_15_2031 = dt.datetime(2031, 5, 15, 12, tzinfo=dt.timezone.utc).timestamp()


def _partitions(store: PostgresStore, parent: str) -> list[str]:
    def run(cur: psycopg2.extensions.cursor) -> list[str]:
        cur.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n"
            " ON n.oid = p.relnamespace WHERE n.nspname = %s AND p.relname = %s"
            " AND c.relkind IN ('r', 'p') ORDER BY 1", (store.schema, parent))
        return [row[0] for row in cur.fetchall()]

    return list(store.pool.run(run))


def _where(store: PostgresStore, run_id: str) -> str:
    def run(cur: psycopg2.extensions.cursor) -> str:
        cur.execute(f'SELECT tableoid::regclass::text FROM "{store.schema}".flow_run_history'
                    " WHERE run_id = %s", (run_id,))
        row = cur.fetchone()
        assert row is not None
        return str(row[0])

    return str(store.pool.run(run))


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock at 2031-05-15 12:00 UTC."""
    return ManualClock(start=MAY_15_2031)


@pytest.fixture
def store(any_pg: tuple[str, str], clock: ManualClock) -> Iterator[PostgresStore]:
    """A store on its own schema of each PostgreSQL, driven by the manual clock."""
    dsn, schema = any_pg
    made = make_postgres_store(dsn, schema, clock=clock)
    yield made
    made.close()


def test_connect_creates_this_month_and_six_ahead_plus_default(store: PostgresStore) -> None:
    """A store that may migrate (owner, auto_migrate) gets May-November 2031 and a default
    partition on connect (the migrations created the months around the real date)."""
    expected = ["_default"] + [f"_p2031_{m:02d}" for m in range(5, 12)]
    for parent in ("flow_run_history", "audit_log"):
        names = _partitions(store, parent)
        assert [parent + suffix for suffix in expected] == [
            name for name in names if name.endswith("_default") or "_p2031_" in name]


def test_entering_a_new_month_creates_partitions_without_cron(
    store: PostgresStore, clock: ManualClock
) -> None:
    """A write after the clock moved into September creates the partitions up to March."""
    clock.advance(120 * 86400)  # 2031-09-12
    store.write_flow_run(FlowRunWrite("flow", "run-sept", status="running"))
    names = _partitions(store, "flow_run_history")
    assert "flow_run_history_p2032_03" in names
    assert _where(store, "run-sept").endswith("flow_run_history_p2031_09")


def test_run_keeps_its_partition_when_later_states_arrive_in_another_month(
    store: PostgresStore, clock: ManualClock
) -> None:
    """The partition key is the run's creation time: a later state updates the same row."""
    store.write_flow_run(FlowRunWrite("flow", "long-run", status="running"))
    clock.advance(40 * 86400)  # June
    row = store.write_flow_run(FlowRunWrite("flow", "long-run", status="completed"))
    assert row["status"] == "completed"
    assert row["created_at"].startswith("2031-05-15")
    assert len(store.read_flow_runs("flow")) == 1
    assert _where(store, "long-run").endswith("_p2031_05")


def test_outliers_go_to_the_default_partition_and_move_when_their_month_is_created(
    store: PostgresStore,
) -> None:
    """A run created years ago lands in the default partition; creating its month's
    partition later moves the row there, and it stays readable throughout."""
    store.write_flow_run(FlowRunWrite("flow", "old", created_at="2020-03-04T05:06:07+00:00"))
    assert _where(store, "old").endswith("flow_run_history_default")
    created = store.create_partitions(dt.datetime(2020, 3, 1, tzinfo=dt.timezone.utc), 0)
    assert created == 2  # flow_run_history_p2020_03 and audit_log_p2020_03
    assert _where(store, "old").endswith("flow_run_history_p2020_03")
    row = store.read_flow_runs("flow", "old")[0]
    assert row["created_at"] == "2020-03-04T05:06:07.000000+00:00"


def test_prune_drops_whole_old_partitions_and_their_rows(
    store: PostgresStore, clock: ManualClock
) -> None:
    """prune(90 days) on 2031-06-15 drops the Jan-Feb partitions (entirely older than the
    cut-off), keeps March onwards, forgets the dropped runs and purges expired contexts."""
    store.create_partitions(dt.datetime(2031, 1, 1, tzinfo=dt.timezone.utc), 4)
    for month in range(1, 6):
        store.write_flow_run(FlowRunWrite(
            "flow", f"run-{month}", created_at=f"2031-{month:02d}-10T00:00:00+00:00"))
    store.set_context("short-lived", {"x": 1}, ttl=60)
    clock.advance(31 * 86400)  # 2031-06-15
    result = store.prune(dt.timedelta(days=90))
    assert result["cutoff"].startswith("2031-03-17")
    dropped_2031 = sorted(n for n in result["dropped_partitions"] if "_p2031_" in n)
    assert dropped_2031 == ["audit_log_p2031_01", "audit_log_p2031_02",
                            "flow_run_history_p2031_01", "flow_run_history_p2031_02"]
    kept = _partitions(store, "flow_run_history")
    assert {"flow_run_history_p2031_03", "flow_run_history_default"} <= set(kept)
    assert all(name >= "flow_run_history_p2031_03" for name in kept if "_p" in name)
    assert result["expired_contexts_purged"] == 1
    remaining = sorted(r["run_id"] for r in store.read_flow_runs("flow"))
    assert remaining == ["run-3", "run-4", "run-5"]
    assert store.read_flow_runs("flow", "run-1") == []
    # The dropped run can be written again as a new run (its key was forgotten).
    again = store.write_flow_run(FlowRunWrite("flow", "run-1", status="running"))
    assert again["created_at"].startswith("2031-06-15")


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), 1e300,
                                 dt.timedelta.max, "30d", True])
def test_prune_refuses_a_bad_age(store: PostgresStore, bad: object) -> None:
    """A non-positive, non-finite, over-1000-year or non-numeric age is a
    MemoryValidationError naming older_than (never an OverflowError), and drops nothing."""
    before = _partitions(store, "flow_run_history")
    with pytest.raises(MemoryValidationError) as info:
        store.prune(bad)  # type: ignore[arg-type]
    assert info.value.field == "older_than"
    assert _partitions(store, "flow_run_history") == before


def test_prune_with_the_longest_age_drops_nothing(store: PostgresStore) -> None:
    """An age just under the 1000-year limit is a cut-off in the 11th century, which
    PostgreSQL holds: nothing is dropped, nothing raised."""
    before = _partitions(store, "flow_run_history")
    result = store.prune(dt.timedelta(days=365 * 999))
    assert result["cutoff"].startswith("10") and result["dropped_partitions"] == []
    assert _partitions(store, "flow_run_history") == before


def test_time_range_reads_prune_partitions_in_the_plan(store: PostgresStore) -> None:
    """EXPLAIN of a one-month history read touches only that month's partition."""
    statement = (store.statement("history.read") + " WHERE h.flow_id = %(flow_id)s"
                 " AND h.created_at >= %(since)s AND h.created_at < %(until)s"
                 " ORDER BY h.created_at DESC, h.seq DESC LIMIT 10")
    params = {"flow_id": "flow", "since": dt.datetime(2031, 6, 1, tzinfo=dt.timezone.utc),
              "until": dt.datetime(2031, 7, 1, tzinfo=dt.timezone.utc)}

    def explain(cur: psycopg2.extensions.cursor) -> str:
        cur.execute("EXPLAIN " + statement, params)
        return "\n".join(row[0] for row in cur.fetchall())

    plan = store.pool.run(explain)
    assert "flow_run_history_p2031_06" in plan
    for other in ("_p2031_05", "_p2031_07", "_p2031_08", "_default"):
        assert other not in plan
