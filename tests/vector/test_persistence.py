"""Persistence of the numpy index: SQLite table, file snapshot + log, lazy load, errors."""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memory_resources.config import EmbeddedConfig, VectorConfig
from memory_resources.errors import BackendError, ConfigurationError, SchemaError
from memory_resources.stores.numpy_index import (
    FileVectorPersistence,
    NumpyVectorIndex,
    SqliteVectorPersistence,
    file_store,
)


def file_index(path: Path, dimension: int = 4, **options: Any) -> NumpyVectorIndex:
    """An index persisted in the directory ``path``."""
    return NumpyVectorIndex(dimension, "cosine", "ns",
                            persistence=FileVectorPersistence(path, **options))


def test_from_config_defaults_to_the_embedded_sqlite_table(tmp_path: Path) -> None:
    """Without ``path`` the index persists in table vector_embeddings of the embedded file,
    with the documented columns, float32 BLOBs and JSON metadata."""
    db = tmp_path / "memory.db"
    config = VectorConfig.model_validate({"dimension": 3, "metric": "euclidean"})
    index = NumpyVectorIndex.from_config(config, EmbeddedConfig.model_validate({"path": str(db)}))
    index.upsert(["a"], [[1.0, 2.0, 3.0]], [{"type": "document"}])
    index.close()
    with sqlite3.connect(db) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(vector_embeddings)")]
        row = conn.execute("SELECT namespace, id, dimension, vector, metadata, updated_at "
                           "FROM vector_embeddings").fetchone()
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert columns == ["namespace", "id", "dimension", "vector", "metadata", "updated_at"]
    assert row[:3] == ("default", "a", 3)
    assert np.frombuffer(row[3], dtype="<f4").tolist() == [1.0, 2.0, 3.0]
    assert row[4] == '{"type":"document"}' and row[5].endswith("+00:00")
    assert mode == "wal"


def test_from_config_with_path_uses_the_file_store(tmp_path: Path) -> None:
    """With ``path`` set the index persists in that directory and reloads from it."""
    config = VectorConfig.model_validate(
        {"backend": "numpy", "dimension": 2, "path": str(tmp_path / "vec")}
    )
    index = NumpyVectorIndex.from_config(config)
    index.upsert(["x"], [[1.0, 0.0]])
    assert (tmp_path / "vec" / "default.0.log").exists()
    assert NumpyVectorIndex.from_config(config).count() == 1


def test_from_config_refuses_other_backends() -> None:
    """A config naming another backend is a configuration error."""
    with pytest.raises(ConfigurationError):
        NumpyVectorIndex.from_config(VectorConfig.model_validate({"backend": "pgvector"}))


@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_dimension_mismatch_is_a_clear_error_at_load(tmp_path: Path, kind: str) -> None:
    """Opening persisted 4-d vectors with dimension 5 raises SchemaError naming both."""
    def persistence() -> Any:
        if kind == "sqlite":
            return SqliteVectorPersistence(tmp_path / "v.db")
        return FileVectorPersistence(tmp_path / "dir")

    NumpyVectorIndex(4, "cosine", "ns", persistence=persistence()).upsert(["a"], [[1, 0, 0, 0]])
    wrong = NumpyVectorIndex(5, "cosine", "ns", persistence=persistence())
    with pytest.raises(SchemaError, match=r"holds 4-dimension vectors.*dimension 5"):
        wrong.count()
    report = wrong.health_check()
    assert report["status"] == "unhealthy" and "4-dimension" in report["error"]


def test_data_loads_lazily_on_first_use(tmp_path: Path) -> None:
    """Construction and connect() read no vectors; the first call loads them."""
    file_index(tmp_path).upsert(["a", "b"], [[1, 0, 0, 0], [0, 1, 0, 0]])
    index = file_index(tmp_path)
    index.connect()
    assert index._matrix is None
    assert index.count() == 2
    assert index._matrix is not None


def test_close_drops_memory_and_reloads(tmp_path: Path) -> None:
    """close() frees the in-memory copy; the next call reloads the persisted state."""
    index = file_index(tmp_path)
    index.upsert(["a"], [[1, 0, 0, 0]], [{"k": 1}])
    index.close()
    assert index._matrix is None
    assert index.get("a")[1] == {"k": 1}


