"""A throwaway certificate authority for TLS tests (``openssl`` on PATH).

:func:`make_certs` writes ``ca.crt``/``ca.key`` and, signed by it, ``server.*`` and
``client.*`` (P-256 keys, valid one day, subjectAltName ``IP:127.0.0.1``), plus a second,
unrelated ``other-ca.crt`` that a client may wrongly trust.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.servers._process import ServerStartError


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _ca(name: str, cwd: Path) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "1",
             "-subj", f"/CN=memory-resources-test-{name}", cwd=cwd)


def issue(name: str, cwd: Path, *, common_name: str = "127.0.0.1",
          alt_names: str = "IP:127.0.0.1") -> None:
    """A P-256 key (mode 0600) and a certificate for ``common_name`` signed by
    ``cwd/ca.crt``, with ``alt_names`` as subjectAltName (empty: none). A PostgreSQL client
    certificate names its user in the CN (``common_name="mr_cert", alt_names=""``)."""
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={common_name}",
             cwd=cwd)
    (cwd / f"{name}.key").chmod(0o600)
    extensions: list[str] = []
    if alt_names:
        (cwd / f"{name}.ext").write_text(f"subjectAltName={alt_names}\n")
        extensions = ["-extfile", f"{name}.ext"]
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "1", *extensions, cwd=cwd)


def make_certs(directory: Path) -> Path:
    """Write the CA, server and client certificates (and ``other-ca.crt``) into
    ``directory``; returns it."""
    if shutil.which("openssl") is None:
        raise ServerStartError("openssl is needed to make the test certificates")
    directory.mkdir(parents=True, exist_ok=True)
    _ca("ca", directory)
    _ca("other-ca", directory)
    issue("server", directory)
    issue("client", directory)
    return directory
