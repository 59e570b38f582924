"""Bad input to every MemoryAPI method raises MemoryValidationError naming the argument,
and nothing is written."""

from __future__ import annotations

import math
import socket
from typing import Any

import pytest

from memory_resources.api import MemoryAPI
from memory_resources.errors import MemoryValidationError

from .conftest import DIMENSION, MAX_PAYLOAD, unit

BIG = "x" * (MAX_PAYLOAD + 10)
NOT_JSON = object()
NAN = unit(1, math.nan)
INF = unit(1, math.inf)

CASES: list[tuple[str, str, dict[str, Any], str]] = [
    # (case id, method, keyword arguments, the argument the error must name)
    ("set_context-id-int", "set_context", {"context_id": 7, "context_data": {}}, "context_id"),
    ("set_context-id-none", "set_context", {"context_id": None, "context_data": {}},
     "context_id"),
    ("set_context-id-empty", "set_context", {"context_id": "", "context_data": {}},
     "context_id"),
    ("set_context-id-nul", "set_context", {"context_id": "a\x00b", "context_data": {}},
     "context_id"),
    ("set_context-data-list", "set_context", {"context_id": "c", "context_data": [1]},
     "context_data"),
    ("set_context-data-str", "set_context", {"context_id": "c", "context_data": "x"},
     "context_data"),
    ("set_context-data-key", "set_context", {"context_id": "c", "context_data": {1: "a"}},
     "context_data"),
    ("set_context-data-object", "set_context",
     {"context_id": "c", "context_data": {"o": NOT_JSON}}, "context_data"),
    ("set_context-data-nan", "set_context",
     {"context_id": "c", "context_data": {"f": math.nan}}, "context_data"),
    ("set_context-oversized", "set_context", {"context_id": "c", "context_data": {"b": BIG}},
     "context_data"),
    ("set_context-ttl-zero", "set_context", {"context_id": "c", "context_data": {}, "ttl": 0},
     "ttl"),
    ("set_context-ttl-negative", "set_context",
     {"context_id": "c", "context_data": {}, "ttl": -5}, "ttl"),
    ("set_context-ttl-str", "set_context",
     {"context_id": "c", "context_data": {}, "ttl": "60"}, "ttl"),
    ("set_context-ttl-fraction", "set_context",
     {"context_id": "c", "context_data": {}, "ttl": 1.5}, "ttl"),
    ("set_context-ttl-bool", "set_context",
     {"context_id": "c", "context_data": {}, "ttl": True}, "ttl"),
    ("get_context-id-int", "get_context", {"context_id": 1}, "context_id"),
    ("get_context-id-empty", "get_context", {"context_id": ""}, "context_id"),
    ("clear_context-id-list", "clear_context", {"context_id": ["c"]}, "context_id"),
    ("append_event-id-empty", "append_event", {"context_id": "", "event": {}}, "context_id"),
    ("append_event-event-str", "append_event", {"context_id": "c", "event": "login"}, "event"),
    ("append_event-event-object", "append_event",
     {"context_id": "c", "event": {"o": NOT_JSON}}, "event"),
    ("append_event-oversized", "append_event", {"context_id": "c", "event": {"b": BIG}},
     "event"),
    ("get_events-id-none", "get_events", {"context_id": None}, "context_id"),
    ("get_events-limit-zero", "get_events", {"context_id": "c", "limit": 0}, "limit"),
    ("get_events-limit-negative", "get_events", {"context_id": "c", "limit": -1}, "limit"),
    ("get_events-limit-str", "get_events", {"context_id": "c", "limit": "5"}, "limit"),
    ("get_events-since-int", "get_events", {"context_id": "c", "since": 3}, "since"),
    ("write_history-flow-empty", "write_flow_run_history",
     {"flow_id": "", "run_id": "r", "data": {}}, "flow_id"),
    ("write_history-run-int", "write_flow_run_history",
     {"flow_id": "f", "run_id": 1, "data": {}}, "run_id"),
    ("write_history-data-list", "write_flow_run_history",
     {"flow_id": "f", "run_id": "r", "data": ["completed"]}, "data"),
    ("write_history-data-object", "write_flow_run_history",
     {"flow_id": "f", "run_id": "r", "data": {"status": "completed", "o": NOT_JSON}}, "data"),
    ("write_history-oversized", "write_flow_run_history",
     {"flow_id": "f", "run_id": "r", "data": {"b": BIG}}, "data"),
    ("write_history-status-int", "write_flow_run_history",
     {"flow_id": "f", "run_id": "r", "data": {"status": 3}}, 'data["status"]'),
    ("write_history-duration-negative", "write_flow_run_history",
     {"flow_id": "f", "run_id": "r", "data": {"duration": -1}}, 'data["duration"]'),
    ("write_history-duration-nan", "write_flow_run_history",
     {"flow_id": "f", "run_id": "r", "data": {"duration": math.nan}}, 'data["duration"]'),
    ("write_history-tags-str", "write_flow_run_history",
     {"flow_id": "f", "run_id": "r", "data": {"tags": "a,b"}}, 'data["tags"]'),
    ("write_history-started-bad", "write_flow_run_history",
     {"flow_id": "f", "run_id": "r", "data": {"started_at": "yesterday"}},
     'data["started_at"]'),
    ("write_history-parameters-list", "write_flow_run_history",
     {"flow_id": "f", "run_id": "r", "data": {"parameters": [1]}}, 'data["parameters"]'),
    ("read_history-limit-zero", "read_flow_run_history", {"flow_id": "f", "limit": 0},
     "limit"),
    ("read_history-flow-int", "read_flow_run_history", {"flow_id": 5}, "flow_id"),
    ("read_history-run-empty", "read_flow_run_history", {"flow_id": "f", "run_id": ""},
     "run_id"),
    ("read_history-since-bad", "read_flow_run_history", {"flow_id": "f", "since": "soon"},
     "since"),
    ("read_history-until-int-list", "read_flow_run_history", {"flow_id": "f", "until": [1]},
     "until"),
    ("read_history-flow-name-empty", "read_flow_run_history",
     {"flow_id": None, "flow_name": ""}, "flow_name"),
    ("audit-since-bad", "read_audit_log", {"since": "2026-13-45"}, "since"),
    ("store-role-unknown", "store", {"role": "cache"}, "role"),
    ("write_output-task-empty", "write_task_output", {"task_id": "", "output": {}}, "task_id"),
    ("write_output-task-int", "write_task_output", {"task_id": 9, "output": {}}, "task_id"),
    ("write_output-object", "write_task_output", {"task_id": "t", "output": {"o": NOT_JSON}},
     "output"),
    ("write_output-oversized", "write_task_output", {"task_id": "t", "output": {"b": BIG}},
     "output"),
    ("write_output-metadata-list", "write_task_output",
     {"task_id": "t", "output": {}, "metadata": ["m"]}, "metadata"),
    ("write_output-metadata-object", "write_task_output",
     {"task_id": "t", "output": {}, "metadata": {"o": NOT_JSON}}, "metadata"),
    ("write_output-task-run-int", "write_task_output",
     {"task_id": "t", "output": {}, "task_run_id": 5}, "task_run_id"),
    ("read_output-task-none", "read_task_output", {"task_id": None}, "task_id"),
    ("list_outputs-limit-zero", "list_task_outputs", {"task_id": "t", "limit": 0}, "limit"),
    ("audit-limit-negative", "read_audit_log", {"limit": -3}, "limit"),
    ("index-id-empty", "index_embedding", {"id": "", "embedding": unit(1)}, "id"),
    ("index-id-int", "index_embedding", {"id": 4, "embedding": unit(1)}, "id"),
    ("index-wrong-dimension", "index_embedding", {"id": "e", "embedding": [0.1, 0.2, 0.3]},
     "embedding"),
    ("index-nan", "index_embedding", {"id": "e", "embedding": NAN}, "embedding"),
    ("index-inf", "index_embedding", {"id": "e", "embedding": INF}, "embedding"),
    ("index-strings", "index_embedding", {"id": "e", "embedding": ["a"] * DIMENSION},
     "embedding"),
    ("index-none", "index_embedding", {"id": "e", "embedding": None}, "embedding"),
    ("index-str", "index_embedding", {"id": "e", "embedding": "0.1,0.2"}, "embedding"),
    ("index-two-vectors", "index_embedding", {"id": "e", "embedding": [unit(1), unit(1)]},
     "embedding"),
    ("index-zero-vector-cosine", "index_embedding", {"id": "e", "embedding": unit()},
     "embedding"),
    ("index-metadata-list", "index_embedding",
     {"id": "e", "embedding": unit(1), "metadata": [1]}, "metadata"),
    ("index-metadata-object", "index_embedding",
     {"id": "e", "embedding": unit(1), "metadata": {"o": NOT_JSON}}, "metadata"),
    ("index-metadata-oversized", "index_embedding",
     {"id": "e", "embedding": unit(1), "metadata": {"b": BIG}}, "metadata"),
    ("write_output-metadata-oversized", "write_task_output",
     {"task_id": "t", "output": {}, "metadata": {"b": BIG}}, "metadata"),
    ("query-wrong-dimension", "query_embeddings", {"query_embedding": [1.0]},
     "query_embedding"),
    ("query-nan", "query_embeddings", {"query_embedding": NAN}, "query_embedding"),
    ("query-inf", "query_embeddings", {"query_embedding": INF}, "query_embedding"),
    ("query-top-k-zero", "query_embeddings", {"query_embedding": unit(1), "top_k": 0},
     "top_k"),
    ("query-top-k-negative", "query_embeddings", {"query_embedding": unit(1), "top_k": -2},
     "top_k"),
    ("query-top-k-str", "query_embeddings", {"query_embedding": unit(1), "top_k": "5"},
     "top_k"),
    ("query-top-k-float", "query_embeddings", {"query_embedding": unit(1), "top_k": 2.0},
     "top_k"),
    ("query-filter-list", "query_embeddings",
     {"query_embedding": unit(1), "filter_metadata": ["type"]}, "filter_metadata"),
    ("delete-id-empty", "delete_embedding", {"id": ""}, "id"),
    ("delete-id-none", "delete_embedding", {"id": None}, "id"),
    ("lock-name-empty", "acquire_lock", {"lock_name": ""}, "lock_name"),
    ("lock-name-int", "acquire_lock", {"lock_name": 3}, "lock_name"),
    ("lock-timeout-zero", "acquire_lock", {"lock_name": "l", "timeout": 0}, "timeout"),
    ("lock-timeout-negative", "acquire_lock", {"lock_name": "l", "timeout": -1}, "timeout"),
    ("lock-blocking-negative", "acquire_lock", {"lock_name": "l", "blocking_timeout": -1},
     "blocking_timeout"),
    ("lock-auto-extend-str", "lock", {"name": "l", "auto_extend": "yes"}, "auto_extend"),
    ("context-session-empty", "context", {"session_id": ""}, "session_id"),
    ("context-ttl-zero", "context", {"session_id": "s", "ttl": 0}, "ttl"),
]


