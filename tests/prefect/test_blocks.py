"""The four blocks: Prefect's block standards, registration, save/load, flow parameters."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL
from prefect.testing.standard_test_suites.blocks import BlockStandardTestSuite
from pydantic import SecretStr

from memory_resources.blocks import MemoryStore, PostgresMemory, RedisMemory, VectorMemory
from memory_resources.capture.outbox import Outbox
from memory_resources.prefect import remember

REPO = Path(__file__).resolve().parents[2]
ALL_BLOCKS = [MemoryStore, RedisMemory, PostgresMemory, VectorMemory]


@pytest.mark.parametrize("block_class", ALL_BLOCKS, ids=lambda c: c.__name__)
class TestBlockStandards(BlockStandardTestSuite):
    """Prefect's own block checks (description, docs URL, field descriptions, example)."""

    @pytest.fixture
    def block(self, block_class: type[Block]) -> type[Block]:
        return block_class


@pytest.mark.parametrize("block_class", ALL_BLOCKS, ids=lambda c: c.__name__)
def test_block_has_https_logo_and_documentation(block_class: type[Block]) -> None:
    """Each block names an https logo and documentation page for the UI, none on the
    Sanity CDN that Prefect's own blocks left (its images answer HTTP 402)."""
    logo, docs = block_class._logo_url, block_class._documentation_url
    assert logo is not None and docs is not None
    assert logo.scheme == "https" and docs.scheme == "https"
    assert logo.host != "cdn.sanity.io"


def test_import_memory_resources_does_not_import_prefect() -> None:
    """``import memory_resources`` stays cheap: Prefect is imported only on block access."""
    code = ("import sys, memory_resources; assert 'prefect' not in sys.modules; "
            "memory_resources.MemoryStore; assert 'prefect' in sys.modules; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.prefect
@pytest.mark.usefixtures("prefect_harness")
def test_prefect_block_register_registers_all_four() -> None:
    """``prefect block register -m memory_resources`` registers the four block types."""
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "prefect"), "block", "register", "-m",
         "memory_resources"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("Memory Store", "Redis Memory", "Postgres Memory", "Vector Memory"):
        assert name in done.stdout, done.stdout
    with get_client(sync_client=True) as client:
        block_type = client.read_block_type_by_slug("memory-store")
    assert block_type.documentation_url and block_type.description
    assert "MemoryStore.load(" in (block_type.code_example or "")


@pytest.mark.prefect
@pytest.mark.usefixtures("prefect_harness")
def test_save_load_round_trip_with_nested_blocks_and_masked_secrets(tmp_path: Path) -> None:
    """A MemoryStore with nested blocks saves and loads back equal; secrets are stored
    encrypted-at-rest by Prefect and shown masked when read without secrets."""
    name = f"mem-{uuid.uuid4().hex[:8]}"
    store = MemoryStore(
        redis=RedisMemory(host="redis.internal", port=6390, password=SecretStr("redis-pw")),
        postgres=PostgresMemory(host="pg.internal", database="agents",
                                password=SecretStr("pg-pw")),
        vector=VectorMemory(dimension=8, metric="euclidean"),
        embedded_path=str(tmp_path / "m.db"), max_output_bytes=1234,
    )
    store.save(name)
    loaded: MemoryStore = MemoryStore.load(name)  # type: ignore[assignment]  # sync call
    assert loaded.redis is not None and loaded.postgres is not None
    assert loaded.vector is not None
    assert loaded.redis.host == "redis.internal" and loaded.redis.port == 6390
    assert loaded.redis.password is not None
    assert loaded.redis.password.get_secret_value() == "redis-pw"
    assert loaded.postgres.password is not None
    assert loaded.postgres.password.get_secret_value() == "pg-pw"
    assert loaded.vector.dimension == 8 and loaded.vector.metric == "euclidean"
    assert loaded.max_output_bytes == 1234
    assert loaded.fingerprint() == store.fingerprint()
    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name(name, "memory-store",
                                                      include_secrets=False)
    text = repr(document.data)
    assert "redis-pw" not in text and "pg-pw" not in text
    assert "redis.internal" in text


