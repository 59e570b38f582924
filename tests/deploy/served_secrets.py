"""Two captured flows served with ``flow.serve`` for the no-secret-stored test.

``python served_secrets.py``; ``secrets-ok`` writes to ``MEMORY_RESOURCES_TEST_DB``,
``secrets-down`` to a store whose directory cannot be created (its records go to the
outbox, and it publishes the summary artifact). Both share ``MEMORY_RESOURCES_TEST_OUTBOX``.
"""

from __future__ import annotations

import os
from typing import Any

from prefect import flow, serve, task
from pydantic import SecretStr

from memory_resources.blocks import MemoryStore
from memory_resources.prefect import remember, summarize

ok = MemoryStore(embedded_path=os.environ["MEMORY_RESOURCES_TEST_DB"],
                 outbox_path=os.environ["MEMORY_RESOURCES_TEST_OUTBOX"])
down = MemoryStore(embedded_path=os.environ["MEMORY_RESOURCES_TEST_DOWN_DB"],
                   outbox_path=os.environ["MEMORY_RESOURCES_TEST_OUTBOX"])


@task
def connect(db_url: str, headers: dict[str, Any]) -> dict[str, Any]:
    """Returns only non-secret facts about what it was given."""
    return {"url_length": len(db_url), "header_names": sorted(headers)}


@remember(ok)
@flow(name="secrets-ok")
def secrets_ok(goal: str, password: str, api_key: str, token: str, secret: str, db_url: str,
               headers: dict[str, Any], options: dict[str, Any], signing_key: SecretStr) -> str:
    """A flow given secrets every way a user passes them (served by name: one module
    attribute per flow, so the runner's subprocess loads this decorated object)."""
    connect(db_url, headers)
    return f"done: {goal}"


@summarize()
@remember(down)
@flow(name="secrets-down")
def secrets_down(goal: str, password: str, api_key: str, token: str, secret: str,
                 db_url: str, headers: dict[str, Any], options: dict[str, Any],
                 signing_key: SecretStr) -> str:
    """The same flow, captured into a store that cannot be opened."""
    connect(db_url, headers)
    return f"done: {goal}"


if __name__ == "__main__":
    serve(secrets_ok.to_deployment(name="secrets-ok"),
          secrets_down.to_deployment(name="secrets-down"))
