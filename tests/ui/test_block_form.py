"""The MemoryStore block's create form in the real Prefect UI, in headless Chromium."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import pytest

from ..deploy.server import PrefectServer
from .browser import ARTIFACTS, Chromium, png_size, visible_text
from .webdriver import browser_session

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


def test_memory_store_created_in_the_ui_loads_and_works(
    ui_server: PrefectServer, chromium: Chromium, tmp_path: Path
) -> None:
    """Filling in the Memory Store form in the browser and pressing Create saves a block
    document that MemoryStore.load() returns with those values (nested blocks left empty
    mean the embedded default), and the loaded block writes to and reads from the SQLite
    file named in the form."""
    name = f"ui-made-{uuid.uuid4().hex[:8]}"
    db = tmp_path / "from-ui.db"
    with browser_session(chromium.binary, tmp_path / "profile",
                         ui_server.home / "chromedriver.log") as browser:
        browser.open(ui_server.url + CREATE_ROUTE.format(slug="memory-store"))
        browser.wait_for("textarea.p-textarea__control", count=2)
        (block_name,) = browser.find_all("input.p-text-input__control")
        browser.type(block_name, name)
        embedded_path, _outbox_path = browser.find_all("textarea.p-textarea__control")
        browser.type(embedded_path, str(db))
        context_ttl = browser.find_all("input.p-number-input__control")[0]
        browser.type(context_ttl, "600")
        (create,) = browser.find_xpath("//button[normalize-space()='Create']")
        browser.click(create)
        deadline = time.monotonic() + 60
        while "/blocks/block/" not in browser.url and time.monotonic() < deadline:
            time.sleep(0.3)
        assert "/blocks/block/" in browser.url, browser.url
        browser.wait_for_xpath(f"//*[contains(text(), '{name}')]")  # the block's page
        browser.screenshot(ARTIFACTS / "memory-store-created.png")

    loaded = json.loads(ui_server.cli_python(_LOAD_AND_USE, name))
    assert loaded["embedded_path"] == str(db)
    assert loaded["context_ttl"] == 600
    # nested blocks left empty in the form (saved by the UI as {}) are the embedded default
    assert loaded["nested"] == ["None", "None", "None"]
    assert set(loaded["backends"].values()) <= {"sqlite", "numpy"}, loaded["backends"]
    assert loaded["context"] == {"source": "ui"}
    assert loaded["ttl"] == 600
    assert db.exists()


_LOAD_AND_USE = """
import json, sys
from memory_resources.blocks import MemoryStore

memory = MemoryStore.load(sys.argv[1])
memory.context("ui-session").update(source="ui")
record = memory.api.get_context("ui-session")
print(json.dumps({"embedded_path": memory.embedded_path, "context_ttl": memory.context_ttl,
                  "nested": [repr(memory.redis), repr(memory.postgres), repr(memory.vector)],
                  "backends": memory.api.backends,
                  "context": record["data"], "ttl": record["ttl"]}))
memory.close()
"""
