"""Fixtures of the UI tests: headless Chromium (installed when missing) and a Prefect
server with its UI, both on this machine only."""

from __future__ import annotations

import os

import pytest

from ..deploy.server import PrefectServer
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


@pytest.fixture(scope="session")
def ui_server(prefect_server: PrefectServer) -> PrefectServer:
    """The session's Prefect server (tests/fixtures/prefect_server.py): it serves the UI on
    127.0.0.1 and has the memory_resources blocks registered; the deploy tests share it."""
    return prefect_server
