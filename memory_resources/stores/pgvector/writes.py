"""Upsert rows and audit rows of the pgvector backend (inside the caller's transaction)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import psycopg2.extras
from psycopg2 import sql

from ... import codec
from ...embedding import Float32Vector
from ...errors import MemoryValidationError
from ...records import JSONDict
from ...runinfo import current_run_ids
from ...validation import optional_dict
from ..postgres.pool import Cursor
from .statements import Statements, copy_rows, vector_literal

COPY_THRESHOLD = 32
"""Batches above this size are upserted through a binary COPY instead of VALUES lists."""
AUDIT_MAX_IDS = 100
"""At most this many ids are listed in one audit row's details (``truncated`` says more)."""


def encode_metadata(metadata: Sequence[JSONDict | None] | None, count: int, *,
                    max_bytes: int) -> list[str]:
    """One JSON text per id (``{}`` for None); MemoryValidationError naming
    ``metadata[i]`` for anything JSONB cannot hold or that exceeds ``max_bytes``."""
    if metadata is None:
        return ["{}"] * count
    if isinstance(metadata, (str, bytes, dict)) or not isinstance(metadata, Sequence):
        raise MemoryValidationError(
            "metadata", f"must be a list of dicts (one per id), got {type(metadata).__name__}"
        )
    if len(metadata) != count:
        raise MemoryValidationError("metadata", f"has {len(metadata)} items for {count} ids")
    encoded: list[str] = []
    for index, item in enumerate(metadata):
        field = f"metadata[{index}]"
        encoded.append(codec.encode(optional_dict(item, field), field=field,
                                    max_bytes=max_bytes, jsonb=True))
    return encoded


def write_rows(cur: Cursor, statements: Statements, ids: Sequence[str],
               vectors: Float32Vector, metadata_json: Sequence[str]) -> None:
    """Upsert validated rows: VALUES lists for small batches, binary COPY into a session
    temp table then ``INSERT ... ON CONFLICT`` for large ones."""
    if len(ids) > COPY_THRESHOLD:
        cur.execute(statements.create_staging())
        cur.copy_expert(statements.copy_staging().as_string(cur),
                        io.BytesIO(copy_rows(ids, vectors, metadata_json)))
        cur.execute(statements.upsert_from_staging())
        return
    rows = [(item, vector_literal(vector), meta)
            for item, vector, meta in zip(ids, vectors, metadata_json, strict=True)]
    psycopg2.extras.execute_values(
        cur, statements.insert_values().as_string(cur), rows,
        template=statements.values_template().as_string(cur), page_size=COPY_THRESHOLD,
    )


def write_audit(cur: Cursor, *, schema: str, namespace: str, operation: str,
                ids: Sequence[str]) -> None:
    """One ``audit_log`` row for a write of ``ids``, attributed to the acting run."""
    run = current_run_ids()
    details = {"namespace": namespace, "count": len(ids),
               "ids": list(ids[:AUDIT_MAX_IDS]), "truncated": len(ids) > AUDIT_MAX_IDS}
    cur.execute(
        sql.SQL("INSERT INTO {} (operation, target, flow_run_id, task_run_id, details) "
                "VALUES (%s, %s, %s, %s, %s::jsonb)").format(sql.Identifier(schema, "audit_log")),
        (operation, ids[0] if len(ids) == 1 else f"namespace:{namespace}",
         run.flow_run_id, run.task_run_id, codec.encode(details, max_bytes=None)),
    )
