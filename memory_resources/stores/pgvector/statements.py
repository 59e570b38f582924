"""SQL statements and wire encodings of the pgvector backend.

Vectors go to the server in two ways: a query vector as pgvector's text literal (one per
statement), and bulk upserts as a binary ``COPY`` stream (pgvector's binary input format:
``int16 dim, int16 0, dim x float4`` big-endian), which is ~50x cheaper to produce in Python
than text for 768-dimensional float32 rows.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
from psycopg2 import sql

from .naming import METRICS, MetricSQL

_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)
_JSONB_VERSION = b"\x01"


def vector_literal(vector: np.ndarray[Any, np.dtype[np.float32]]) -> str:
    """pgvector's text form ``[x1,x2,...]``; ``%.9g`` round-trips float32 exactly."""
    fmt = "[" + ",".join(["%.9g"] * int(vector.shape[0])) + "]"
    return fmt % tuple(vector.tolist())


def copy_rows(ids: Sequence[str], vectors: np.ndarray[Any, np.dtype[np.float32]],
              metadata_json: Sequence[str]) -> bytes:
    """A binary COPY stream of ``(id text, embedding vector, metadata jsonb)`` rows."""
    count, dimension = vectors.shape
    big_endian = np.ascontiguousarray(vectors, dtype=">f4")
    vector_head = struct.pack("!ihh", 4 + 4 * dimension, dimension, 0)
    row_bytes = 4 * dimension
    raw = big_endian.tobytes()
    parts: list[bytes] = [_COPY_HEADER]
    for row in range(count):
        id_bytes = ids[row].encode("utf-8")
        meta_bytes = _JSONB_VERSION + metadata_json[row].encode("utf-8")
        parts.append(struct.pack("!hi", 3, len(id_bytes)))
        parts.append(id_bytes)
        parts.append(vector_head)
        parts.append(raw[row * row_bytes:(row + 1) * row_bytes])
        parts.append(struct.pack("!i", len(meta_bytes)))
        parts.append(meta_bytes)
    parts.append(_COPY_TRAILER)
    return b"".join(parts)


