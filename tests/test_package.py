"""What a packager checks: one version everywhere, every error class importable from the
package, ``python -m memory_resources`` and ``--version``."""

from __future__ import annotations

import importlib.metadata
import inspect
import subprocess
import sys

import memory_resources
from memory_resources import errors
from memory_resources._version import __version__


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