def assert_nothing_written(api: MemoryAPI) -> None:
    """No context, event, history row, output, embedding, lock or audit row exists."""
    for context_id in ("c", "e", "l"):
        assert api.get_context(context_id) is None
        assert api.get_events(context_id) == []
    assert api.read_flow_run_history(None) == []
    assert api.read_task_output("t") is None
    assert api.query_embeddings(unit(1), top_k=5) == []
    assert api.read_audit_log() == []
    with api.acquire_lock("l", blocking_timeout=0) as lock:  # nobody took the lock
        assert lock.fencing_token is not None


@pytest.mark.parametrize(("method", "kwargs", "field"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_is_refused_naming_the_argument(
    api: MemoryAPI, method: str, kwargs: dict[str, Any], field: str
) -> None:
    """The call raises MemoryValidationError whose field is the argument, and writes nothing."""
    with pytest.raises(MemoryValidationError) as caught:
        getattr(api, method)(**kwargs)
    error = caught.value
    assert error.field == field or error.field.startswith((field + "[", field + ".")), (
        f"error names {error.field!r}, expected {field!r}: {error}"
    )
    assert str(error).startswith(error.field) or field in str(error)
    assert_nothing_written(api)


def test_serialisation_error_names_the_path(api: MemoryAPI) -> None:
    """A non-serialisable value deep inside context_data is reported with its path."""
    with socket.socket() as sock, pytest.raises(MemoryValidationError) as caught:
        api.set_context("c", {"items": [1, 2, 3, sock]})
    assert 'context_data["items"][3]' in str(caught.value) or \
        "context_data['items'][3]" in str(caught.value)
    assert "socket" in str(caught.value)
    assert_nothing_written(api)


def test_oversized_payload_reports_size_and_limit(api: MemoryAPI) -> None:
    """An oversized context is refused with its encoded size and the configured limit."""
    with pytest.raises(MemoryValidationError) as caught:
        api.set_context("c", {"b": BIG})
    assert str(MAX_PAYLOAD) in str(caught.value)
    assert_nothing_written(api)


def test_a_failed_embedding_upsert_keeps_the_previous_vector(api: MemoryAPI) -> None:
    """Re-indexing an existing id with a NaN vector is refused and the old vector stays."""
    api.index_embedding("keep", unit(1, 0), {"v": 1})
    with pytest.raises(MemoryValidationError):
        api.index_embedding("keep", unit(math.nan, 1), {"v": 2})
    hits = api.query_embeddings(unit(1, 0), top_k=3)
    assert [(h["id"], h["metadata"]) for h in hits] == [("keep", {"v": 1})]