class Statements:
    """Composed statements for one namespace table (identifiers quoted by psycopg2.sql)."""

    def __init__(self, *, schema: str, table: str, extension_schema: str,
                 dimension: int, storage: str = "vector") -> None:
        self.table = sql.Identifier(schema, table)
        self.ext = sql.Identifier(extension_schema)
        self.dimension = dimension
        self.storage = storage
        self.vector_type = sql.SQL("{}.{}({})").format(
            self.ext, sql.Identifier(storage), sql.Literal(dimension))

    def operator(self, metric: MetricSQL) -> sql.Composable:
        """``OPERATOR(ext.<=>)``: schema-qualified so it works whatever the search_path."""
        return sql.SQL("OPERATOR({}.{})").format(self.ext, sql.SQL(metric.operator))

    def search(self, metric_name: str, where: sql.Composable | None, *,
               exact: bool) -> sql.Composed:
        """Nearest rows to the query vector among rows matching ``where``; the positional
        parameters are :meth:`search_params`.

        The inner query orders by the bare distance expression so PostgreSQL may use the
        HNSW index (``exact=False``) or, with ``+ 0``, may not (``exact=True``: a scan that
        is exact by construction). The outer query re-sorts exactly, since an iterative
        index scan in ``relaxed_order`` may return rows slightly out of order.
        """
        metric = METRICS[metric_name]
        distance = sql.SQL("(embedding {op} %s::{vt})").format(
            op=self.operator(metric), vt=self.vector_type
        )
        order = sql.SQL("{} + 0").format(distance) if exact else distance
        return sql.SQL(
            "WITH candidates AS MATERIALIZED ("
            "SELECT id, metadata, {distance} AS distance FROM {table}{where} "
            "ORDER BY {order} LIMIT %s) "
            "SELECT id, metadata, distance FROM candidates ORDER BY distance, id"
        ).format(
            distance=distance,
            table=self.table,
            where=self._where(where),
            order=order,
        )

    def search_binary(self, metric_name: str, where: sql.Composable | None) -> sql.Composed:
        """Binary-quantized search: the inner query takes the ``top_k * rerank_factor``
        rows nearest by hamming distance between sign bits (the expression of the bit HNSW
        index, see :func:`.setup.hnsw_key`), the outer one re-ranks them by the exact
        distance on the stored column and keeps ``top_k``. Parameters:
        :meth:`search_binary_params`."""
        metric = METRICS[metric_name]
        bits = sql.SQL("({ext}.binary_quantize({value}))::bit({dim})")
        dim = sql.Literal(self.dimension)
        column_bits = bits.format(ext=self.ext, value=sql.SQL("embedding"), dim=dim)
        query_bits = bits.format(ext=self.ext, dim=dim,
                                 value=sql.SQL("%s::{vt}").format(vt=self.vector_type))
        return sql.SQL(
            "WITH candidates AS MATERIALIZED ("
            "SELECT id, metadata, embedding FROM {table}{where} "
            "ORDER BY {column_bits} OPERATOR({ext}.<~>) {query_bits} LIMIT %s) "
            "SELECT id, metadata, embedding {op} %s::{vt} AS distance FROM candidates "
            "ORDER BY distance, id LIMIT %s"
        ).format(
            table=self.table,
            where=self._where(where),
            column_bits=column_bits,
            ext=self.ext,
            query_bits=query_bits,
            op=self.operator(metric),
            vt=self.vector_type,
        )

    @staticmethod
    def _where(where: sql.Composable | None) -> sql.Composable:
        return sql.SQL(" WHERE ") + where if where is not None else sql.SQL("")

    @staticmethod
    def search_params(query: str, filter_params: Sequence[Any], top_k: int) -> list[Any]:
        """Parameters of :meth:`search`: the vector literal, the filter's, again, ``top_k``."""
        return [query, *filter_params, query, top_k]

    @staticmethod
    def search_binary_params(query: str, filter_params: Sequence[Any], top_k: int,
                             candidates: int) -> list[Any]:
        """Parameters of :meth:`search_binary`."""
        return [*filter_params, query, candidates, query, top_k]

    def insert_values(self) -> sql.Composed:
        """Upsert for ``execute_values`` (small batches, vectors as text literals)."""
        return sql.SQL(
            "INSERT INTO {table} (id, embedding, metadata) VALUES %s "
            "ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding, "
            "metadata = EXCLUDED.metadata, updated_at = now()"
        ).format(table=self.table)

    def values_template(self) -> sql.Composed:
        return sql.SQL("(%s, %s::{vt}, %s::jsonb)").format(vt=self.vector_type)

    def create_staging(self) -> sql.Composed:
        return sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS pgvector_staging "
            "(id text, embedding {ext}.vector, metadata jsonb) ON COMMIT DELETE ROWS"
        ).format(ext=self.ext)

    def copy_staging(self) -> sql.Composed:
        return sql.Composed([sql.SQL(
            "COPY pg_temp.pgvector_staging (id, embedding, metadata) "
            "FROM STDIN WITH (FORMAT binary)"
        )])

    def upsert_from_staging(self) -> sql.Composed:
        return sql.SQL(
            "INSERT INTO {table} (id, embedding, metadata) "
            "SELECT id, embedding::{vt}, metadata FROM pg_temp.pgvector_staging "
            "ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding, "
            "metadata = EXCLUDED.metadata, updated_at = now()"
        ).format(table=self.table, vt=self.vector_type)

    def delete(self) -> sql.Composed:
        return sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(self.table)

    def count(self) -> sql.Composed:
        return sql.SQL("SELECT count(*) FROM {}").format(self.table)

    def get(self) -> sql.Composed:
        return sql.SQL("SELECT embedding::{}.vector::real[], metadata FROM {} WHERE id = %s"
                       ).format(self.ext, self.table)

    def missing_keys(self) -> sql.Composed:
        """Which of the ``%s`` text[] keys no row carries (none when the table is empty)."""
        return sql.SQL(
            "SELECT k FROM unnest(%s::text[]) AS k "
            "WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE metadata ? k) "
            "AND EXISTS (SELECT 1 FROM {table})"
        ).format(table=self.table)
