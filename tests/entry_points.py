"""Install a distribution for the length of a test: modules plus a ``*.dist-info`` folder
(METADATA, entry_points.txt) on ``sys.path``, so ``importlib.metadata`` finds its entry
points exactly as it finds those of a ``pip install``-ed package."""

from __future__ import annotations

import contextlib
import importlib
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path


@contextlib.contextmanager
def installed_distribution(
    root: Path,
    name: str,
    entry_points: Mapping[str, Mapping[str, str]],
    modules: Mapping[str, str] | None = None,
) -> Iterator[Path]:
    """Write ``modules`` (``{module name: source}``) and ``name``'s dist-info declaring
    ``entry_points`` (``{group: {entry name: "module:attribute"}}``) under ``root``, put
    ``root`` first on ``sys.path``; undo both (and forget the modules) on exit."""
    root.mkdir(parents=True, exist_ok=True)
    for module, source in (modules or {}).items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    dist = root / f"{name.replace('-', '_')}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = []
    for group, points in entry_points.items():
        lines.append(f"[{group}]")
        lines.extend(f"{point} = {target}" for point, target in points.items())
        lines.append("")
    (dist / "entry_points.txt").write_text("\n".join(lines))
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        for module in modules or {}:
            sys.modules.pop(module, None)
        importlib.invalidate_caches()


__all__ = ["installed_distribution"]
