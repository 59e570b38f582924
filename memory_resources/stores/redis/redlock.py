"""Redlock primitives over the primary plus ``lock_nodes``, with a fencing token.

:class:`memory_resources.locking.Lock` drives these primitives (retry with jitter,
validity = ttl - elapsed - drift, watchdog); what is Redis-specific lives here:

* **acquire**: one Lua script per node does ``SET NX PX`` and, on success, ``INCR`` of the
  lock's fencing counter, so acquire plus token is one round trip per node. The requests
  go to every master at once (one small worker pool per master) and the caller returns as
  soon as a quorum ``N//2+1`` granted, or as soon as a quorum became impossible, waiting at
  most ``lock_node_timeout``. A master that has not answered by then counts as failed;
  its request finishes in the background (bounded by the same timeout on its socket), and
  when it grants a lease the caller already gave up on, the lease is released there. A
  master with ``max_connections`` requests still pending is skipped at once, so a dead
  master never queues up callers.
* **fencing token**: the largest counter among the quorum. When the nodes' counters
  disagree (a node missed earlier rounds), the nodes of the quorum are lifted to that token
  in a second step, so any later quorum, which overlaps this one, returns a larger token.
  With a single node the counter is simply the INCR result.
* **release / extend**: Lua compare-and-delete / compare-and-pexpire sent to every node;
  the caller returns once a quorum confirmed (or cannot), after at most
  ``lock_node_timeout``.

With one master (no ``lock_nodes``) the calls run under the store's deadline and retry
policy (an acquire, which increments the counter, is retried only when it provably did not
reach the server). Per-node failures are tolerated while a quorum is still possible; when
too many nodes fail to ever reach one, :class:`BackendUnavailableError` is raised instead
of a silent refusal.
"""

from __future__ import annotations

import os
import selectors
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from operator import attrgetter
from typing import Any

import redis.exceptions as rex

from ...errors import BackendError, BackendUnavailableError
from .acks import ReplicaAcks, write
from .direct import execute
from .errors import BACKEND, CAUGHT, translate
from .keys import KeySpace
from .lane import Lane
from .nodes import PENDING, LockNode, Round, Worker
from .quorum import check_reachable, confirmed, granted, until
from .retrying import RetryPolicy
from .scripts import Scripts, run

_ACQUIRE = attrgetter("acquire")
_RELEASE = attrgetter("release")
_EXTEND = attrgetter("extend")
_RAISE_FENCE = attrgetter("raise_fence")
_GRACE = 0.002
"""Once a request is decided, how long its caller still reads replies arriving from the
other masters (so a healthy master's connection is not handed to a worker thread)."""


