"""A loopback TCP proxy the fault tests drive: pass, delay, black-hole, reject, cut.

Put it between a client and a throwaway (or the machine's) server and change its mode while
the client runs::

    with TcpProxy("127.0.0.1", 6379) as proxy:
        client = redis.Redis(port=proxy.port)
        proxy.blackhole()      # established and new connections: bytes vanish, no reply
        proxy.pass_through()   # traffic flows again (black-holed bytes stay lost)
        proxy.cut()            # reset every open connection (RST), new ones still accepted
        proxy.reject()         # new connections are accepted and closed at once
        proxy.delay(0.2)       # each chunk forwarded 0.2 s late, both directions

Only loopback addresses: the proxy listens on 127.0.0.1 and refuses other targets.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time

from tests.servers._process import LOOPBACK, ManagedServer

PASS, BLACKHOLE, REJECT = "pass", "blackhole", "reject"
_POLL = 0.05
_CHUNK = 65536


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with an RST (SO_LINGER 0), as a dropped middlebox would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Link:
    """One client connection and its upstream, pumped in both directions by one thread."""

    def __init__(
        self, proxy: TcpProxy, client: socket.socket, upstream: socket.socket,
        keep: socket.socket | None = None,
    ) -> None:
        self.proxy = proxy
        self._keep = keep  # the silent far end of a black-holed connection
        self.client = client
        self.upstream = upstream
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._pump, name="tcp-proxy-link", daemon=True)

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            _reset(self.client)
            _reset(self.upstream)
            if self._keep is not None:
                _reset(self._keep)

    def _pump(self) -> None:
        peers = {self.client: self.upstream, self.upstream: self.client}
        try:
            while not self.closed.is_set():
                readable, _, _ = select.select(list(peers), [], [], _POLL)
                for sock in readable:
                    data = sock.recv(_CHUNK)
                    if not data:
                        return
                    mode, delay = self.proxy.mode, self.proxy.delay_seconds
                    if mode == BLACKHOLE:
                        continue
                    if delay:
                        time.sleep(delay)
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            self.close()
            self.proxy._forget(self)


class TcpProxy(ManagedServer):
    """Forwards 127.0.0.1:``port`` to ``target_host``:``target_port`` under a mode tests set."""

    def __init__(self, target_host: str, target_port: int) -> None:
        if target_host not in (LOOPBACK, "localhost", "::1"):
            raise ValueError(f"TcpProxy only forwards to loopback, not {target_host!r}")
        self.target = (target_host, target_port)
        self.mode = PASS
        self.delay_seconds = 0.0
        self.port = 0
        self.connections_accepted = 0
        self._listener: socket.socket | None = None
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._acceptor: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        return LOOPBACK, self.port

    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, self.port))
        listener.listen(128)
        self._listener = listener
        self.port = int(listener.getsockname()[1])
        self._stopped.clear()
        self._acceptor = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._acceptor.start()
        return self

    def close(self) -> None:
        self._stopped.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        if self._acceptor is not None:
            self._acceptor.join(timeout=2)
        self.cut()
        self._listener = None

    # -- modes ---------------------------------------------------------------------------
    def pass_through(self) -> None:
        """Forward everything, with no delay."""
        self.mode, self.delay_seconds = PASS, 0.0

    def blackhole(self) -> None:
        """Accept and swallow every byte in both directions: the peer never answers."""
        self.mode = BLACKHOLE

    def reject(self) -> None:
        """Close new connections as soon as they are accepted (open ones keep working)."""
        self.mode = REJECT

    def delay(self, seconds: float) -> None:
        """Forward every chunk ``seconds`` late (0 for none)."""
        self.mode, self.delay_seconds = PASS, float(seconds)

    def cut(self) -> None:
        """Reset every open connection; the listener keeps accepting."""
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._links)

    # -- internals -----------------------------------------------------------------------
    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)

    def _accept(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopped.is_set():
            readable, _, _ = select.select([listener], [], [], _POLL)
            if not readable:
                continue
            try:
                client, _ = listener.accept()
            except OSError:
                return
            self.connections_accepted += 1
            if self.mode == REJECT:
                _reset(client)
                continue
            self._open_link(client)

    def _open_link(self, client: socket.socket) -> None:
        if self.mode == BLACKHOLE:
            # A hung server: the TCP handshake completes, nothing ever comes back.
            silent, far_end = socket.socketpair()
            link = _Link(self, client, silent, keep=far_end)
        else:
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                return
            upstream.settimeout(None)
            link = _Link(self, client, upstream)
        with self._lock:
            self._links.add(link)
        link.thread.start()
