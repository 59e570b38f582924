"""``prune --dry-run`` for PostgreSQL: what retention would drop, read without changing
anything (the same rule as ``memory_drop_partitions``: a month partition of
``flow_run_history`` / ``audit_log`` goes when its whole month lies before the cut-off;
rows of the default partitions older than the cut-off are deleted one by one)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from psycopg2 import sql

from .pool import Cursor, PostgresPool
from .support import one

_DUE = """
SELECT child.relname
FROM pg_inherits i
JOIN pg_class child ON child.oid = i.inhrelid
JOIN pg_class parent ON parent.oid = i.inhparent
JOIN pg_namespace n ON n.oid = parent.relnamespace
WHERE n.nspname = %(schema)s
  AND parent.relname IN ('flow_run_history', 'audit_log')
  AND child.relname ~ '_p[0-9]{4}_[0-9]{2}$'
  AND (to_timestamp(right(child.relname, 7), 'YYYY_MM')::timestamp AT TIME ZONE 'UTC'
       + interval '1 month') <= %(cutoff)s
ORDER BY child.relname
"""

_DEFAULTS = {"flow_run_history_default": "created_at", "audit_log_default": "occurred_at"}


def preview(pool: PostgresPool, schema: str, cutoff: dt.datetime) -> dict[str, Any]:
    """The partitions, default-partition rows and expired contexts ``prune`` would remove."""

    def read(cur: Cursor) -> dict[str, Any]:
        cur.execute(_DUE, {"schema": schema, "cutoff": cutoff})
        due = [row[0] for row in cur.fetchall()]
        rows: dict[str, int] = {}
        for table, column in _DEFAULTS.items():
            cur.execute("SELECT to_regclass(format('%%I.%%I', %s::text, %s::text))",
                        (schema, table))
            if one(cur)[0] is None:
                continue
            cur.execute(sql.SQL("SELECT count(*) FROM {}.{} WHERE {} < %s").format(
                sql.Identifier(schema), sql.Identifier(table), sql.Identifier(column)),
                (cutoff,))
            rows[table] = int(one(cur)[0])
        cur.execute(sql.SQL("SELECT count(*) FROM {}.memory_context WHERE expires_at <= now()")
                    .format(sql.Identifier(schema)))
        expired = int(one(cur)[0])
        return {"cutoff": cutoff.isoformat(timespec="microseconds"), "dropped_partitions": due,
                "default_partition_rows": rows, "expired_contexts_purged": expired,
                "dry_run": True}

    return pool.run(read, read_only=True)
