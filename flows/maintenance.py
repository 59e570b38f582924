"""Scheduled partition maintenance: ``memory-resources maintain`` as a Prefect flow.

Deployed by ``prefect.yaml`` (deployment ``partition-maintenance``, Mondays 03:17 UTC). The
``postgres`` parameter names a saved ``PostgresMemory`` block holding the *migration* role
(the schema owner, see docs/postgres.md, Roles): creating partitions needs the owner. The
flow creates the month partitions ahead, moves rows out of the default partitions into
their month, logs the report and returns it.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from memory_resources.blocks.postgres import PostgresMemory
from memory_resources.stores.postgres import PostgresStore


@flow(name="partition-maintenance")
def partition_maintenance(postgres: str = "memory-owner",
                          months_ahead: int | None = None) -> dict[str, Any]:
    """Run ``PostgresStore.maintain`` with the saved block ``postgres`` (never migrates:
    ``memory-resources migrate`` stays a deliberate step)."""
    config = PostgresMemory.load(postgres).to_config().model_copy(
        update={"auto_migrate": False})
    store = PostgresStore(config)
    try:
        report = store.maintain(months_ahead)
    finally:
        store.close()
    logger = get_run_logger()
    logger.info("partitions cover every month before %s; created %d: %s", report.until,
                len(report.created), ", ".join(report.created) or "-")
    for name, rows in report.moved.items():
        logger.info("moved %d row(s) out of the default partition into %s", rows, name)
    for name, rows in report.remaining.items():
        (logger.warning if rows else logger.info)("%s: %d row(s) left", name, rows)
    return report.as_dict()


if __name__ == "__main__":
    partition_maintenance()
