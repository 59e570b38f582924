"""MemoryStore.backends: a third-party backend (a real entry point, the ``plugin`` fixture)
configured by name alone in a block, kept through pickling, saving and outbox replay."""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client

from memory_resources.blocks import MemoryStore
from memory_resources.blocks.targets import memory_store_from_target_config


def _store(tmp_path: Path) -> tuple[MemoryStore, dict[str, Any]]:
    spec = {"context": {"backend": "plugsql", "path": str(tmp_path / "plug.db")},
            "events": {"backend": "plugsql", "path": str(tmp_path / "plug.db")}}
    return MemoryStore(backends=spec, embedded_path=str(tmp_path / "m.db"),
                       outbox_path=str(tmp_path / "outbox.db")), spec


def test_a_block_picks_up_a_third_party_backend_by_name(plugin: Any, tmp_path: Path) -> None:
    """MemoryStore(backends={...}) puts those roles on the entry point's backend (one
    store for equal options); the block's label names it, its repr hides the options,
    and a pickled copy has the same fingerprint."""
    store, _ = _store(tmp_path)
    try:
        api = store.api
        assert api.backends["context"] == api.backends["events"] == "plugsql"
        assert api.backends["history"] == "sqlite"
        assert api.store("context") is api.store("events")
        handle = store.context("session")
        handle.set({"step": 1})
        handle.append_event({"type": "plan"})
        assert api.store("context").get_context("session")["data"] == {"step": 1}
        assert "context=plugsql" in store.label() and "events=plugsql" in store.label()
        assert "plug.db" not in repr(store)
        copy = pickle.loads(pickle.dumps(store))
        assert copy.fingerprint() == store.fingerprint()
        other = MemoryStore(backends={"context": {"backend": "plugsql",
                                                  "path": str(tmp_path / "x.db")}},
                            embedded_path=str(tmp_path / "m.db"))
        assert other.fingerprint() != store.fingerprint()
    finally:
        store.close()
    assert (tmp_path / "plug.db").exists()


def test_outbox_replay_rebuilds_the_backends(plugin: Any, tmp_path: Path) -> None:
    """The outbox target of a store without secrets records backends=, and the replay
    resolver rebuilds a store using the same backend."""
    store, spec = _store(tmp_path)
    config = store.outbox_target().config
    assert config is not None and config["backends"]["backends"] == spec
    rebuilt = memory_store_from_target_config(config)
    try:
        assert rebuilt.fingerprint() == store.fingerprint()
        assert rebuilt.api.backends["context"] == "plugsql"
    finally:
        rebuilt.close()


def test_a_bad_backend_name_fails_when_the_store_is_built(plugin: Any, tmp_path: Path) -> None:
    """An unknown backend name in a block is a ConfigurationError on first use, naming
    the role and the known backends."""
    from memory_resources.errors import ConfigurationError

    store = MemoryStore(backends={"locks": {"backend": "zookeeper"}},
                        embedded_path=str(tmp_path / "m.db"))
    with pytest.raises(ConfigurationError, match=r"backends\['locks'\].*unknown locks "
                                                 r"backend 'zookeeper'; known: .*plugsql"):
        store.api  # noqa: B018


@pytest.mark.prefect
@pytest.mark.usefixtures("prefect_harness")
def test_a_saved_block_loads_back_with_its_backends(plugin: Any, tmp_path: Path) -> None:
    """Saved to the Prefect API and loaded back, the block keeps backends= (masked in
    the document read without secrets) and its API runs on the third-party backend."""
    store, spec = _store(tmp_path)
    name = f"plug-{uuid.uuid4().hex[:8]}"
    store.save(name)
    loaded: MemoryStore = MemoryStore.load(name)  # type: ignore[assignment]  # sync call
    try:
        assert loaded.backends is not None and loaded.backends.get_secret_value() == spec
        assert loaded.api.backends["context"] == "plugsql"
        loaded.context("s").set({"saved": True})
        assert loaded.api.store("context").get_context("s")["data"] == {"saved": True}
        with get_client(sync_client=True) as client:
            document = client.read_block_document_by_name(name, "memory-store",
                                                          include_secrets=False)
        assert "plug.db" not in repr(document.data)
    finally:
        loaded.close()
        store.close()
