"""The Lua scripts, registered per client.

Each script keeps one operation to one round trip and makes it atomic. A :class:`Scripts`
set is built for every client (primary, each lock node, each pipeline user): redis-py's
``Script`` objects remember the client they were registered on, so they are never shared
between clients.
"""

from __future__ import annotations

from typing import Any

import redis.exceptions as rex

from .direct import execute
from .retrying import RetryPolicy

SET_CONTEXT = """
local old = redis.call('GET', KEYS[1])
local version = 1
local created = ARGV[1]
if old then
  local v, c = string.match(old, '^{"version":(%d+),"created_at":"([^"]*)"')
  if v then
    version = tonumber(v) + 1
    created = c
  end
end
local value = '{"version":' .. string.format('%d', version) .. ',"created_at":"' .. created
  .. '"' .. ARGV[2]
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[1], value, 'PX', ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
else
  redis.call('SET', KEYS[1], value)
  redis.call('PERSIST', KEYS[2])
end
return {version, created}
"""
"""KEYS: context, events. ARGV: now (ISO), rest of the envelope, ttl in ms or ''.
Reads the old version and created_at from the envelope's fixed-order head, writes the new
envelope (with PX when a TTL is given) and gives the event stream the same expiry."""

APPEND_EVENT = """
local id
if ARGV[3] ~= '' then
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'd', ARGV[1], 't', ARGV[2])
else
  id = redis.call('XADD', KEYS[2], '*', 'd', ARGV[1], 't', ARGV[2])
end
local pttl = redis.call('PTTL', KEYS[1])
if pttl > 0 then
  redis.call('PEXPIRE', KEYS[2], pttl)
end
return id
"""
"""KEYS: context, events. ARGV: event JSON, timestamp (ISO), maxlen or ''.
Appends and, when the context has a TTL, makes the stream expire with it."""

APPEND_EVENTS = """
local ids = {}
for i = 3, #ARGV do
  if ARGV[2] ~= '' then
    ids[i - 2] = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'd', ARGV[i], 't',
      ARGV[1])
  else
    ids[i - 2] = redis.call('XADD', KEYS[2], '*', 'd', ARGV[i], 't', ARGV[1])
  end
end
local pttl = redis.call('PTTL', KEYS[1])
if pttl > 0 then
  redis.call('PEXPIRE', KEYS[2], pttl)
end
return ids
"""
"""KEYS: context, events. ARGV: timestamp (ISO), maxlen or '', then each event's JSON.
Appends them in order in one atomic step; the stream expires with the context."""

CLEAR_CONTEXT = """
return redis.call('DEL', KEYS[1], KEYS[2])
"""
"""KEYS: context, events. Removes both in one atomic step; returns how many existed."""

ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return false
"""
"""KEYS: lease, fence. ARGV: owner, ttl ms. SET NX PX and, on success, the fencing INCR in
the same script: acquire plus token is one round trip. Returns the token or nil."""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
"""KEYS: lease. ARGV: owner. Compare-and-delete."""

EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
"""KEYS: lease. ARGV: owner, ttl ms. Compare-and-pexpire."""

RAISE_FENCE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if current < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2])
end
return 1
"""
"""KEYS: lease, fence. ARGV: owner, token. While ``owner`` holds the lease, lifts the
node's fencing counter to at least ``token`` (multi-node Redlock only, when the nodes'
counters disagree). Returns 1, or 0 if the lease is no longer ours."""


class Scripts:
    """The scripts registered on one client."""

    __slots__ = ("acquire", "append_event", "append_events", "clear_context", "extend",
                 "raise_fence", "release", "set_context")

    def __init__(self, client: Any) -> None:
        self.set_context = client.register_script(SET_CONTEXT)
        self.append_event = client.register_script(APPEND_EVENT)
        self.append_events = client.register_script(APPEND_EVENTS)
        self.clear_context = client.register_script(CLEAR_CONTEXT)
        self.acquire = client.register_script(ACQUIRE)
        self.release = client.register_script(RELEASE)
        self.extend = client.register_script(EXTEND)
        self.raise_fence = client.register_script(RAISE_FENCE)

    def all(self) -> list[Any]:
        """Every script, e.g. to pre-load them before a pipeline."""
        return [self.set_context, self.append_event, self.append_events, self.clear_context,
                self.acquire, self.release, self.extend, self.raise_fence]


def run(script: Any, client: Any, keys: tuple[str, ...], args: tuple[Any, ...], *,
        policy: RetryPolicy | None = None, what: str = "script",
        idempotent: bool = True) -> Any:
    """``EVALSHA`` of a registered ``script`` on ``client`` (not a pipeline) under
    ``policy`` (None: one attempt); on ``NOSCRIPT`` (script cache flushed, server
    restarted: the script did not run) redis-py's ``Script`` call loads it.

    Same effect as ``script(keys=..., args=...)`` without its per-call overhead
    (:func:`~.direct.execute`).
    """
    try:
        return execute(client, policy, what, "EVALSHA", script.sha, len(keys), *keys, *args,
                       idempotent=idempotent)
    except rex.NoScriptError:
        if policy is None:
            return script(keys=keys, args=args, client=client)
        return policy.call(lambda: script(keys=keys, args=args, client=client), what=what,
                           idempotent=idempotent)