def test_failed_persistence_write_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the disk fails (fsync raises), upsert and delete raise BackendError, memory is
    unchanged and the half-written record is cut from the log."""
    index = file_index(tmp_path)
    index.upsert(["a"], [[1, 0, 0, 0]])
    size = (tmp_path / "ns.0.log").stat().st_size

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(file_store.os, "fsync", broken_fsync)
    with pytest.raises(BackendError, match="cannot write"):
        index.upsert(["b"], [[0, 1, 0, 0]])
    with pytest.raises(BackendError):
        index.delete(["a"])
    monkeypatch.undo()
    assert (tmp_path / "ns.0.log").stat().st_size == size
    assert index.count() == 1 and index.get("b") is None and index.get("a") is not None
    assert file_index(tmp_path).count() == 1


def test_failed_sqlite_write_changes_nothing(tmp_path: Path) -> None:
    """A SQLite error during the write transaction raises BackendError; nothing changes."""
    db = tmp_path / "v.db"
    index = NumpyVectorIndex(2, "euclidean", "ns", persistence=SqliteVectorPersistence(db))
    index.upsert(["a"], [[1, 0]])
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON vector_embeddings "
                     "BEGIN SELECT RAISE(ABORT, 'refused'); END")
    with pytest.raises(BackendError, match="refused"):
        index.upsert(["b", "c"], [[0, 1], [1, 1]])
    assert index.count() == 1
    index.close()
    assert index.count() == 1


def test_torn_log_tail_is_ignored_and_cut(tmp_path: Path) -> None:
    """A half-written last record is ignored at load and overwritten by the next write."""
    index = file_index(tmp_path)
    index.upsert(["a"], [[1, 0, 0, 0]])
    index.upsert(["b"], [[0, 1, 0, 0]])
    log = tmp_path / "ns.0.log"
    blob = log.read_bytes()
    log.write_bytes(blob[:-7])  # the second record is torn
    reopened = file_index(tmp_path)
    assert reopened.count() == 1 and reopened.get("b") is None
    reopened.upsert(["c"], [[0, 0, 1, 0]])
    assert sorted(item for item in ("a", "b", "c") if file_index(tmp_path).get(item)) == [
        "a", "c"
    ]


def test_corrupt_record_stops_replay(tmp_path: Path) -> None:
    """A record whose CRC does not match ends the replay (later bytes are not trusted)."""
    index = file_index(tmp_path)
    index.upsert(["a"], [[1, 0, 0, 0]])
    size = (tmp_path / "ns.0.log").stat().st_size
    index.upsert(["b"], [[0, 1, 0, 0]])
    log = tmp_path / "ns.0.log"
    blob = bytearray(log.read_bytes())
    blob[size + 20] ^= 0xFF
    log.write_bytes(bytes(blob))
    assert file_index(tmp_path).count() == 1


def test_compaction_rewrites_snapshot_and_drops_old_log(tmp_path: Path) -> None:
    """When the log outgrows the snapshot it is folded into a new snapshot generation."""
    index = file_index(tmp_path, dimension=32, compact_min_bytes=10_000)
    rng = np.random.default_rng(0)
    for step in range(12):
        index.upsert([f"s{step}_{i}" for i in range(30)], rng.standard_normal((30, 32)),
                     [{"step": step}] * 30)
        index.delete([f"s{step}_0"])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "ns.snapshot" in names
    assert [n for n in names if n.endswith(".log")] != ["ns.0.log"]
    assert not any(n.endswith(".tmp") for n in names)
    reopened = file_index(tmp_path, dimension=32)
    assert reopened.count() == 12 * 29
    for step in range(12):
        vector, metadata = reopened.get(f"s{step}_5")
        np.testing.assert_array_equal(vector, index.get(f"s{step}_5")[0])
        assert metadata == {"step": step}


def test_stale_log_after_crash_between_rename_and_unlink_is_ignored(tmp_path: Path) -> None:
    """A log of an older generation (left by a crash after the rename) is not replayed."""
    index = file_index(tmp_path, compact_min_bytes=1)
    index.upsert(["a"], [[1, 0, 0, 0]])  # compacts at once: snapshot gen 1
    stale = tmp_path / "ns.0.log"
    other = file_index(tmp_path / "elsewhere")
    other.upsert(["ghost"], [[0, 1, 0, 0]])
    stale.write_bytes((tmp_path / "elsewhere" / "ns.0.log").read_bytes())
    reopened = file_index(tmp_path)
    assert reopened.count() == 1 and reopened.get("ghost") is None


def test_sqlite_persistence_shares_the_file_between_namespaces(tmp_path: Path) -> None:
    """Two namespaces in one SQLite file keep separate rows; stats report sizes."""
    db = tmp_path / "v.db"
    one = NumpyVectorIndex(2, "cosine", "one", persistence=SqliteVectorPersistence(db))
    two = NumpyVectorIndex(2, "cosine", "two", persistence=SqliteVectorPersistence(db))
    one.upsert(["a", "b"], [[1, 0], [0, 1]])
    two.upsert(["a"], [[1, 1]])
    stats = one.stats()
    assert stats["namespaces"] == {"one": 2, "two": 1} and stats["persisted_bytes"] > 0
    assert NumpyVectorIndex(2, "cosine", "two", persistence=SqliteVectorPersistence(db)
                            ).count() == 1


def test_pickled_index_reloads_from_persistence(tmp_path: Path) -> None:
    """A pickled index (e.g. crossing a task runner) drops its lock, connection and matrix
    and reloads the persisted vectors lazily."""
    index = NumpyVectorIndex(2, "cosine", "ns",
                             persistence=SqliteVectorPersistence(tmp_path / "v.db"))
    index.upsert(["a"], [[1, 0]], [{"k": "v"}])
    clone = pickle.loads(pickle.dumps(index))
    assert clone._matrix is None
    assert clone.get("a")[1] == {"k": "v"}
    clone.upsert(["b"], [[0, 1]])
    assert clone.count() == 2


def test_pickled_memory_only_index_keeps_its_vectors() -> None:
    """Without persistence the pickled index carries its vectors and filter columns."""
    index = NumpyVectorIndex(2, "euclidean")
    index.upsert(["a", "b"], [[1, 0], [0, 1]], [{"t": "x"}, {"t": "y"}])
    clone = pickle.loads(pickle.dumps(index))
    assert [m["id"] for m in clone.query([0, 1], filter={"t": "y"})] == ["b"]


@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_other_writers_changes_are_picked_up(tmp_path: Path, kind: str) -> None:
    """An index reloads when another instance (another process, in real use) wrote the
    namespace, and does not reload after its own writes or unrelated writes."""
    def make() -> NumpyVectorIndex:
        persistence: Any = (SqliteVectorPersistence(tmp_path / "v.db") if kind == "sqlite"
                            else FileVectorPersistence(tmp_path / "dir"))
        return NumpyVectorIndex(2, "euclidean", "ns", persistence=persistence)

    reader, writer = make(), make()
    reader.upsert(["a"], [[1, 0]])
    matrix = reader._matrix
    reader.upsert(["b"], [[0, 1]])
    assert reader.count() == 2 and reader._matrix is matrix  # own writes: no reload
    if kind == "sqlite":
        with sqlite3.connect(tmp_path / "v.db") as conn:  # an unrelated table changes
            conn.execute("CREATE TABLE IF NOT EXISTS other (x)")
            conn.execute("INSERT INTO other VALUES (1)")
        assert reader.count() == 2 and reader._matrix is matrix
    writer.upsert(["c"], [[5, 5]], [{"from": "writer"}])
    writer.delete(["a"])
    assert reader.count() == 2
    assert reader.get("c")[1] == {"from": "writer"} and reader.get("a") is None
    assert [m["id"] for m in reader.query([5, 5], top_k=1)] == ["c"]


def test_two_processes_writing_one_sqlite_file_lose_nothing(tmp_path: Path) -> None:
    """Two real processes upserting into one namespace of one SQLite file concurrently
    lose no write, and an index opened afterwards sees both processes' rows."""
    import subprocess
    import sys

    from ._sqlite_worker import BATCHES, DIM, ROWS

    db = tmp_path / "shared.db"
    root = Path(__file__).resolve().parents[2]
    procs = [subprocess.Popen([sys.executable, "-m", "tests.vector._sqlite_worker", str(db), p],
                              cwd=root, stdout=subprocess.PIPE, text=True)
             for p in ("left", "right")]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    seen = [int([ln for ln in out.split("\n") if ln.strip().isdigit()][-1]) for out in outputs]
    assert max(seen) == 2 * BATCHES * ROWS  # the later finisher saw the other's rows too
    index = NumpyVectorIndex(DIM, "cosine", "shared", persistence=SqliteVectorPersistence(db))
    assert index.count() == 2 * BATCHES * ROWS
    assert index.get(f"left-{BATCHES - 1}-0")[1] == {"p": "left"}


def test_metadata_larger_than_max_payload_bytes_is_refused(tmp_path: Path) -> None:
    """from_config applies the embedded max_payload_bytes to each vector's metadata."""
    from memory_resources.errors import PayloadTooLargeError

    index = NumpyVectorIndex.from_config(
        VectorConfig.model_validate({"dimension": 2}),
        EmbeddedConfig.model_validate({"path": str(tmp_path / "m.db"), "max_payload_bytes": 64}),
    )
    with pytest.raises(PayloadTooLargeError) as info:
        index.upsert(["a", "b"], [[1, 0], [0, 1]], [{"ok": 1}, {"text": "x" * 100}])
    assert info.value.field == "metadata[1]"
    assert index.count() == 0
