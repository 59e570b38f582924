"""Headless Debian Chromium for the UI tests: find (or install) it, dump a page, screenshot it.

The flags are the ones that work on this closed, root-only machine class: without the
networking flags Chromium's own background connections fail; ``--no-sandbox`` is needed as
root; an empty ``--user-data-dir`` per call keeps runs independent.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENSURE_SCRIPT = REPO / "scripts" / "ensure_chromium.sh"
ARTIFACTS = REPO / ".test-artifacts" / "ui"

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--disable-dev-shm-usage",
]


class ChromiumUnavailable(Exception):
    """Chromium is missing and could not be installed here."""


def find_chromium() -> str | None:
    """The path of an installed Chromium, if any."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure_chromium() -> str:
    """An installed Chromium and chromedriver, installing Debian's ``chromium`` and
    ``chromium-driver`` with scripts/ensure_chromium.sh when either is missing."""
    path = find_chromium()
    if path and shutil.which("chromedriver"):
        return path
    result = subprocess.run(["sh", str(ENSURE_SCRIPT)], capture_output=True, text=True,
                            timeout=900, stdin=subprocess.DEVNULL)
    path = find_chromium()
    if path and shutil.which("chromedriver"):
        return path
    raise ChromiumUnavailable(
        f"chromium/chromedriver not installed and {ENSURE_SCRIPT.name} could not install "
        f"them (exit {result.returncode}): {result.stderr.strip()[-500:]}")


class Chromium:
    """One Chromium binary driven from the command line (``--dump-dom``, ``--screenshot``)."""

    def __init__(self, binary: str, profiles: Path) -> None:
        self.binary = binary
        self.profiles = profiles
        self._calls = 0

    def _run(self, url: str, extra: list[str], budget_ms: int, timeout: float
             ) -> subprocess.CompletedProcess[str]:
        self._calls += 1
        profile = self.profiles / f"profile-{self._calls}"
        profile.mkdir(parents=True)
        env = dict(os.environ, HOME=str(profile))  # no writes to the real home
        return subprocess.run(
            [self.binary, *FLAGS, f"--user-data-dir={profile}", "--window-size=1280,1600",
             f"--virtual-time-budget={budget_ms}", *extra, url],
            capture_output=True, text=True, timeout=timeout, env=env,
            stdin=subprocess.DEVNULL,
        )

    def dump_dom(self, url: str, budget_ms: int = 15000, timeout: float = 120) -> str:
        """The page's DOM after its scripts ran for ``budget_ms`` of virtual time."""
        result = self._run(url, ["--dump-dom"], budget_ms, timeout)
        if result.returncode != 0:
            raise RuntimeError(f"chromium --dump-dom exited {result.returncode}: "
                               f"{result.stderr[-2000:]}")
        return result.stdout

    def screenshot(self, url: str, path: Path, budget_ms: int = 15000,
                   timeout: float = 120) -> Path:
        """Save a PNG of the page at 1280x1600 to ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        result = self._run(url, [f"--screenshot={path}"], budget_ms, timeout)
        if result.returncode != 0 or not path.exists():
            raise RuntimeError(f"chromium --screenshot exited {result.returncode}: "
                               f"{result.stderr[-2000:]}")
        return path


def visible_text(dom: str) -> str:
    """The text of a DOM dump without scripts, styles and tags, whitespace collapsed."""
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    text = re.sub(r"<[^>]+>", " ", text)
    return re.sub(r"\s+", " ", html.unescape(text)).strip()


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG file's IHDR chunk (raises if not a PNG)."""
    header = path.read_bytes()[:24]
    if header[:8] != b"\x89PNG\r\n\x1a\n" or header[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG file")
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
