"""The contract kit run as a third party runs it: ``pytest -p memory_resources.testing`` in
a subprocess, on a directory whose conftest.py provides the stores.

On the embedded SQLite store (every role but vectors) and the numpy index (vectors) the kit
passes; on a store whose reads go stale it fails, so the kit can fail; without fixtures it
says what to define.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]

SQLITE_CONFTEST = '''
import uuid

import pytest

from memory_resources.config import EmbeddedConfig
from memory_resources.stores.numpy_index import NumpyVectorIndex, SqliteVectorPersistence
from memory_resources.stores.sqlite import SQLiteStore

STORE = SQLiteStore


@pytest.fixture
def sqlite_store(tmp_path):
    store = STORE(EmbeddedConfig(path=str(tmp_path / "memory.db")))
    store.connect()
    yield store
    store.close()


@pytest.fixture
def memory_context_store(sqlite_store):
    return sqlite_store
'''

ALL_ROLES = '''

@pytest.fixture
def memory_event_log(sqlite_store):
    return sqlite_store


@pytest.fixture
def memory_lock_manager(sqlite_store):
    return sqlite_store


@pytest.fixture
def memory_run_history(sqlite_store):
    return sqlite_store


@pytest.fixture
def memory_task_outputs(sqlite_store):
    return sqlite_store


@pytest.fixture
def memory_audit_log(sqlite_store):
    return sqlite_store


@pytest.fixture
def memory_vector_index(tmp_path):
    built = []

    def make(dimension=8, metric="cosine", *, namespace=None):
        index = NumpyVectorIndex(dimension, metric, namespace or f"t_{uuid.uuid4().hex[:12]}",
                                 persistence=SqliteVectorPersistence(tmp_path / "v.db"))
        index.connect()
        built.append(index)
        return index

    yield make
    for index in built:
        index.close()
'''

STALE_READS = '''

class StaleStore(SQLiteStore):
    """Caches the first read of each context and returns it forever."""

    def get_context(self, context_id):
        cache = self.__dict__.setdefault("_stale", {})
        if context_id not in cache:
            cache[context_id] = super().get_context(context_id)
        return cache[context_id]


STORE = StaleStore
'''


def run_kit(directory: Path, conftest: str, *extra: str) -> tuple[int, str]:
    """``pytest -p memory_resources.testing`` (plus ``extra`` options) on ``directory``
    holding ``conftest``, run from its parent (which is on ``PYTHONPATH``, as a project's
    root would be)."""
    directory.mkdir()
    (directory / "conftest.py").write_text(textwrap.dedent(conftest))
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(directory.parent)}
    env.pop("PYTEST_ADDOPTS", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "memory_resources.testing",
         "-p", "no:cacheprovider", "-q", "-rfs", "--timeout", "120", *extra, str(directory)],
        cwd=directory.parent, env=env, capture_output=True, text=True, timeout=540, check=False)
    return result.returncode, result.stdout + result.stderr


def counts(output: str) -> dict[str, int]:
    """The ``N passed, M failed, ...`` figures of pytest's last line."""
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|error)",
                                                    output.strip().splitlines()[-1])}


def test_the_kit_passes_on_the_embedded_stores(tmp_path: Path) -> None:
    """Every role's suite runs against SQLite and numpy and passes, none skipped."""
    code, output = run_kit(tmp_path / "sqlite", SQLITE_CONFTEST + ALL_ROLES)
    assert code == 0, output[-6000:]
    assert ("checked context_store, event_log, lock_manager, run_history, task_outputs, "
            "audit_log, vector_index; not provided (skipped): none") in output
    figures = counts(output)
    assert figures.get("passed", 0) >= 200 and set(figures) == {"passed"}, output[-3000:]


def test_the_kit_fails_on_a_store_with_stale_reads(tmp_path: Path) -> None:
    """A store whose get_context keeps returning its first answer fails the ContextStore
    suite, with pytest's assertion detail, and the roles it lacks are reported skipped."""
    code, output = run_kit(tmp_path / "stale", SQLITE_CONFTEST + STALE_READS)
    assert code == 1, output[-6000:]
    failed = set(re.findall(r"^FAILED \S+::context_store::(test_\w+)", output, re.M))
    assert {"test_ttl_is_reported_and_removed_by_a_set_without_ttl",
            "test_expired_context_is_invisible_and_restarts_at_version_one"} <= failed, (
        output[-6000:])
    assert re.search(r"^E\s+\+\s+where ", output, re.M), "assertions are not rewritten"
    assert "not provided (skipped): event_log, lock_manager" in output
    assert "role lock_manager not provided: define a memory_lock_manager fixture" in output
    assert counts(output)["skipped"] == 6


def test_the_documented_conftest_passes_on_the_example_backend(tmp_path: Path) -> None:
    """docs/extending.md's conftest, beside a copy of the example backend, runs the kit the
    way the page says, and the example passes its ContextStore suite."""
    docs = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- kit:conftest -->\s*```python\n(.*?)```", docs, re.S)
    assert match, "docs/extending.md has no block marked kit:conftest"
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "tests" / "extending" / "example_backend.py", project)
    code, output = run_kit(project / "tests", match.group(1))
    assert code == 0, output[-6000:]
    assert "tests/conftest.py: checked context_store; not provided (skipped): event_log" in output
    figures = counts(output)
    assert figures["passed"] >= 35 and figures["skipped"] == 6 and len(figures) == 2, (
        output[-3000:])


def test_the_kit_reports_its_runs_under_xdist(tmp_path: Path) -> None:
    """Under pytest-xdist (``-n 2``) the workers collect and run the suites; the controller's
    summary still says, once, what was checked and what was not provided."""
    code, output = run_kit(tmp_path / "xdist", SQLITE_CONFTEST, "-n", "2")
    assert code == 0, output[-6000:]
    line = "checked context_store; not provided (skipped): event_log"
    assert output.count(line) == 1, output[-3000:]
    assert counts(output)["passed"] >= 35


def test_without_fixtures_the_kit_says_what_to_define(tmp_path: Path) -> None:
    """A project that defines no ``memory_<role>`` fixture is told which names to use."""
    code, output = run_kit(tmp_path / "empty", "import pytest\n")
    assert code == 5, output
    assert "no collected conftest.py defines a fixture named memory_context_store" in output


def test_importing_the_library_does_not_import_pytest() -> None:
    """Only memory_resources.testing imports pytest: the package itself runs without it."""
    probe = ("import sys, memory_resources, memory_resources.api, memory_resources.blocks; "
             "print('pytest' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip() == "False"
