"""TLS on a real redis-server: the ssl_* fields verify the server against a CA and present
a client certificate (mutual TLS); without the CA the connection is refused, typed."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from memory_resources.errors import BackendUnavailableError
from tests.fixtures.redis import MakeRedisStore
from tests.servers import RedisServer, free_port


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _issue(name: str, cwd: Path) -> None:
    """A P-256 key and a certificate for 127.0.0.1 signed by ca.crt."""
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", "/CN=127.0.0.1", cwd=cwd)
    (cwd / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "1",
             "-extfile", f"{name}.ext", cwd=cwd)


@pytest.fixture
def tls_server(
    tmp_path: Path, redis_server_factory: Callable[..., RedisServer]
) -> tuple[int, Path]:
    """A throwaway redis-server with a TLS port that requires client certificates."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificates")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
             "-subj", "/CN=memory-resources-test-ca", cwd=tmp_path)
    _issue("server", tmp_path)
    _issue("client", tmp_path)
    port = free_port()
    redis_server_factory(extra_args=(
        "--tls-port", str(port), "--tls-cert-file", str(tmp_path / "server.crt"),
        "--tls-key-file", str(tmp_path / "server.key"),
        "--tls-ca-cert-file", str(tmp_path / "ca.crt"), "--tls-auth-clients", "yes"))
    return port, tmp_path


def test_mutual_tls_round_trip(tls_server: tuple[int, Path],
                               make_redis_store: MakeRedisStore) -> None:
    """ssl=True with the CA bundle and a client certificate talks to a TLS-only port."""
    port, certs = tls_server
    store = make_redis_store(url=None, host="127.0.0.1", port=port, ssl=True,
                             ssl_ca_certs=str(certs / "ca.crt"),
                             ssl_certfile=str(certs / "client.crt"),
                             ssl_keyfile=str(certs / "client.key"))
    store.set_context("tls", {"secure": True}, ttl=60)
    record = store.get_context("tls")
    assert record is not None and record["data"] == {"secure": True}
    url_store = make_redis_store(url=f"rediss://127.0.0.1:{port}/0",
                                 ssl_ca_certs=str(certs / "ca.crt"),
                                 ssl_certfile=str(certs / "client.crt"),
                                 ssl_keyfile=str(certs / "client.key"))
    assert url_store.get_context("tls") is not None


def test_unverified_server_is_refused(tls_server: tuple[int, Path],
                                      make_redis_store: MakeRedisStore) -> None:
    """Without the CA that signed the server certificate the connection fails with
    BackendUnavailableError (certificate verification is on by default)."""
    port, certs = tls_server
    store = make_redis_store(url=None, host="127.0.0.1", port=port, ssl=True,
                             ssl_certfile=str(certs / "client.crt"),
                             ssl_keyfile=str(certs / "client.key"), retry_attempts=0)
    with pytest.raises(BackendUnavailableError) as info:
        store.get_context("tls")
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
