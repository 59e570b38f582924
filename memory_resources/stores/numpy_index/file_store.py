"""Crash-safe file persistence: a snapshot per namespace plus an append-only log.

Layout in the directory ``path``::

    <namespace>.snapshot       header, ids + metadata (JSON), float32 matrix, CRC32
    <namespace>.<gen>.log      batches written after snapshot generation <gen>

A write batch is appended to the log as one record (magic, length, CRC32, payload) and
fsync'ed. Loading replays the snapshot and then every *complete* log record; a record
torn by a crash (short or failing its CRC) ends the replay and is cut off before the next
append, so a kill mid-write leaves the previous state loadable.

When the log outgrows the snapshot it is compacted: the current state is read back from
disk, written to ``<namespace>.snapshot.tmp``, fsync'ed and renamed over the snapshot
(atomic), the directory fsync'ed, and only then the old log removed — a crash at any
point leaves either the old snapshot + old log or the new snapshot (stale logs of other
generations are ignored and deleted). Writers hold an ``fcntl`` lock on ``.lock`` so two
processes never interleave records; each process keeps its own in-memory copy, so use one
writer process per directory (or the SQLite default for several processes).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from ...errors import BackendError, SchemaError
from .persistence import LoadedVectors, dimension_mismatch

SNAPSHOT_MAGIC = b"MRVSNAP1"
RECORD_MAGIC = b"MRVL"
_SNAP_HEADER = struct.Struct("<8sIQQQ")  # magic, dimension, generation, count, meta bytes
_RECORD_HEADER = struct.Struct("<4sII")  # magic, payload length, crc32(payload)
_PAYLOAD_HEADER = struct.Struct("<IQ")  # json bytes, vector rows


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileVectorPersistence:
    """Snapshot + append log per namespace in a directory (see the module docstring)."""

    def __init__(self, path: str | Path, *, compact_min_bytes: int = 64 * 1024 * 1024) -> None:
        self.directory = Path(path).expanduser()
        self.location = str(self.directory)
        self.compact_min_bytes = compact_min_bytes
        self._valid_end: dict[str, tuple[int, int]] = {}  # namespace -> (generation, offset)
        self._seen: dict[str, tuple[int, int]] = {}  # namespace -> (generation, log size)

    # -- paths -------------------------------------------------------------------------
    def _snapshot(self, namespace: str) -> Path:
        return self.directory / f"{namespace}.snapshot"

    def _log(self, namespace: str, generation: int) -> Path:
        return self.directory / f"{namespace}.{generation}.log"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = open(self.directory / ".lock", "a+b")  # noqa: SIM115 - held below
        except OSError as exc:
            raise BackendError("numpy", f"cannot open {self.directory}: {exc}") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            handle.close()

    # -- reading -----------------------------------------------------------------------
    def _read_snapshot(self, namespace: str) -> tuple[int, int, list[str], list[str], Any]:
        """(generation, dimension, ids, metadata, vectors) of the snapshot, or generation 0."""
        path = self._snapshot(namespace)
        if not path.exists():
            return 0, 0, [], [], None
        blob = path.read_bytes()
        if len(blob) < _SNAP_HEADER.size + 4 or zlib.crc32(blob[:-4]) != struct.unpack(
            "<I", blob[-4:]
        )[0]:
            raise SchemaError("numpy", f"snapshot {path} is corrupt (CRC mismatch)")
        magic, dimension, generation, count, meta_len = _SNAP_HEADER.unpack_from(blob)
        if magic != SNAPSHOT_MAGIC:
            raise SchemaError("numpy", f"{path} is not a vector snapshot")
        start = _SNAP_HEADER.size
        entries = json.loads(blob[start : start + meta_len])
        vectors = np.frombuffer(
            blob, dtype="<f4", count=count * dimension, offset=start + meta_len
        ).reshape(count, dimension)
        return generation, dimension, [e[0] for e in entries], [e[1] for e in entries], vectors

    def _records(self, path: Path) -> Iterator[tuple[int, bytes]]:
        """(end offset, payload) of each complete record of a log file."""
        if not path.exists():
            return
        blob = path.read_bytes()
        offset = 0
        while offset + _RECORD_HEADER.size <= len(blob):
            magic, length, crc = _RECORD_HEADER.unpack_from(blob, offset)
            end = offset + _RECORD_HEADER.size + length
            if magic != RECORD_MAGIC or end > len(blob):
                return
            payload = blob[offset + _RECORD_HEADER.size : end]
            if zlib.crc32(payload) != crc:
                return
            yield end, payload
            offset = end

    def _state(self, namespace: str, dimension: int) -> tuple[int, dict[str, tuple[Any, str]]]:
        generation, stored_dim, ids, metadata, vectors = self._read_snapshot(namespace)
        if ids and stored_dim != dimension:
            raise dimension_mismatch(self.location, namespace, stored_dim, dimension)
        state: dict[str, tuple[Any, str]] = {
            item: (vectors[i], metadata[i]) for i, item in enumerate(ids)
        }
        end = 0
        for record_end, payload in self._records(self._log(namespace, generation)):
            end = record_end
            json_len, rows = _PAYLOAD_HEADER.unpack_from(payload)
            body = json.loads(payload[_PAYLOAD_HEADER.size : _PAYLOAD_HEADER.size + json_len])
            if rows and body["dimension"] != dimension:
                raise dimension_mismatch(self.location, namespace, body["dimension"], dimension)
            batch = np.frombuffer(
                payload, dtype="<f4", offset=_PAYLOAD_HEADER.size + json_len,
                count=rows * body["dimension"],
            ).reshape(rows, body["dimension"]) if rows else None
            for item in body["delete"]:
                state.pop(item, None)
            for i, (item, meta) in enumerate(body["upsert"]):
                state.pop(item, None)  # re-insert at the end, like the in-memory order
                state[item] = (batch[i] if batch is not None else None, meta)
        self._valid_end[namespace] = (generation, end)
        return generation, state

    def load(self, namespace: str, dimension: int) -> LoadedVectors:
        """Snapshot plus complete log records of ``namespace``."""
        try:
            with self._locked():
                generation, state = self._state(namespace, dimension)
                log = self._log(namespace, generation)
                self._seen[namespace] = (generation, log.stat().st_size if log.exists() else 0)
        except OSError as exc:
            raise BackendError("numpy", f"cannot read {self.directory}: {exc}") from exc
        if not state:
            return LoadedVectors([], np.empty((0, dimension), dtype=np.float32), [])
        ids = list(state)
        vectors = np.empty((len(ids), dimension), dtype=np.float32)
        for i, item in enumerate(ids):
            vectors[i] = state[item][0]
        return LoadedVectors(ids, vectors, [state[item][1] for item in ids])

    # -- writing -----------------------------------------------------------------------
    def write(
        self,
        namespace: str,
        dimension: int,
        ids: list[str],
        vectors: np.ndarray[Any, Any],
        metadata: list[str],
        deletes: list[str],
    ) -> None:
        """Append one record (fsync'ed); compact when the log outgrows the snapshot."""
        body = json.dumps(
            {"dimension": dimension, "upsert": [[item, metadata[i]] for i, item in
                                                enumerate(ids)], "delete": deletes},
            ensure_ascii=False, separators=(",", ":"),
        ).encode("utf-8")
        matrix = np.ascontiguousarray(vectors, dtype="<f4").tobytes() if ids else b""
        payload = _PAYLOAD_HEADER.pack(len(body), len(ids)) + body + matrix
        record = _RECORD_HEADER.pack(RECORD_MAGIC, len(payload), zlib.crc32(payload)) + payload
        try:
            with self._locked():
                generation, end = self._append_position(namespace, dimension)
                # our reader is in sync if it saw exactly what is on disk before this append
                in_sync = self._seen.get(namespace) == (generation, end)
                path = self._log(namespace, generation)
                with open(path, "r+b" if path.exists() else "w+b") as handle:
                    self._append(handle, end, record)
                self._valid_end[namespace] = (generation, end + len(record))
                if self._wants_compaction(namespace, generation, end + len(record)):
                    self._compact(namespace, dimension)
                if in_sync:  # else stale() stays true and the index reloads
                    self._seen[namespace] = self._valid_end[namespace]
        except OSError as exc:
            raise BackendError("numpy", f"cannot write to {self.directory}: {exc}") from exc

    def _append_position(self, namespace: str, dimension: int) -> tuple[int, int]:
        """(generation, offset) where the next record goes; re-reads after another writer."""
        generation = self._snapshot_generation(namespace)
        known = self._valid_end.get(namespace)
        path = self._log(namespace, generation)
        if known and known[0] == generation and path.exists() and (
            path.stat().st_size == known[1]
        ):
            return known
        self._state(namespace, dimension)  # recompute the valid end (torn tail, new writer)
        return self._valid_end[namespace]

    def _snapshot_generation(self, namespace: str) -> int:
        path = self._snapshot(namespace)
        if not path.exists():
            return 0
        with open(path, "rb") as handle:
            header = handle.read(_SNAP_HEADER.size)
        return int(_SNAP_HEADER.unpack(header)[2])

    @staticmethod
    def _append(handle: IO[bytes], end: int, record: bytes) -> None:
        handle.truncate(end)  # drop a torn tail left by a crash
        handle.seek(end)
        try:
            handle.write(record)
            handle.flush()
            os.fsync(handle.fileno())
        except OSError:
            with contextlib.suppress(OSError):  # best effort: leave no half-acknowledged record
                handle.truncate(end)
                os.fsync(handle.fileno())
            raise

    def _wants_compaction(self, namespace: str, generation: int, log_bytes: int) -> bool:
        snapshot = self._snapshot(namespace)
        snap_bytes = snapshot.stat().st_size if snapshot.exists() else 0
        return log_bytes >= max(self.compact_min_bytes, snap_bytes)

    def _compact(self, namespace: str, dimension: int) -> None:
        """Rewrite the snapshot from disk state (see the module docstring)."""
        generation, state = self._state(namespace, dimension)
        ids = list(state)
        entries = json.dumps(
            [[item, state[item][1]] for item in ids], ensure_ascii=False, separators=(",", ":")
        ).encode("utf-8")
        header = _SNAP_HEADER.pack(SNAPSHOT_MAGIC, dimension, generation + 1, len(ids),
                                   len(entries))
        tmp = self.directory / f"{namespace}.snapshot.tmp"
        crc = zlib.crc32(header)
        crc = zlib.crc32(entries, crc)
        with open(tmp, "wb") as handle:
            handle.write(header)
            handle.write(entries)
            for item in ids:
                row = np.ascontiguousarray(state[item][0], dtype="<f4").tobytes()
                crc = zlib.crc32(row, crc)
                handle.write(row)
            handle.write(struct.pack("<I", crc))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self._snapshot(namespace))
        _fsync_dir(self.directory)
        for stale in self.directory.glob(f"{namespace}.*.log"):
            if stale.name != self._log(namespace, generation + 1).name:
                stale.unlink(missing_ok=True)
        self._valid_end[namespace] = (generation + 1, 0)

    def compact(self, namespace: str, dimension: int) -> None:
        """Compact ``namespace`` now."""
        try:
            with self._locked():
                in_sync = self._seen.get(namespace) == self._append_position(namespace, dimension)
                self._compact(namespace, dimension)
                if in_sync:
                    self._seen[namespace] = self._valid_end[namespace]
        except OSError as exc:
            raise BackendError("numpy", f"cannot compact {self.directory}: {exc}") from exc

    def stale(self, namespace: str) -> bool:
        """Whether another writer changed ``namespace``'s files since this instance read or
        wrote them (a snapshot header read and a ``stat``)."""
        seen = self._seen.get(namespace)
        if seen is None:
            return False
        try:
            generation = self._snapshot_generation(namespace)
            log = self._log(namespace, generation)
            size = log.stat().st_size if log.exists() else 0
        except OSError as exc:
            raise BackendError("numpy", f"cannot read {self.directory}: {exc}") from exc
        return (generation, size) != seen

    def ping(self) -> None:
        """Check the directory exists (creating it) and is writable."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendError("numpy", f"cannot create {self.directory}: {exc}") from exc
        if not os.access(self.directory, os.W_OK):
            raise BackendError("numpy", f"{self.directory} is not writable")

    def size_bytes(self) -> int:
        """Bytes of every snapshot and log in the directory."""
        if not self.directory.exists():
            return 0
        return sum(p.stat().st_size for p in self.directory.iterdir() if p.is_file())

    def close(self) -> None:
        """Nothing stays open between calls; forget cached offsets."""
        self._valid_end.clear()
        self._seen.clear()
