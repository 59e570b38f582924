"""Through real deployment runs (a served flow on a real Prefect server): no planted secret
is stored anywhere, and a capture failure is visible on the run's page.

One served process holds two deployments of the same flow: ``secrets-ok`` captures into a
working embedded store, ``secrets-down`` into a store that cannot be opened, so its records
go to the outbox. Each run is given secrets every way a user passes them (top-level
secret-named parameters, a URL with a password, an ``Authorization`` header, a nested dict,
a ``SecretStr``-annotated parameter that arrives as a plain string). Then every file written
(the store, the outbox, their WAL files), the served process's output and the run's logs
on the Prefect API are searched for each secret.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from .server import PrefectServer, terminate, wait_for

pytestmark = [pytest.mark.prefect, pytest.mark.slow, pytest.mark.timeout(420)]

SECRETS = {
    "password": "pw-top-7f3a", "api_key": "key-top-91c2", "token": "tok-top-5d8e",
    "secret": "sec-top-2b6f", "url": "pw-url-4e1d", "header": "hdr-bearer-8a7c9d",
    "nested": "pw-nested-3c5b", "annotated": "sk-annotated-6f2e",
}


def _parameters() -> dict[str, Any]:
    return {
        "goal": "find the report",
        "password": SECRETS["password"], "api_key": SECRETS["api_key"],
        "token": SECRETS["token"], "secret": SECRETS["secret"],
        "db_url": f"postgresql://agent:{SECRETS['url']}@db.internal:5432/memory",
        "headers": {"Authorization": f"Bearer {SECRETS['header']}", "Accept": "json"},
        "options": {"retries": 2, "database": {"user": "agent",
                                                "password": SECRETS["nested"]}},
        "signing_key": SECRETS["annotated"],
    }


def _deployment_or_none(client: Any, name: str) -> Any:
    try:
        return client.read_deployment_by_name(name)
    except Exception:
        return None


def _finished(client: Any, run_id: Any) -> Any:
    run = client.read_flow_run(run_id)
    return run if run.state is not None and run.state.is_final() else None


def _files_under(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_deployment_runs_store_no_secret_and_show_capture_failures(
    prefect_server: PrefectServer, prefect_client: Any, tmp_path: Path
) -> None:
    """Both runs complete; the working store has the history row (secrets masked, the
    parameter names and the URL's host kept) and the task output; the failing run's
    records are in the outbox, its log on the Prefect API has a WARNING naming the outbox
    and the replay command, and its summary artifact says it left records there; no
    planted secret appears in any file, process output or run log."""
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    from memory_resources.blocks import MemoryStore
    from memory_resources.capture.outbox import Outbox

    data = tmp_path / "data"
    data.mkdir()
    (data / "blocker").write_text("a file where the down store's directory should be")
    env = {"MEMORY_RESOURCES_TEST_DB": str(data / "memory.db"),
           "MEMORY_RESOURCES_TEST_DOWN_DB": str(data / "blocker" / "memory.db"),
           "MEMORY_RESOURCES_TEST_OUTBOX": str(data / "outbox.db"),
           "MEMORY_RESOURCES_HOME": str(data / "home")}
    served = prefect_server.popen(
        [sys.executable, str(Path(__file__).with_name("served_secrets.py"))],
        "served-secrets.log", cwd=tmp_path, PREFECT_RUNNER_POLL_FREQUENCY="1", **env)
    try:
        runs = {}
        for name in ("secrets-ok", "secrets-down"):
            deployment = wait_for(
                lambda n=name: _deployment_or_none(prefect_client, f"{n}/{n}"), timeout=120,
                what=f"deployment {name}\n{prefect_server.log_of('served-secrets.log')}")
            runs[name] = prefect_client.create_flow_run_from_deployment(
                deployment.id, parameters=_parameters())
        finals = {name: wait_for(lambda r=run: _finished(prefect_client, r.id), timeout=240,
                                 what=f"run {name}\n"
                                      f"{prefect_server.log_of('served-secrets.log')}")
                  for name, run in runs.items()}

        def capture_warnings() -> tuple[list[Any], list[str]] | None:
            logs = prefect_client.read_logs(log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[runs["secrets-down"].id])))
            warnings = [log.message for log in logs
                        if log.level == 30 and log.message.startswith("memory capture:")]
            return (logs, warnings) if warnings else None

        # Run logs reach the API in batches after the run ends: wait for the capture
        # warnings while the served process that ships them still runs.
        logs, warnings = wait_for(capture_warnings, timeout=60,
                                  what="the capture warnings in the run's logs")
    finally:
        terminate(served)
    for name, final in finals.items():
        assert final.state.is_completed(), (name, final.state,
                                            prefect_server.log_of("served-secrets.log"))

    ok = MemoryStore(embedded_path=env["MEMORY_RESOURCES_TEST_DB"])
    try:
        (row,) = ok.api.read_flow_run_history(None, str(runs["secrets-ok"].id))
        params = row["parameters"]
        assert params["password"] == params["api_key"] == "**********"
        assert params["token"] == params["secret"] == params["signing_key"] == "**********"
        assert params["db_url"] == "postgresql://agent:**********@db.internal:5432/memory"
        assert params["headers"] == {"Authorization": "**********", "Accept": "json"}
        assert params["options"]["database"] == {"user": "agent", "password": "**********"}
        outputs = ok.api.read_audit_log(operation="output.write",
                                        flow_run_id=str(runs["secrets-ok"].id))
        assert len(outputs) == 1
    finally:
        ok.close()

    down_id = str(runs["secrets-down"].id)
    outbox = Outbox(env["MEMORY_RESOURCES_TEST_OUTBOX"])
    left = outbox.left_by_flow_run(down_id)
    outbox.close()
    assert left == {"history": 1, "output": 1}

    replay = f"memory-resources outbox replay --outbox {env['MEMORY_RESOURCES_TEST_OUTBOX']}"
    assert warnings and all(replay in message for message in warnings), [
        (log.level, log.message) for log in logs]
    assert any("task output" in m for m in warnings) and any("history" in m for m in warnings)

    artifacts = prefect_client.read_artifacts(artifact_filter=ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[runs["secrets-down"].id])))
    assert any("left 2 record(s) in the outbox" in str(a.data) for a in artifacts), [
        a.data for a in artifacts]

    every_log = [log.message for name in runs for log in prefect_client.read_logs(
        log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[runs[name].id])))]
    written = _files_under(data)
    written["served process output"] = prefect_server.log_of("served-secrets.log").encode()
    written["run logs"] = "\n".join(every_log).encode()
    assert any(p.endswith("outbox.db") for p in written)
    for label, secret in SECRETS.items():
        found = [where for where, content in written.items() if secret.encode() in content]
        assert not found, f"the {label} secret was stored in {found}"
