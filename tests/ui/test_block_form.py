"""The MemoryStore block's create form in the real Prefect UI, in headless Chromium."""

from __future__ import annotations

import re

import pytest

from ..deploy.server import PrefectServer
from .browser import ARTIFACTS, Chromium, png_size, visible_text

pytestmark = [pytest.mark.ui, pytest.mark.prefect, pytest.mark.slow, pytest.mark.timeout(420)]

CREATE_ROUTE = "/blocks/catalog/{slug}/create"
"""The Prefect UI route of a block type's create form (router name
``workspace.blocks.block-create``, path ``catalog/:blockTypeSlug/create``)."""

FIELD_HEADINGS = ["Embedded Path", "Context Ttl", "Max Param Bytes", "Max Output Bytes",
                  "Outbox Path"]
NESTED_BLOCKS = ["RedisMemory", "PostgresMemory", "VectorMemory"]


def _rendered_form(chromium: Chromium, url: str, attempts: int = 3) -> str:
    """The DOM of ``url`` once the form rendered (the SPA may need longer on a busy host)."""
    dom = ""
    for attempt in range(attempts):
        dom = chromium.dump_dom(url, budget_ms=15000 * (attempt + 1))
        if "Capture Task Outputs" in visible_text(dom):
            break
    return dom


def test_memory_store_create_form_renders_its_fields(
    ui_server: PrefectServer, chromium: Chromium
) -> None:
    """The UI's create form of the registered Memory Store block renders the block name
    input, the optional nested Redis/Postgres/Vector block pickers, every config field with
    its description, and the capture toggle; a screenshot is saved."""
    catalog = ui_server.get("/api/block_types/slug/memory-store")
    assert catalog["name"] == "Memory Store"
    url = ui_server.url + CREATE_ROUTE.format(slug="memory-store")

    dom = _rendered_form(chromium, url)
    text = visible_text(dom)

    assert "Create Memory Store Block" in text, text[:2000]
    assert "Block Name" in text
    for nested in NESTED_BLOCKS:
        assert f"{nested} (Optional)" in text, nested
    for field in ("redis", "postgres", "vector"):
        assert re.search(rf"\b{field}\b {field.capitalize()}", text, re.I), field
    for heading in FIELD_HEADINGS:
        assert heading in text, heading
    assert "Capture Task Outputs (Optional)" in text
    assert "Store the return value of each task run of a captured flow." in text
    assert "Redis block for context, events and locks (empty: embedded default)." in text
    # the inputs: block name (text), context TTL and the two size limits (numbers),
    # embedded/outbox paths (text areas), the capture toggle (a checkbox)
    assert len(re.findall(r'<input type="text"', dom)) >= 1
    assert len(re.findall(r'<input type="number"', dom)) >= 3
    assert len(re.findall(r"<textarea\b", dom)) >= 2
    assert re.search(r'role="switch"[^>]*aria-checked="true"', dom)

    shot = chromium.screenshot(url, ARTIFACTS / "memory-store-create.png", budget_ms=15000)
    assert png_size(shot) == (1280, 1600)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank canvas
