"""Block fields holding URLs and DSNs are secret in the saved Prefect block document, and
the capture outbox's target config never holds a password."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from memory_resources.blocks import MemoryStore, PostgresMemory, RedisMemory

PLANTED = "Bl0ck-s3cret"


def _store(tmp_path: Path, *, redis_url: str) -> MemoryStore:
    return MemoryStore(
        redis=RedisMemory(url=redis_url, lock_nodes=[f"redis://:{PLANTED}@node:6380/0"]),
        postgres=PostgresMemory(dsn=f"postgresql://u:{PLANTED}@pg:5432/agents",
                                read_replica_dsn=f"host=replica password={PLANTED}"),
        embedded_path=str(tmp_path / "m.db"), outbox_path=str(tmp_path / "outbox.db"),
    )


def test_block_forms_never_show_url_passwords(tmp_path: Path) -> None:
    """repr, model_dump (python and JSON) and the block document built without secrets
    contain no URL or DSN password."""
    store = _store(tmp_path, redis_url=f"redis://:{PLANTED}@cache:6379/0")
    assert store.redis is not None and store.postgres is not None
    document = store._to_block_document(name="doc", block_schema_id=uuid.uuid4(),
                                        block_type_id=uuid.uuid4(), include_secrets=False)
    for text in (repr(store), str(store), repr(store.model_dump()), store.model_dump_json(),
                 json.dumps(document.data, default=str), store.label()):
        assert PLANTED not in text
    assert set(RedisMemory.model_json_schema().get("secret_fields", [])) >= {
        "url", "lock_nodes"}
    assert set(PostgresMemory.model_json_schema().get("secret_fields", [])) >= {
        "dsn", "read_replica_dsn"}


def test_outbox_target_config_holds_no_password(tmp_path: Path) -> None:
    """A store whose URLs hold passwords records no config for replay (the block name is
    needed); one whose URLs hold none records them in the clear so replay can rebuild it."""
    secret = _store(tmp_path, redis_url=f"redis://:{PLANTED}@cache:6379/0")
    target = secret.outbox_target()
    assert target.config is None and PLANTED not in repr(target)
    plain = MemoryStore(redis=RedisMemory(url="redis://cache:6379/0"),
                        embedded_path=str(tmp_path / "m.db"))
    config = plain.outbox_target().config
    assert config is not None
    assert config["backends"]["redis"]["url"] == "redis://cache:6379/0"


@pytest.mark.prefect
@pytest.mark.usefixtures("prefect_harness")
def test_saved_block_document_masks_urls_and_loads_them_back(tmp_path: Path) -> None:
    """Saved to the Prefect API, the document read without secrets (what the UI shows) has
    no password; loading the block gives the URLs back intact."""
    name = f"secrets-{uuid.uuid4().hex[:8]}"
    redis_url = f"redis://:{PLANTED}@cache:6379/0"
    _store(tmp_path, redis_url=redis_url).save(name)
    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name(name, "memory-store",
                                                      include_secrets=False)
    assert PLANTED not in json.dumps(document.data, default=str)
    loaded: MemoryStore = MemoryStore.load(name)  # type: ignore[assignment]  # sync call
    assert loaded.redis is not None and loaded.postgres is not None
    assert loaded.redis.url_value() == redis_url
    assert loaded.redis.lock_node_urls() == [f"redis://:{PLANTED}@node:6380/0"]
    assert loaded.postgres.dsn is not None
    assert loaded.postgres.dsn.get_secret_value() == f"postgresql://u:{PLANTED}@pg:5432/agents"
