"""One real ``prefect server start`` (loopback, temporary home) shared by this folder's tests.

Session-scoped: each start costs a Prefect server boot (~15 s idle, a minute on a loaded
machine), so the deploy modules share one, with the memory_resources blocks registered once.
Tests keep apart by their own store files (``memory_store``), flow and deployment names;
what they save on the server is saved with ``overwrite=True`` / created if missing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .server import PrefectServer, running_server


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A Prefect API server on 127.0.0.1 with a sqlite database in a temporary home, the
    memory_resources block types registered."""
    home: Path = tmp_path_factory.mktemp("prefect-home")
    with running_server(home) as server:
        server.cli(["block", "register", "-m", "memory_resources"])
        yield server


@pytest.fixture
def prefect_client(prefect_server: PrefectServer) -> Iterator[object]:
    """A synchronous Prefect client of ``prefect_server`` (not of the test harness)."""
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(api=prefect_server.api_url) as client:
        yield client