class Redlock:
    """The :class:`~memory_resources.protocols.LockManager` primitives over ``nodes``."""

    def __init__(self, nodes: Sequence[LockNode], keys: KeySpace, policy: RetryPolicy,
                 node_timeout: float = 0.5, max_pending: int = 50, *,
                 acks: ReplicaAcks | None = None) -> None:
        self.nodes = list(nodes)
        self.acks = acks
        """``replica_acks`` of a single node (a cluster or a primary with replicas); Redlock
        over independent masters needs no WAIT (each master is its own failure domain)."""
        self.keys = keys
        self.quorum = len(self.nodes) // 2 + 1
        self.policy = policy
        self.node_timeout = min(node_timeout, policy.timeout)
        self.single = len(self.nodes) == 1
        self._max_pending = max_pending
        self._start()

    def _start(self) -> None:
        """Worker pools, lanes and in-flight acquires of this process (again after a
        fork: the child has none of the parent's threads or connections)."""
        self._pid = os.getpid()
        self._workers = [] if self.single else [
            Worker(node.label, self._max_pending) for node in self.nodes]
        self._acquiring: dict[tuple[int, str, str], threading.Event] = {}
        """Acquires in flight per (node, lease, owner): a later request of the same owner
        on that node waits for it, so a release never overtakes its own acquire."""
        self._acquiring_guard = threading.Lock()
        self._lanes: list[Lane | None] = [] if self.single else [
            None if node.cluster else Lane(node.client.connection_pool, self._max_pending)
            for node in self.nodes]

    def close(self) -> None:
        """Stop the worker threads (without waiting) and close every node's client."""
        for worker in self._workers:
            worker.executor.shutdown(wait=False, cancel_futures=True)
        for lane in self._lanes:
            if lane is not None:
                lane.close()
        for node in self.nodes:
            node.close()

    # -- fan-out -----------------------------------------------------------------------------

    def _request(self, node: LockNode, pick: Callable[[Scripts], Any] | str,
                 keys: tuple[str, ...], args: tuple[Any, ...]) -> Any:
        """One request to one master (no retry): a script picked from its :class:`Scripts`
        or a plain command name; a failure is returned as a typed error."""
        try:
            if isinstance(pick, str):
                return execute(node.client, None, pick, pick, *keys, *args)
            return run(pick(node.scripts), node.client, keys, args)
        except CAUGHT as exc:
            return translate(exc, self.policy.secrets, where=f"lock node {node.label}")
        except Exception as exc:  # a worker must never die silently
            return BackendError(BACKEND, f"lock node {node.label}: {type(exc).__name__}: {exc}")

    def _submit(self, index: int, fn: Callable[[], None], gate: tuple[str, str] | None,
                opens: bool = False) -> bool:
        """Queue ``fn`` on node ``index``'s worker, ordered after an acquire of the same
        ``gate`` (lease, owner) still in flight there; with ``opens`` ``fn`` is that
        acquire. False when the node is skipped (too many requests pending)."""
        if gate is None:
            return self._workers[index].submit(fn)
        key = (index, *gate)
        with self._acquiring_guard:
            before = self._acquiring.get(key)
            mine = threading.Event() if opens else None
            if mine is not None:
                self._acquiring[key] = mine
        wait = self.node_timeout * 4

        def ordered() -> None:
            try:
                if before is not None:
                    before.wait(wait)
                fn()
            finally:
                if mine is not None:
                    mine.set()
                    with self._acquiring_guard:
                        if self._acquiring.get(key) is mine:
                            del self._acquiring[key]

        if self._workers[index].submit(ordered):
            return True
        if mine is not None:
            mine.set()
            with self._acquiring_guard:
                if self._acquiring.get(key) is mine:
                    del self._acquiring[key]
        return False

    def _fanout(self, pick: Callable[[Scripts], Any] | str, keys: tuple[str, ...],
                args: tuple[Any, ...], targets: Sequence[int],
                done: Callable[[list[Any]], bool], *, opens: bool = False,
                wait: float | None = None) -> tuple[list[Any], Round]:
        """Send one request to the ``targets`` (node indexes) at once; return when ``done``
        says the answers so far decide, or after ``node_timeout``. Nodes without an answer
        by then are reported as failed. Requests carrying an owner (``args[0]``) are
        ordered after that owner's acquire on the same node (``opens``: this is one)."""
        if self._pid != os.getpid():
            self._start()
        gate = (keys[0], str(args[0])) if keys and args else None
        span = self.node_timeout if wait is None else min(wait, self.node_timeout)
        inline = self._fanout_inline(pick, keys, args, targets, done, gate, opens, span)
        if inline is not None:
            return inline
        state = Round(len(targets))
        for slot, index in enumerate(targets):
            node = self.nodes[index]

            def task(slot: int = slot, node: LockNode = node) -> None:
                self._settle(state, slot, node, self._request(node, pick, keys, args),
                             keys, args)

            if not self._submit(index, task, gate, opens):
                state.results[slot] = BackendUnavailableError(
                    BACKEND, f"lock node {node.label}: skipped, {self._workers[index].limit} "
                    "earlier requests to it are still unanswered")
        limit = time.monotonic() + span
        with state.cond:
            while not done(state.results):
                left = limit - time.monotonic()
                if left <= 0:
                    break
                state.cond.wait(left)
            state.closed = True
            results = list(state.results)
        decided = done(results)
        for slot, result in enumerate(results):
            if result is PENDING:
                results[slot] = self._unanswered(self.nodes[targets[slot]], decided)
        return results, state

    def _unanswered(self, node: LockNode, decided: bool) -> BackendUnavailableError:
        """The error standing for ``node``'s missing answer (``decided``: not waited for)."""
        if decided:
            return BackendUnavailableError(
                BACKEND, f"lock node {node.label}: not waited for, the others decided")
        return BackendUnavailableError(
            BACKEND, f"lock node {node.label}: no answer within "
            f"lock_node_timeout={self.node_timeout:g} s")

    def _settle(self, state: Round, slot: int, node: LockNode, result: Any,
                keys: tuple[str, ...], args: tuple[Any, ...]) -> None:
        """Record a node's answer; after the caller moved on, keep it for :meth:`_decide`,
        or release a grant the caller gave up on."""
        with state.cond:
            if not state.closed:
                state.results[slot] = result
                state.cond.notify()
                return
            if state.verdict is None:
                state.late.append((node, result))
                return
            verdict = state.verdict
        if verdict == "undo" and granted(result):
            self._request(node, _RELEASE, keys[:1], args[:1])

    def _command(self, node: LockNode, pick: Callable[[Scripts], Any] | str,
                 keys: tuple[str, ...], args: tuple[Any, ...]) -> tuple[Any, ...]:
        if isinstance(pick, str):
            return (pick, *keys, *args)
        return ("EVALSHA", pick(node.scripts).sha, len(keys), *keys, *args)

    def _read(self, node: LockNode, conn: Any, pick: Callable[[Scripts], Any] | str,
              keys: tuple[str, ...], args: tuple[Any, ...], lane: Lane) -> Any:
        """The reply on ``conn`` (readable); the connection goes back to ``lane`` unless it
        failed."""
        try:
            reply = conn.read_response()
        except rex.NoScriptError:
            lane.give(conn)
            return self._request(node, pick, keys, args)  # loads the script
        except rex.ResponseError as exc:
            lane.give(conn)
            return translate(exc, self.policy.secrets, where=f"lock node {node.label}")
        except CAUGHT as exc:
            conn.disconnect()
            return translate(exc, self.policy.secrets, where=f"lock node {node.label}")
        lane.give(conn)
        return reply

    def _fanout_inline(self, pick: Callable[[Scripts], Any] | str, keys: tuple[str, ...],
                       args: tuple[Any, ...], targets: Sequence[int],
                       done: Callable[[list[Any]], bool], gate: tuple[str, str] | None,
                       opens: bool, span: float) -> tuple[list[Any], Round] | None:
        """:meth:`_fanout` from the caller's thread when every target has an idle
        connection (:class:`Lane`) and no acquire of the same owner is in flight there;
        else None. Requests are written to every master, replies read as they arrive
        (``select``); a master without an answer after ``node_timeout`` is handed, with
        its connection, to its worker thread, which finishes the read."""
        lanes = [self._lanes[index] for index in targets]
        if any(lane is None or not lane.usable for lane in lanes):
            return None
        if gate is not None:
            with self._acquiring_guard:
                if any((index, *gate) in self._acquiring for index in targets):
                    return None
        taken: list[Any] = []
        for index, lane in zip(targets, lanes, strict=True):
            assert lane is not None
            conn = lane.take()
            if conn is None and not lane.warming:
                lane.warming = True
                if not self._workers[index].submit(lane.warm):
                    lane.warming = False
            taken.append(conn)
        if any(conn is None for conn in taken):
            for lane, conn in zip(lanes, taken, strict=True):
                if conn is not None and lane is not None:
                    lane.give(conn)
            return None
        state = Round(len(targets))
        results = state.results
        selector = selectors.DefaultSelector()
        try:
            for slot, (index, conn) in enumerate(zip(targets, taken, strict=True)):
                node = self.nodes[index]
                try:
                    conn.send_command(*self._command(node, pick, keys, args),
                                      check_health=False)
                    selector.register(conn._sock, selectors.EVENT_READ, slot)
                except CAUGHT as exc:
                    conn.disconnect()
                    results[slot] = translate(exc, self.policy.secrets,
                                              where=f"lock node {node.label}")
            limit = time.monotonic() + span
            while selector.get_map():
                if limit - time.monotonic() > _GRACE and done(results):
                    limit = time.monotonic() + _GRACE  # decided: a short look for the rest
                left = limit - time.monotonic()
                events = selector.select(left) if left > 0 else []
                if not events:
                    break  # out of time: the rest are stragglers
                for key, _ in events:
                    slot = key.data
                    selector.unregister(key.fileobj)
                    index = targets[slot]
                    lane = lanes[slot]
                    assert lane is not None
                    results[slot] = self._read(self.nodes[index], taken[slot], pick, keys,
                                               args, lane)
            stragglers = [key.data for key in selector.get_map().values()]
            decided = done(results)
        finally:
            selector.close()
        state.closed = True
        answers = list(results)
        for slot in stragglers:
            index = targets[slot]
            node, conn, lane = self.nodes[index], taken[slot], lanes[slot]
            assert lane is not None

            def finish(slot: int = slot, node: LockNode = node, conn: Any = conn,
                       lane: Lane = lane) -> None:
                self._settle(state, slot, node, self._read(node, conn, pick, keys, args,
                                                           lane), keys, args)

            if not self._submit(index, finish, gate, opens):
                conn.disconnect()
            answers[slot] = self._unanswered(node, decided)
        for slot, result in enumerate(answers):
            if result is PENDING:  # not sent: decided without it
                answers[slot] = BackendUnavailableError(
                    BACKEND, f"lock node {self.nodes[targets[slot]].label}: not asked")
        return answers, state

    def _decide(self, state: Round, verdict: str, release: tuple[tuple[str, ...],
                tuple[Any, ...]]) -> None:
        """Fix what late answers of ``state`` mean; with ``undo`` a late grant is released."""
        with state.cond:
            state.verdict = verdict
            late, state.late = state.late, []
        if verdict == "undo":
            keys, args = release
            for node, result in late:
                if granted(result):
                    self._submit(self.nodes.index(node), partial(
                        self._request, node, _RELEASE, keys, args), None)

    def _release_where(self, results: Sequence[Any], targets: Sequence[int],
                       keys: tuple[str, ...], owner: str) -> None:
        """Release (without waiting) on the targets that granted."""
        for slot, result in enumerate(results):
            if granted(result):
                index = targets[slot]
                self._submit(index, partial(self._request, self.nodes[index], _RELEASE, keys,
                                            (owner,)), (keys[0], owner))

    # -- primitives --------------------------------------------------------------------------

    def try_acquire(self, name: str, owner: str, ttl_ms: int) -> int | None:
        """Take the lease on a quorum and return its fencing token, else ``None``."""
        lease, fence = self.keys.lock_pair(name)
        if self.single:
            node = self.nodes[0]
            token = write(node.scripts.acquire, node.client, (lease, fence), (owner, ttl_ms),
                          cluster=node.cluster, acks=self.acks, policy=self.policy,
                          what="lock acquire", idempotent=False)
            return None if token is None else int(token)
        everyone = range(len(self.nodes))
        results, state = self._fanout(_ACQUIRE, (lease, fence), (owner, ttl_ms), everyone,
                                      until(granted, self.quorum), opens=True,
                                      wait=ttl_ms / 1000)
        won = [(index, int(r)) for index, r in enumerate(results) if granted(r)]
        if len(won) < self.quorum:
            self._decide(state, "undo", ((lease,), (owner,)))
            self._release_where(results, everyone, (lease,), owner)
            check_reachable(results, self.quorum, "acquire", granted)
            return None
        self._decide(state, "keep", ((lease,), (owner,)))
        token = max(t for _, t in won)
        behind = [index for index, t in won if t < token]
        if behind:
            need = self.quorum - (len(won) - len(behind))
            lifted, _ = self._fanout(_RAISE_FENCE, (lease, fence), (owner, token), behind,
                                     until(confirmed, need))
            if sum(1 for r in lifted if confirmed(r)) < need:
                self._release_where(results, everyone, (lease,), owner)
                return None
        return token

    def release(self, name: str, owner: str) -> bool:
        """Compare-and-delete on every node; True when a quorum released it."""
        lease, _ = self.keys.lock_pair(name)
        if self.single:
            node = self.nodes[0]
            return bool(write(node.scripts.release, node.client, (lease,), (owner,),
                              cluster=node.cluster, acks=self.acks, policy=self.policy,
                              what="lock release"))
        results, _ = self._fanout(_RELEASE, (lease,), (owner,), range(len(self.nodes)),
                                  until(confirmed, self.quorum))
        released = sum(1 for r in results if confirmed(r)) >= self.quorum
        if not released:
            check_reachable(results, self.quorum, "release", confirmed)
        return released

    def extend(self, name: str, owner: str, ttl_ms: int) -> bool:
        """Compare-and-pexpire on every node; True when a quorum still held it."""
        lease, _ = self.keys.lock_pair(name)
        if self.single:
            node = self.nodes[0]
            return bool(write(node.scripts.extend, node.client, (lease,), (owner, ttl_ms),
                              cluster=node.cluster, acks=self.acks, policy=self.policy,
                              what="lock extend"))
        results, _ = self._fanout(_EXTEND, (lease,), (owner, ttl_ms), range(len(self.nodes)),
                                  until(confirmed, self.quorum))
        extended = sum(1 for r in results if confirmed(r)) >= self.quorum
        if not extended:
            check_reachable(results, self.quorum, "extend", confirmed)
        return extended

    def ping_extra(self) -> list[str]:
        """Labels of the extra lock nodes that did not answer PING in ``node_timeout``."""
        if self.single:
            return []
        extra = range(1, len(self.nodes))
        results, _ = self._fanout("PING", (), (), extra,
                                  lambda rs: all(r is not PENDING for r in rs))
        return [self.nodes[index].label for index, r in zip(extra, results, strict=True)
                if isinstance(r, BackendError)]

    def is_held(self, name: str) -> bool:
        """True when a quorum of nodes has the lease key (one ``EXISTS`` per node)."""
        lease, _ = self.keys.lock_pair(name)
        if self.single:
            node = self.nodes[0]
            return bool(self.policy.call(lambda: int(node.client.exists(lease)),
                                         what="lock is_held"))
        results, _ = self._fanout("EXISTS", (lease,), (), range(len(self.nodes)),
                                  until(confirmed, self.quorum))
        held = sum(1 for r in results if confirmed(r)) >= self.quorum
        if not held:
            check_reachable(results, self.quorum, "is_held", confirmed)
        return held
