"""The blocks' form tables (memory_resources/blocks/form.py) cover every field, so the UI
never falls back to an auto-generated label; checked on the schema, without a browser
(tests/ui checks the rendered forms)."""

from __future__ import annotations

from typing import Any

import pytest

from memory_resources.blocks import MemoryStore, PostgresMemory, RedisMemory, VectorMemory, form

BLOCKS = [(MemoryStore, form.MEMORY_STORE), (RedisMemory, form.REDIS),
          (PostgresMemory, form.POSTGRES), (VectorMemory, form.VECTOR)]


@pytest.mark.parametrize(("block", "table"), BLOCKS, ids=lambda v: getattr(v, "__name__", ""))
def test_every_field_has_a_title_and_a_place(block: Any, table: form.Form) -> None:
    """Each schema property is in its block's table, in the table's order (positions 0..n),
    with the table's title, and no property is an ``anyOf`` with null."""
    properties = block.model_json_schema()["properties"]
    titles = dict(table.fields)
    assert set(properties) == set(titles), set(properties) ^ set(titles)
    ordered = sorted(properties, key=lambda name: properties[name]["position"])
    assert ordered == [name for name, _ in table.fields]
    for name, prop in properties.items():
        assert prop["title"] == titles[name]
        assert "anyOf" not in prop, name


def test_nested_blocks_are_titled_and_referenced_by_title() -> None:
    """MemoryStore's nested block definitions are keyed and titled Redis / PostgreSQL /
    Vector index and every reference points there; the vector backend is a numpy/pgvector
    dropdown while "placeholder" is still accepted from code."""
    schema = MemoryStore.model_json_schema()
    assert set(schema["definitions"]) == {"Redis", "PostgreSQL", "Vector index"}
    assert schema["properties"]["redis"]["$ref"] == "#/definitions/Redis"
    vector = schema["definitions"]["Vector index"]
    assert vector["properties"]["postgres"]["$ref"] == "#/definitions/PostgreSQL"
    assert vector["properties"]["backend"]["enum"] == ["numpy", "pgvector"]
    assert VectorMemory(backend="placeholder").backend == "placeholder"
    assert schema["definitions"]["Redis"]["properties"]["ssl"]["title"] == "SSL"
