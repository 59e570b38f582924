"""Fixtures of the UI tests: headless Chromium (installed when missing) and a Prefect
server with its UI, both on this machine only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..deploy.server import PrefectServer, running_server
from .browser import Chromium, ChromiumUnavailable, ensure_chromium


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Chromium:
    """Debian's Chromium; installed with scripts/ensure_chromium.sh when missing (root +
    apt). Without it the test is skipped, except under CI=true where that is a failure."""
    try:
        binary = ensure_chromium()
    except ChromiumUnavailable as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true and the UI check cannot run: {exc}")
        pytest.skip(f"UI check skipped: {exc}")
    return Chromium(binary, tmp_path_factory.mktemp("chromium-profiles"))


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A Prefect server with the UI on 127.0.0.1, memory_resources blocks registered."""
    home: Path = tmp_path_factory.mktemp("prefect-ui-home")
    with running_server(home, ui=True) as server:
        server.cli(["block", "register", "-m", "memory_resources"])
        yield server
