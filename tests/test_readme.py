"""The runnable Python examples of the README and of the reference pages moved out of it
(docs/api.md, backends.md, configuration.md, errors.md, logging.md) run as written, and
their claims about names hold."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

import memory_resources
from memory_resources import default

README = Path(__file__).resolve().parent.parent / "README.md"
PAGES = [README, *(README.parent / "docs" / name for name in (
    "api.md", "backends.md", "configuration.md", "errors.md", "logging.md"))]
"""The README first (its first runnable block is the first-steps example), then the
reference pages that hold what the README used to."""
RUNNABLE = re.compile(r"<!-- runnable -->\s*```python\n(.*?)```", re.DOTALL)
RUNNABLE_PREFECT = re.compile(r"<!-- runnable: prefect -->\s*```python\n(.*?)```", re.DOTALL)


def runnable_blocks() -> list[str]:
    """The ```python blocks preceded by ``<!-- runnable -->``, in PAGES order."""
    return [block for page in PAGES for block in RUNNABLE.findall(_text(page))]


def _text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary home and working folder, no backend env vars, logs on stderr."""
    monkeypatch.setenv("MEMORY_RESOURCES_HOME", str(tmp_path / "home"))
    for name in (default.ENV_REDIS_URL, default.ENV_POSTGRES_DSN, default.ENV_VECTOR_BACKEND,
                 default.ENV_VECTOR_DIMENSION, default.ENV_BACKENDS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    structlog.configure(logger_factory=lambda *args: structlog.PrintLogger(sys.stderr))
    default.reset_memory_api()
    yield tmp_path
    default.reset_memory_api()
    structlog.reset_defaults()


def test_readme_has_runnable_examples() -> None:
    """The README marks at least the main API examples as runnable."""
    assert len(runnable_blocks()) >= 7


@pytest.mark.parametrize("index", range(len(runnable_blocks())))
def test_runnable_example(index: int, sandbox: Path, capsys: pytest.CaptureFixture[str]
                          ) -> None:
    """Each runnable README example runs without error on the embedded default."""
    source = runnable_blocks()[index]
    exec(compile(source, f"README.md[python #{index}]", "exec"), {"__name__": "readme"})
    if "print(" in source:
        assert capsys.readouterr().out.strip()


def test_first_example_prints_the_user_id(sandbox: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The first-steps example prints the stored user id and a fencing token."""
    exec(compile(runnable_blocks()[0], "README.md[first]", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "user_123"
    assert re.fullmatch(r"fencing token \d+", out[1])
    assert (sandbox / "home" / "memory.db").exists()


def test_error_example_names_each_argument(sandbox: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The Errors example prints the argument each bad call is refused for."""
    block = next(b for b in runnable_blocks() if "bad_call" in b)
    exec(compile(block, "README.md[errors]", "exec"), {"__name__": "readme"})
    fields = [line.split(" - ")[0] for line in capsys.readouterr().out.splitlines()]
    assert fields == ["context_id", "ttl", "output", "top_k"]


def test_documented_public_names_exist() -> None:
    """Every name the README and its reference pages import from memory_resources is
    exported."""
    text = "\n".join(_text(page) for page in PAGES)
    for line in re.findall(r"from memory_resources import ([^\n]+)", text):
        for name in re.findall(r"[A-Za-z_]\w*", line.split("`")[0]):
            assert hasattr(memory_resources, name), name


def test_documented_environment_variables_are_the_ones_read() -> None:
    """The environment table (docs/configuration.md) lists exactly the variables
    default.py reads, and the README names no other."""
    text = _text(README.parent / "docs" / "configuration.md")
    assert set(re.findall(r"`(MEMORY_RESOURCES_[A-Z_]+)`", _text(README))) <= set(
        re.findall(r"`(MEMORY_RESOURCES_[A-Z_]+)`", text))
    documented = set(re.findall(r"`(MEMORY_RESOURCES_[A-Z_]+)`", text))
    read = {default.ENV_REDIS_URL, default.ENV_POSTGRES_DSN, default.ENV_VECTOR_BACKEND,
            default.ENV_VECTOR_DIMENSION, default.ENV_BACKENDS, "MEMORY_RESOURCES_HOME"}
    assert documented == read


@pytest.mark.prefect
def test_prefect_example_captures_the_run(sandbox: Path, prefect_harness: None,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The README's Prefect example runs a real flow whose history row is captured."""
    blocks = RUNNABLE_PREFECT.findall(README.read_text(encoding="utf-8"))
    assert len(blocks) == 1
    module = sandbox / "readme_prefect_example.py"
    module.write_text(blocks[0], encoding="utf-8")
    namespace = {"__name__": "readme_prefect_example", "__file__": str(module)}
    try:
        exec(compile(blocks[0], str(module), "exec"), namespace)
    finally:
        namespace["memory"].close()
    assert capsys.readouterr().out.strip().splitlines()[-1] == "agent completed"
