"""Property tests: random write sequences against a plain-Python model of the semantics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory_resources.config import EmbeddedConfig
from memory_resources.records import FlowRunWrite
from memory_resources.stores.sqlite import SQLiteStore

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

_maybe_text = st.none() | st.text(min_size=1, max_size=8).filter(lambda s: "\x00" not in s)
_writes = st.lists(
    st.fixed_dictionaries({
        "run": st.sampled_from(["r1", "r2", "r3"]),
        "status": st.none() | st.sampled_from(["running", "completed", "failed"]),
        "flow_name": _maybe_text,
        "duration": st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False),
        "tags": st.none() | st.lists(st.text(max_size=5).filter(lambda s: "\x00" not in s),
                                     max_size=3),
        "data": st.dictionaries(st.sampled_from(["a", "b", "c", "d"]),
                                st.integers() | st.text(max_size=5), max_size=3),
    }),
    min_size=1, max_size=8,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SQLiteStore]:
    path: Path = tmp_path_factory.mktemp("props") / "props.db"
    shared = SQLiteStore(EmbeddedConfig(path=str(path)))
    yield shared
    shared.close()


@SETTINGS
@given(writes=_writes)
def test_history_upserts_follow_the_merge_rules(
    store: SQLiteStore, writes: list[dict[str, Any]]
) -> None:
    """Any sequence of upserts leaves rows equal to the model: None keeps, data merges by key,
    one row per run."""
    flow_id = f"flow-{uuid.uuid4().hex}"
    model: dict[str, dict[str, Any]] = {}
    for write in writes:
        store.write_flow_run(FlowRunWrite(
            flow_id=flow_id, run_id=write["run"], status=write["status"],
            flow_name=write["flow_name"], duration=write["duration"], tags=write["tags"],
            data=write["data"]))
        row = model.setdefault(write["run"], {"status": None, "flow_name": None,
                                              "duration": None, "tags": [], "data": {}})
        for field in ("status", "flow_name", "duration", "tags"):
            if write[field] is not None:
                row[field] = write[field]
        row["data"].update(write["data"])
    stored = {r["run_id"]: r for r in store.read_flow_runs(flow_id)}
    assert set(stored) == set(model)
    for run_id, expected in model.items():
        got = stored[run_id]
        assert {k: got[k] for k in expected} == expected  # type: ignore[literal-required]


@SETTINGS
@given(steps=st.lists(st.sampled_from(["set", "clear", "append"]), min_size=1, max_size=10))
def test_context_versions_and_events_follow_the_model(
    store: SQLiteStore, steps: list[str]
) -> None:
    """Sets count versions from 1, clear resets them and drops events, appends accumulate."""
    cid = f"ctx-{uuid.uuid4().hex}"
    version, events, exists = 0, 0, False
    for n, step in enumerate(steps):
        if step == "set":
            version += 1
            exists = True
            assert store.set_context(cid, {"n": n})["version"] == version
        elif step == "clear":
            assert store.clear_context(cid) is (exists or events > 0)
            version, events, exists = 0, 0, False
        else:
            store.append_event(cid, {"n": n})
            events += 1
    record = store.get_context(cid)
    assert (record["version"] if record else 0) == version
    assert len(store.get_events(cid)) == events
