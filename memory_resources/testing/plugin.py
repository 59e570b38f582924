"""The pytest plugin of the contract kit: collect the suites where a conftest provides them.

A ``conftest.py`` that defines at least one ``memory_<role>`` fixture (see :data:`FIXTURES`)
gets the kit's suites as its children: pytest collects it as a file whose tests are the
suite of every role it provides (``<conftest>::<role>::<test>``), so the tests see that
conftest's fixtures exactly as the project's own tests do. A role without its fixture is
one skipped item naming the fixture to define, and the run ends with a summary line per
conftest: roles checked, roles not provided.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROLES: tuple[str, ...] = ("context_store", "event_log", "lock_manager", "run_history",
                          "task_outputs", "audit_log", "vector_index")
"""The roles a backend can implement, in the order the kit runs them."""

FIXTURES: dict[str, str] = {role: f"memory_{role}" for role in ROLES}
"""The fixture a project defines for each role it implements."""

PROTOCOLS: dict[str, str] = {
    "context_store": "a ContextStore", "event_log": "an EventLog",
    "lock_manager": "a LockManager", "run_history": "a RunHistory",
    "task_outputs": "a TaskOutputs",
    "audit_log": "an AuditLog that is also ContextStore, RunHistory and TaskOutputs",
    "vector_index": "a factory make(dimension, metric, *, namespace=None) -> VectorIndex",
}
"""What each role's fixture returns (Protocols of ``memory_resources.protocols``)."""

SUITES: dict[str, tuple[str, ...]] = {**{role: (role,) for role in ROLES},
                                      "batch": ROLES}
"""Suite module (under ``memory_resources.testing.suites``) -> the roles its tests use; a
test of a multi-role suite runs when the role it asks for is provided."""

_PACKAGE = "memory_resources.testing.suites"


@dataclass(frozen=True)
class KitRun:
    """What one conftest's kit checks."""

    where: str
    provided: tuple[str, ...]
    missing: tuple[str, ...]


_RUNS = pytest.StashKey[list[KitRun]]()


def _conftest_module(config: pytest.Config, path: Path) -> ModuleType | None:
    """The conftest module pytest loaded from ``path`` (registered under its path)."""
    plugin = config.pluginmanager.get_plugin(str(path))
    if isinstance(plugin, ModuleType):
        return plugin
    for candidate in config.pluginmanager.get_plugins():
        file = getattr(candidate, "__file__", None)
        if isinstance(candidate, ModuleType) and file and Path(file) == path:
            return candidate
    return None


def _is_provided(node: pytest.Collector, fixture: str) -> bool:
    """Whether a fixture named ``fixture`` is visible to ``node``."""
    manager: Any = node.session._fixturemanager  # pytest's own lookup: no public equivalent
    where: Any = node if pytest.version_tuple >= (8, 1) else node.nodeid  # 8.0 takes the id
    return bool(manager.getfixturedefs(fixture, where))


class SuiteModule(pytest.Module):
    """One suite module of the kit, imported by name, keeping the tests whose role is
    provided."""

    provided: tuple[str, ...] = ()

    def _getobj(self) -> ModuleType:
        return importlib.import_module(f"{_PACKAGE}.{self.name}")

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        missing = {FIXTURES[role] for role in ROLES if role not in self.provided}
        return [node for node in super().collect()
                if not missing.intersection(getattr(node, "fixturenames", ()))]


class RoleNotProvided(pytest.Item):
    """A placeholder, skipped, naming the fixture that would run a role's suite."""

    def runtest(self) -> None:  # never runs: the item carries a skip mark
        raise AssertionError("RoleNotProvided is always skipped")

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"memory_resources.testing: {self.name} not provided"


class KitFile(pytest.File):
    """A ``conftest.py`` providing roles, collected as the kit's suites for them."""

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        provided = tuple(role for role in ROLES if _is_provided(self, FIXTURES[role]))
        missing = tuple(role for role in ROLES if role not in provided)
        self.config.stash.setdefault(_RUNS, []).append(KitRun(self.nodeid, provided, missing))
        suites = importlib.import_module(_PACKAGE)
        directory = Path(suites.__file__ or "").parent
        for name, roles in SUITES.items():
            if set(roles) & set(provided):
                module = SuiteModule.from_parent(self, path=directory / f"{name}.py",
                                                 name=name, nodeid=f"{self.nodeid}::{name}")
                module.provided = provided
                yield module
        for role in missing:
            item = RoleNotProvided.from_parent(self, name=role)
            item.add_marker(pytest.mark.skip(
                reason=f"role {role} not provided: define a {FIXTURES[role]} fixture "
                       f"returning {PROTOCOLS[role]} to run its contract suite"))
            yield item


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> KitFile | None:
    """A conftest.py that defines a ``memory_<role>`` fixture is collected as the kit."""
    if file_path.name != "conftest.py":
        return None
    module = _conftest_module(parent.config, file_path)
    if module is None or not any(hasattr(module, name) for name in FIXTURES.values()):
        return None
    kit: KitFile = KitFile.from_parent(parent, path=file_path)
    return kit


_OUTPUT = "memory_resources_testing_runs"
"""The key of a pytest-xdist worker's output holding its :class:`KitRun` list."""


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On a pytest-xdist worker, hand what the kit checked to the controller."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output[_OUTPUT] = [[run.where, list(run.provided), list(run.missing)]
                           for run in session.config.stash.get(_RUNS, [])]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """On the pytest-xdist controller, gather each worker's runs (once per conftest)."""
    runs = node.config.stash.setdefault(_RUNS, [])
    seen = {run.where for run in runs}
    for where, provided, missing in getattr(node, "workeroutput", {}).get(_OUTPUT, []):
        if where not in seen:
            seen.add(where)
            runs.append(KitRun(where, tuple(provided), tuple(missing)))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """One line per conftest the kit ran under: roles checked and roles not provided; when
    ``-p memory_resources.testing`` found no conftest to run under, the fixture names."""
    runs = config.stash.get(_RUNS, [])
    if not runs:
        asked = "memory_resources.testing" in (config.getoption("plugins", None) or [])
        if asked and not terminalreporter.stats.get("passed") and not (
                terminalreporter.stats.get("failed")):
            terminalreporter.write_line(
                "memory_resources.testing: no collected conftest.py defines a fixture named "
                + ", ".join(FIXTURES.values()) + "; nothing was checked")
        return
    terminalreporter.section("memory_resources.testing")
    for run in runs:
        missing = ", ".join(run.missing) or "none"
        terminalreporter.write_line(f"{run.where}: checked {', '.join(run.provided)}; "
                                    f"not provided (skipped): {missing}")
