"""What a packager checks: one version everywhere, every error class importable from the
package, ``python -m memory_resources`` and ``--version``, and an sdist and wheel that
ship the contract kit (``memory_resources.testing``)."""

from __future__ import annotations

import importlib.metadata
import inspect
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import memory_resources
from memory_resources import errors
from memory_resources._version import __version__
from memory_resources.testing.plugin import SUITES

ROOT = Path(__file__).resolve().parents[1]


def test_every_error_class_is_exported() -> None:
    """Each exception class defined in memory_resources.errors is importable from the
    package root and listed in ``__all__``."""
    defined = {name for name, value in vars(errors).items()
               if inspect.isclass(value) and issubclass(value, Exception)
               and value.__module__ == errors.__name__}
    assert len(defined) >= 17
    assert defined <= set(memory_resources.__all__)
    for name in defined:
        assert getattr(memory_resources, name) is getattr(errors, name)


def test_version_has_one_source() -> None:
    """The installed distribution's version is the one in memory_resources/_version.py."""
    assert memory_resources.__version__ == __version__
    assert importlib.metadata.version("memory-resources") == __version__


def test_python_dash_m_prints_the_version() -> None:
    """``python -m memory_resources --version`` runs the CLI and prints the version."""
    result = subprocess.run([sys.executable, "-m", "memory_resources", "--version"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"memory-resources {__version__}"


def test_python_dash_m_without_arguments_lists_commands() -> None:
    """``python -m memory_resources`` with no command shows the help with the commands."""
    result = subprocess.run([sys.executable, "-m", "memory_resources"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert "migrate" in result.stdout and "health" in result.stdout


SKIP_COPY = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                                   "*.py[cod]", ".*_cache", ".hypothesis", ".services",
                                   ".test-artifacts", "*.db")


@pytest.mark.slow
def test_the_sdist_and_its_wheel_ship_the_contract_kit(tmp_path: Path) -> None:
    """The sdist (built by setuptools from a clean copy of the project) holds the kit, the
    example backend and docs/extending.md; the wheel pip builds from that sdist holds the
    kit's plugin, every suite module and py.typed, the built-in backends' entry points, and
    nothing from tests/."""
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=SKIP_COPY)
    env = tmp_path / "buildenv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=120)
    pip = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "-q",
                          "setuptools>=77"], capture_output=True, text=True, timeout=300,
                         check=False)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    dist = tmp_path / "dist"
    built = subprocess.run(
        [str(env / "bin" / "python"), "-c",
         f"from setuptools import build_meta; print(build_meta.build_sdist({str(dist)!r}))"],
        cwd=source, capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    sdist = dist / built.stdout.strip().splitlines()[-1]
    prefix = sdist.name.removesuffix(".tar.gz")
    with tarfile.open(sdist) as archive:
        in_sdist = {name.removeprefix(prefix + "/") for name in archive.getnames()}
    assert {"memory_resources/testing/plugin.py", "memory_resources/testing/suites/roles.py",
            "tests/extending/example_backend.py", "tests/extending/test_kit.py",
            "tests/contract/conftest.py", "docs/extending.md"} <= in_sdist
    wheel_built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(sdist)],
        capture_output=True, text=True, timeout=300, check=False)
    assert wheel_built.returncode == 0, wheel_built.stdout + wheel_built.stderr
    (wheel,) = dist.glob("memory_resources-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    kit = {"memory_resources/testing/__init__.py", "memory_resources/testing/plugin.py",
           "memory_resources/testing/threads.py", "memory_resources/testing/aio.py",
           "memory_resources/testing/suites/roles.py",
           "memory_resources/py.typed"}
    kit |= {f"memory_resources/testing/suites/{suite}.py" for suite in SUITES}
    assert kit <= names, sorted(kit - names)
    assert not [name for name in names if name.startswith("tests/")]
    points_file = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    points = zipfile.ZipFile(wheel).read(points_file).decode()
    declared = points.split("[memory_resources.backends]", 1)[1].split("[", 1)[0]
    assert {line.split("=")[0].strip() for line in declared.splitlines() if "=" in line} == {
        "sqlite", "redis", "postgres", "numpy", "pgvector", "usearch"}