@pytest.mark.prefect
@pytest.mark.usefixtures("prefect_harness")
def test_memory_store_parameter_accepts_instance_dict_ref_and_name(tmp_path: Path) -> None:
    """A flow parameter typed MemoryStore accepts an instance, a dict, a $ref and a bare
    block name; the run's history goes to the store passed, not the declared default."""
    declared = MemoryStore(embedded_path=str(tmp_path / "declared.db"),
                           outbox_path=str(tmp_path / "outbox.db"))
    chosen = MemoryStore(embedded_path=str(tmp_path / "chosen.db"),
                         outbox_path=str(tmp_path / "outbox.db"))
    name = f"chosen-{uuid.uuid4().hex[:8]}"
    document_id = chosen.save(name)

    @remember(declared)
    @flow(name="param-store")
    def uses_store(label: str, memory: MemoryStore) -> str:
        memory.context(f"param-{label}").set({"label": label})
        return memory.embedded_path or ""

    forms: dict[str, Any] = {
        "instance": chosen,
        "dict": {"embedded_path": chosen.embedded_path, "outbox_path": chosen.outbox_path},
        "ref": {"$ref": {"block_document_id": str(document_id)}},
        "name": name,
    }
    try:
        for label, value in forms.items():
            assert uses_store(label, value) == chosen.embedded_path, label
            assert chosen.api.get_context(f"param-{label}") is not None, label
        runs = chosen.api.read_flow_run_history(None, limit=10)
        assert sorted((r["parameters"] or {})["label"] for r in runs) == sorted(forms)
        assert all(r["status"] == "completed" for r in runs)
        assert declared.api.read_flow_run_history(None, limit=10) == []
    finally:
        declared.close()
        chosen.close()


def test_memory_store_pickles_without_live_connections(tmp_path: Path) -> None:
    """A used MemoryStore pickles (no live objects on it) and works again after unpickling."""
    import pickle

    store = MemoryStore(embedded_path=str(tmp_path / "m.db"))
    store.context("s").set({"a": 1})
    copy = pickle.loads(pickle.dumps(store))
    assert copy.fingerprint() == store.fingerprint()
    assert copy.api is store.api, "same configuration, same process: one MemoryAPI"
    assert copy.context("s").data == {"a": 1}
    store.close()


@pytest.mark.prefect
@pytest.mark.postgres
@pytest.mark.usefixtures("prefect_harness")
def test_memory_store_instance_with_secrets_as_parameter(
    tmp_path: Path, postgres_dsn: str, pg_schema: str
) -> None:
    """An unsaved MemoryStore holding a secret, passed as a parameter (Prefect stores it
    masked), still receives the run's history and outputs: the store is resolved from the
    run context, never rebuilt from the masked copy."""
    from psycopg2.extensions import parse_dsn

    parts = parse_dsn(postgres_dsn)
    chosen = MemoryStore(
        postgres=PostgresMemory(host=parts.get("host", "127.0.0.1"),
                                port=int(parts.get("port", 5432)),
                                database=parts["dbname"], user=parts.get("user", "postgres"),
                                password=SecretStr("kept-secret"), schema=pg_schema),
        embedded_path=str(tmp_path / "chosen.db"), outbox_path=str(tmp_path / "outbox.db"),
    )
    declared = MemoryStore(embedded_path=str(tmp_path / "declared.db"),
                           outbox_path=str(tmp_path / "outbox.db"))

    @remember(declared)
    @flow(name="secret-param")
    def uses_store(memory: MemoryStore) -> int:
        return int(len(memory.api.read_flow_run_history(None)) >= 0)

    try:
        assert uses_store(chosen) == 1
        runs = chosen.api.read_flow_run_history(None)
        assert [(r["flow_name"], r["status"]) for r in runs] == [("secret-param", "completed")]
        assert runs[0]["started_at"] is not None
        captured = runs[0]["parameters"] or {}
        assert captured["memory"]["postgres"]["password"] == "**********"
        assert declared.api.read_flow_run_history(None) == []
        assert Outbox(tmp_path / "outbox.db").pending() == []
        with get_client(sync_client=True) as client:  # the premise: Prefect's copy is masked
            stored = client.read_flow_run(uuid.UUID(runs[0]["run_id"])).parameters["memory"]
        assert "kept-secret" not in repr(stored)
    finally:
        chosen.close()
        declared.close()
