"""The example backend under the contract kit.

Defining ``memory_context_store`` here is all it takes: the kit (loaded by
tests/conftest.py, as ``pytest -p memory_resources.testing`` would load it) collects its
ContextStore suite under this conftest and reports the other roles as not provided.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.extending.example_backend import DictContextStore


@pytest.fixture(params=["memory", "json_file"])
def memory_context_store(request: pytest.FixtureRequest, tmp_path: Path
                         ) -> Iterator[DictContextStore]:
    """The example store, in memory and saved to a JSON file: connected, empty, own."""
    path = tmp_path / "contexts.json" if request.param == "json_file" else None
    store = DictContextStore(path)
    store.connect()
    yield store
    store.close()
