"""The ``sentinel://`` URL of a Redis Sentinel deployment, parsed once for config and clients.

Syntax (the hosts are the sentinels, not the data nodes; port 26379 when omitted)::

    sentinel://[[user]:password@]host1[:port],host2[:port],.../<service_name>[/db]
    sentinels://...   (TLS to the sentinels and to the data nodes, like rediss://)

The user and password are those of the data nodes (the primary and its replicas), as in a
``redis://`` URL; the sentinels' own credentials are the ``sentinel_username`` /
``sentinel_password`` fields of :class:`~memory_resources.config.RedisConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

SENTINEL_SCHEMES = ("sentinel://", "sentinels://")
DEFAULT_SENTINEL_PORT = 26379
USAGE = ("use sentinel://[[user]:password@]host1:26379,host2:26379,host3:26379/"
         "<service_name>[/db], or sentinels://... for TLS")


@dataclass(frozen=True)
class SentinelURL:
    """What a ``sentinel://`` URL names. ``password`` is a secret: never log it."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None
    password: str | None
    tls: bool

    def __repr__(self) -> str:
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"SentinelURL({hosts}/{self.service}/{self.db}, tls={self.tls})"


def is_sentinel_url(url: str | None) -> bool:
    """True when ``url`` uses the ``sentinel://`` or ``sentinels://`` scheme."""
    return url is not None and url.startswith(SENTINEL_SCHEMES)


def _host_port(item: str) -> tuple[str, int]:
    if item.startswith("["):  # [::1]:26379
        host, _, rest = item[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError("a bracketed IPv6 host must be followed by :port or nothing")
    else:
        host, _, port_text = item.rpartition(":") if ":" in item else (item, "", "")
    if not host:
        raise ValueError("a sentinel host is empty")
    if not port_text:
        return host, DEFAULT_SENTINEL_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"sentinel port {port_text!r} of {host} is not 1-65535")
    return host, int(port_text)


def parse_sentinel_url(url: str) -> SentinelURL:
    """The parts of ``url``; ``ValueError`` saying what is wrong (never quoting the password)."""
    if not url.startswith(SENTINEL_SCHEMES):
        raise ValueError("must start with sentinel:// or sentinels://")
    tls = url.startswith("sentinels://")
    rest = url.split("://", 1)[1]
    netloc, slash, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user_text, colon, password_text = userinfo.partition(":")
        username = unquote(user_text) or None
        password = (unquote(password_text) or None) if colon else None
        if not colon:  # sentinel://secret@host: the one part is the password, as redis://
            username, password = None, unquote(user_text) or None
    if not hosts:
        raise ValueError("names no sentinel host")
    sentinels = tuple(_host_port(item) for item in hosts.split(","))
    parts = path.split("/") if slash else []
    if not parts or not parts[0]:
        raise ValueError("names no service (the master name the sentinels monitor) after "
                         "the hosts")
    if len(parts) > 2 or "?" in path or "#" in path:
        raise ValueError("has more than /<service_name>/<db> after the hosts")
    db_text = parts[1] if len(parts) == 2 else "0"
    if not db_text.isdigit():
        raise ValueError(f"database {db_text!r} is not a number")
    return SentinelURL(sentinels, unquote(parts[0]), int(db_text), username, password, tls)
