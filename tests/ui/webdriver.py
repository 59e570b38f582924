"""A tiny W3C WebDriver client (urllib only) over Debian's ``chromedriver``.

Just what the UI tests need: open a page, find elements, type, click, read the URL, take a
screenshot. ``chromedriver`` listens on a free loopback port and is stopped on exit.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..deploy.server import free_port, terminate
from .browser import FLAGS

_ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C element reference key


def _element_id(reference: dict[str, str]) -> str:
    """The id in an element reference (W3C key, or the legacy ``ELEMENT``)."""
    if _ELEMENT in reference or "ELEMENT" in reference:
        return reference.get(_ELEMENT) or reference["ELEMENT"]
    raise WebDriverError(f"not an element reference: {reference!r}"[:500])


class WebDriverError(RuntimeError):
    """A WebDriver command failed."""


class Session:
    """One browser session of a running chromedriver."""

    def __init__(self, base: str, session_id: str) -> None:
        self.base = base
        self.id = session_id

    def _call(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base}/session/{self.id}{path}", data=data, method=method,
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as exc:
            raise WebDriverError(f"{method} {path}: {exc.read()[:1000]!r}") from None

    def open(self, url: str) -> None:
        """Navigate to ``url`` (returns when the document loaded)."""
        self._call("POST", "/url", {"url": url}, timeout=120)

    @property
    def url(self) -> str:
        """The current URL."""
        value: str = self._call("GET", "/url")
        return value

    def find_all(self, css: str) -> list[str]:
        """Element ids matching the CSS selector, in document order."""
        found = self._call("POST", "/elements", {"using": "css selector", "value": css})
        return [_element_id(item) for item in found]

    def find_xpath(self, xpath: str) -> list[str]:
        """Element ids matching the XPath expression."""
        found = self._call("POST", "/elements", {"using": "xpath", "value": xpath})
        return [_element_id(item) for item in found]

    def wait_for(self, css: str, count: int = 1, timeout: float = 60) -> list[str]:
        """Poll until at least ``count`` elements match ``css``."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find_all(css)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise WebDriverError(f"{css!r}: {len(found)} of {count} elements after "
                                     f"{timeout:.0f} s")
            time.sleep(0.3)

    def wait_for_xpath(self, xpath: str, timeout: float = 60) -> list[str]:
        """Poll until an element matches the XPath expression."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find_xpath(xpath)
            if found:
                return found
            if time.monotonic() > deadline:
                raise WebDriverError(f"{xpath!r}: no element after {timeout:.0f} s")
            time.sleep(0.3)

    def type(self, element: str, text: str) -> None:
        """Type ``text`` into an input element."""
        self._call("POST", f"/element/{element}/value", {"text": text})

    def click(self, element: str) -> None:
        """Click an element."""
        self._call("POST", f"/element/{element}/click", {})

    def text(self, element: str) -> str:
        """The rendered text of an element."""
        value: str = self._call("GET", f"/element/{element}/text")
        return value

    def screenshot(self, path: Path) -> Path:
        """Save a PNG of the viewport to ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._call("GET", "/screenshot")))
        return path

    def close(self) -> None:
        """End the session (closes the browser)."""
        with contextlib.suppress(Exception):
            self._call("DELETE", "", timeout=30)


@contextlib.contextmanager
def browser_session(chromium: str, profile: Path, log: Path) -> Iterator[Session]:
    """A chromedriver + headless Chromium session, stopped on exit."""
    driver = shutil.which("chromedriver")
    if driver is None:
        raise WebDriverError("chromedriver is not installed (Debian package chromium-driver)")
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [driver, f"--port={port}", "--allowed-ips=127.0.0.1"], stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/status", timeout=2) as response:
                    if json.loads(response.read())["value"]["ready"]:
                        break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise WebDriverError("chromedriver did not become ready")
            time.sleep(0.2)
        profile.mkdir(parents=True, exist_ok=True)
        capabilities = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": [
                *FLAGS, f"--user-data-dir={profile}", "--window-size=1280,1600"]},
        }}}
        request = urllib.request.Request(
            f"{base}/session", data=json.dumps(capabilities).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                session_id = json.loads(response.read())["value"]["sessionId"]
        except urllib.error.HTTPError as exc:
            raise WebDriverError(f"new session: {exc.read()[:2000]!r}") from None
        session = Session(base, session_id)
        try:
            yield session
        finally:
            session.close()
    finally:
        terminate(process)
