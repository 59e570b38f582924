"""The generated reference pages match their one source: docs/configuration.md the config
models' Field descriptions, docs/errors.md the classes of memory_resources/errors.py. A key,
default, description or error class changed without ``python scripts/reference_docs.py``
fails here."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from types import ModuleType

import pytest

from memory_resources import errors
from memory_resources.config import EmbeddedConfig, PostgresConfig, RedisConfig, VectorConfig

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "reference_docs.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reference_docs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", ["configuration.md", "errors.md"])
def test_generated_reference_is_current(page: str) -> None:
    """Each page's generated block equals what its source renders now."""
    script = _script()
    text = (script.DOCS / page).read_text(encoding="utf-8")
    assert text == script.updated(text, script.PAGES[page]), \
        "run: python scripts/reference_docs.py"


def test_every_config_key_is_on_the_page() -> None:
    """Each key of the four config dicts has a row carrying its description."""
    text = (_script().DOCS / "configuration.md").read_text(encoding="utf-8")
    for model in (RedisConfig, PostgresConfig, VectorConfig, EmbeddedConfig):
        for name, field in model.model_fields.items():
            assert f"| `{field.alias or name}` |" in text, name
            assert " ".join((field.description or "").split()[:3]) in text, name


def test_every_error_class_is_on_the_page() -> None:
    """Each exception class of memory_resources.errors has a row in docs/errors.md."""
    text = (_script().DOCS / "errors.md").read_text(encoding="utf-8")
    for name, value in vars(errors).items():
        if inspect.isclass(value) and issubclass(value, Exception) \
                and value.__module__ == errors.__name__:
            assert f"`{name}`" in text, name
