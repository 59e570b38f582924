"""The ``@summarize`` example of docs/prefect-deploy.md deploys with ``prefect deploy``.

``prefect deploy`` imports the flow module inside its event loop; the example's
module-level ``MemoryStore.load("agent-memory")`` used to be a coroutine there, which
``remember`` took silently and the deploy then failed on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .server import REPO, PrefectServer
from .test_deployments import _SETUP

pytestmark = [pytest.mark.prefect, pytest.mark.slow, pytest.mark.timeout(300)]


def _docs_example() -> str:
    text = (REPO / "docs" / "prefect-deploy.md").read_text()
    section = text.split("## End-of-run artifact", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "the summarize section has no python example"
    return code.group(1)


def test_summarize_example_of_the_docs_deploys(
    prefect_server: PrefectServer, prefect_client: Any, memory_store: Any, tmp_path: Path
) -> None:
    """The docs' example file, as written, is accepted by ``prefect --no-prompt deploy``
    and its deployment exists afterwards."""
    prefect_server.cli_python(_SETUP, memory_store.embedded_path, memory_store.outbox_path)
    (tmp_path / "agent_flow.py").write_text(_docs_example())
    prefect_server.cli(["--no-prompt", "deploy", "agent_flow.py:agent", "-n", "docs-example",
                        "-p", "agents"], cwd=tmp_path)
    deployment = prefect_client.read_deployment_by_name("agent/docs-example")
    assert deployment.entrypoint.endswith("agent_flow.py:agent")
