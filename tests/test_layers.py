"""The package's layers depend downward only (docs: /DESIGN layer list), checked on the AST.

Every ``import``/``from ... import`` in ``memory_resources/`` is read, including imports
inside functions and ``TYPE_CHECKING`` blocks, and ``importlib.import_module("...")`` calls
with a literal name, so a back arrow hidden in a lazy import fails too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "memory_resources"

CORE = {"codec", "decoding", "errors", "config", "validation", "log", "clock", "records",
        "protocols", "runinfo", "embedding", "vector_filter", "batching", "py",
        "_version", "sentinel_url"}
"""Top-level modules of the bottom layer (every other top-level module is the API layer)."""

RANK = {"core": 0, "stores": 1, "api": 2, "capture": 3, "blocks": 4, "prefect": 5, "cli": 6,
        "root": 7, "testing": 8}
"""Layer order, lowest first: a module may import its own layer and the layers below."""

KIT_MAY_IMPORT = {"core", "api", "testing"}
"""``memory_resources.testing`` (the contract kit, on top: nothing imports it) tests
backends through the public API and the Protocols only."""

NO_PREFECT = {"core", "stores", "capture", "api", "testing"}
"""Layers that must not import the Prefect library (``runinfo`` reads Prefect's run
context only when Prefect is already loaded: its one allowed exception)."""


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts in (["memory_resources"], ["memory_resources", "__main__"]):
        return "root"
    head = parts[1]
    if head in ("stores", "capture", "blocks", "prefect", "cli", "testing"):
        return head
    return "core" if head in CORE else "api"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import in ``path``."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.level and not node.module:  # ``from . import x``: x may be a module
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


def _violations() -> list[str]:
    problems: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = _module_name(path)
        layer = _layer(importer)
        for line, target in _imports(path):
            where = f"{path.relative_to(PACKAGE.parent)}:{line}"
            if target == "prefect" or target.startswith("prefect."):
                if layer in NO_PREFECT and importer != "memory_resources.runinfo":
                    problems.append(f"{where}: layer {layer!r} imports Prefect ({target})")
                continue
            if target != "memory_resources" and not target.startswith("memory_resources."):
                continue
            imported = _layer(target)
            if layer == "testing" and imported not in KIT_MAY_IMPORT:
                problems.append(f"{where}: the contract kit imports {imported!r} ({target})")
            elif RANK[imported] > RANK[layer]:
                problems.append(f"{where}: {layer!r} ({importer}) imports the higher layer "
                                f"{imported!r} ({target})")
    return problems


def test_no_module_imports_a_higher_layer() -> None:
    """stores/ and capture/ import neither Prefect nor blocks/, blocks/ never imports
    prefect/, no layer imports one above it, and the contract kit (testing/) uses only the
    public API and Protocols while nothing imports it."""
    assert _violations() == []


@pytest.mark.parametrize(("source", "expected"), [
    ("from ..blocks.store import MemoryStore", "'capture'"),
    ("import prefect.flows", "imports Prefect"),
    ("from ..prefect import remember", "'prefect'"),
    ("import importlib\nimportlib.import_module('memory_resources.prefect.capture')",
     "'prefect'"),
    ("from ..testing import ROLES", "'testing'"),
])
def test_the_check_catches_a_back_arrow(tmp_path: Path, source: str, expected: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A capture/ module importing blocks/, Prefect or prefect/ (even lazily) is reported."""
    fake = tmp_path / "memory_resources"
    (fake / "capture").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "capture" / "__init__.py").write_text("")
    body = source.replace("\n", "\n    ")
    (fake / "capture" / "bad.py").write_text(f"def lazy():\n    {body}\n")
    monkeypatch.setitem(globals(), "PACKAGE", fake)
    problems = _violations()
    assert len(problems) == 1 and expected in problems[0], problems


@pytest.mark.parametrize("source", ["from ..prefect import remember",
                                    "from ..blocks.store import MemoryStore",
                                    "from ..stores.sqlite import SQLiteStore"])
def test_the_kit_may_not_reach_below_the_public_api(tmp_path: Path, source: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A testing/ module importing prefect/, blocks/ or a built-in store is reported: the
    kit tests any backend through the Protocols."""
    fake = tmp_path / "memory_resources"
    (fake / "testing").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "testing" / "__init__.py").write_text("")
    (fake / "testing" / "bad.py").write_text(f"{source}\n")
    monkeypatch.setitem(globals(), "PACKAGE", fake)
    problems = _violations()
    assert len(problems) == 1 and "the contract kit imports" in problems[0], problems
