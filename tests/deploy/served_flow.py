"""A captured flow served with ``flow.serve`` (the cancellation test runs it as a script).

``python served_flow.py DEPLOYMENT_NAME``; the store's files come from the environment
(``MEMORY_RESOURCES_TEST_DB``, ``MEMORY_RESOURCES_TEST_OUTBOX``).
"""

from __future__ import annotations

import os
import sys
import time

from prefect import flow

from memory_resources.blocks import MemoryStore
from memory_resources.prefect import remember

memory = MemoryStore(embedded_path=os.environ["MEMORY_RESOURCES_TEST_DB"],
                     outbox_path=os.environ["MEMORY_RESOURCES_TEST_OUTBOX"])


@remember(memory)
@flow(name="served-sleeper")
def sleeper(seconds: float = 300.0) -> str:
    """Wait ``seconds`` (long enough to be cancelled while running)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.2)
    return "woke up"


if __name__ == "__main__":
    sleeper.serve(name=sys.argv[1] if len(sys.argv) > 1 else "sleeper")
