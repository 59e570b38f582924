"""One real ``prefect server start`` (loopback, temporary home) shared by this folder's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .server import PrefectServer, running_server


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A Prefect API server on 127.0.0.1 with a sqlite database in a temporary home."""
    home: Path = tmp_path_factory.mktemp("prefect-home")
    with running_server(home) as server:
        yield server


@pytest.fixture
def prefect_client(prefect_server: PrefectServer) -> Iterator[object]:
    """A synchronous Prefect client of ``prefect_server`` (not of the test harness)."""
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(api=prefect_server.api_url) as client:
        yield client
