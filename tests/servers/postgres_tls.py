"""TLS material for a throwaway PostgreSQL (the shared CA of :mod:`tests.servers.tls`): a
server certificate for 127.0.0.1, a client certificate for certificate login (CN
``mr_cert``), a second CA that signed nothing, and a
``pg_hba.conf`` that accepts TLS connections only (``hostssl``).

::

    pki = PostgresPki.make()
    with PostgresServer(settings=pki.server_settings()) as server:
        ...   # sslmode=verify-full sslrootcert=pki.ca; user mr_cert logs in by certificate
    pki.close()
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

from tests.servers.postgres import _chown_tree, service_user
from tests.servers.tls import issue, make_certs

CERT_USER = "mr_cert"
"""The role that logs in with its client certificate (``cert`` auth: CN = role name)."""

HBA = f"""# TLS only: no `host` line, so a connection without TLS finds no entry.
hostssl all         {CERT_USER} 127.0.0.1/32 cert
hostssl all         all         127.0.0.1/32 trust
hostssl replication all         127.0.0.1/32 trust
"""


@dataclasses.dataclass(frozen=True)
class PostgresPki:
    """Paths of the TLS files (the directory is removed by :meth:`close`)."""

    directory: Path
    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    hba: Path

    @classmethod
    def make(cls) -> PostgresPki:
        """Generate everything in a new directory the server's user can read."""
        directory = Path(tempfile.mkdtemp(prefix="mrtest-pgtls-"))
        directory.chmod(0o755)
        make_certs(directory)
        issue("mr-cert", directory, common_name=CERT_USER, alt_names="")
        ca, other_ca = directory / "ca.crt", directory / "other-ca.crt"
        server_cert, server_key = directory / "server.crt", directory / "server.key"
        client_cert, client_key = directory / "mr-cert.crt", directory / "mr-cert.key"
        hba = directory / "pg_hba.conf"
        hba.write_text(HBA)
        server_dir = directory / "server"
        server_dir.mkdir()
        for path in (server_cert, server_key, ca, hba):  # the server's own copies
            shutil.copy(path, server_dir / path.name)
        (server_dir / server_key.name).chmod(0o600)
        user = service_user()
        if user is not None:
            _chown_tree(server_dir, user)
        return cls(directory, ca, other_ca, server_cert, server_key, client_cert, client_key,
                   hba)

    def server_settings(self) -> dict[str, str]:
        """``-c`` settings of a server that speaks TLS and verifies client certificates."""
        server = self.directory / "server"
        return {"ssl": "on", "ssl_cert_file": str(server / self.server_cert.name),
                "ssl_key_file": str(server / self.server_key.name),
                "ssl_ca_file": str(server / self.ca.name),
                "hba_file": str(server / self.hba.name)}

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


__all__ = ["CERT_USER", "PostgresPki"]
