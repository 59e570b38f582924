"""The HNSW graph file of one namespace: ``<directory>/<namespace>.usearch``.

One file holds a header (magic, dimension, metric, key count), the id of each key (JSON)
and the serialised usearch index (graph + float32 vectors), closed by a CRC32. It is
written to ``.tmp``, fsync'ed and renamed over the old file (atomic), then the directory
is fsync'ed: a crash leaves the old file or the new one, never half of one.

The file is a cache of the persistence store (the source of truth for ids, vectors and
metadata): the index checks it against the store on load and repairs the difference, so
a graph saved before the last writes (or lost, or corrupt) costs time, never data.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import BackendError
from ...log import get_logger

MAGIC = b"MRHNSW01"
_HEADER = struct.Struct("<8sI16sQQ")  # magic, dimension, metric, keys, ids json bytes

_log = get_logger("memory_resources.vector.usearch")


@dataclass
class SavedGraph:
    """A graph read back: ``ids[key]`` is the id stored under ``key`` (None: free)."""

    ids: list[str | None]
    blob: bytes


def graph_path(directory: Path, namespace: str) -> Path:
    """Where the graph of ``namespace`` lives."""
    return directory / f"{namespace}.usearch"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_graph(
    path: Path, dimension: int, metric: str, ids: list[str | None], blob: Any
) -> None:
    """Write the graph file atomically (see the module docstring)."""
    names = json.dumps(ids, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    header = _HEADER.pack(MAGIC, dimension, metric.encode("ascii"), len(ids), len(names))
    crc = zlib.crc32(blob, zlib.crc32(names, zlib.crc32(header)))
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            handle.write(header)
            handle.write(names)
            handle.write(blob)
            handle.write(struct.pack("<I", crc))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise BackendError("usearch", f"cannot save the graph {path}: {exc}") from exc


def read_graph(path: Path, dimension: int, metric: str) -> SavedGraph | None:
    """The saved graph, or None when absent, unreadable, corrupt or built for another
    dimension or metric (logged: the index rebuilds it from the persistence store)."""
    if not path.exists():
        return None
    try:
        blob = path.read_bytes()
    except OSError as exc:
        _log.warning("graph unreadable; rebuilding", path=str(path), error=str(exc))
        return None
    problem = _check(blob, dimension, metric)
    if problem:
        _log.warning("graph discarded; rebuilding", path=str(path), reason=problem)
        return None
    _, _, _, count, names_len = _HEADER.unpack_from(blob)
    start = _HEADER.size
    ids: list[str | None] = json.loads(blob[start : start + names_len])
    if len(ids) != count:
        _log.warning("graph discarded; rebuilding", path=str(path), reason="key count")
        return None
    return SavedGraph(ids, blob[start + names_len : -4])


def _check(blob: bytes, dimension: int, metric: str) -> str:
    if len(blob) < _HEADER.size + 4:
        return "truncated"
    if zlib.crc32(memoryview(blob)[:-4]) != struct.unpack("<I", blob[-4:])[0]:
        return "CRC mismatch"
    magic, stored_dim, stored_metric, _, _ = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        return "not a graph file"
    if stored_dim != dimension or stored_metric.rstrip(b"\0").decode("ascii") != metric:
        return f"built for dimension {stored_dim}, metric {stored_metric.rstrip(bytes(1))!r}"
    return ""
