"""A throwaway certificate authority for the TLS tests (openssl on PATH)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.servers._process import ServerStartError


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(cwd: Path, name: str = "ca") -> Path:
    """A self-signed P-256 CA (``<name>.key``, ``<name>.crt``) valid one day; its cert path."""
    if shutil.which("openssl") is None:
        raise ServerStartError("openssl is needed to make the test certificates")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "1",
             "-subj", f"/CN=memory-resources-test-{name}", cwd=cwd)
    return cwd / f"{name}.crt"


def issue(name: str, cwd: Path, ca: str = "ca", *, common_name: str = "127.0.0.1",
          alt_names: str = "IP:127.0.0.1") -> tuple[Path, Path]:
    """A P-256 key (mode 0600) and a certificate signed by ``<ca>.crt`` for ``common_name``
    with ``alt_names`` as subjectAltName (empty: none): (cert, key)."""
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={common_name}",
             cwd=cwd)
    (cwd / f"{name}.key").chmod(0o600)
    extensions = ["-extfile", f"{name}.ext"] if alt_names else []
    if alt_names:
        (cwd / f"{name}.ext").write_text(f"subjectAltName={alt_names}\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "1", *extensions, cwd=cwd)
    return cwd / f"{name}.crt", cwd / f"{name}.key"
