"""``health_check()`` and ``get_memory_stats()`` of a MemoryAPI, shaped as the spec shows.

Adapters are the spec's names — ``redis`` (context, events, locks), ``postgres`` (history,
outputs, audit) and ``vector`` — whichever backend serves them; each entry says which
``backend`` does (``sqlite``, ``redis``, ``postgres``, ``numpy``, ``pgvector`` …).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .api_build import ADAPTER_ROLES, distinct_stores
from .records import HealthReport, JSONDict

_RANK = {"healthy": 0, "degraded": 1, "unhealthy": 2}
_SPEC_KEYS = {"redis": "used_memory", "postgres": "active_connections",
              "vector": "total_embeddings"}


def backend_name(store: Any) -> str:
    """The store's ``backend_name`` or, failing that, its class name."""
    name = getattr(store, "backend_name", None)
    return name if isinstance(name, str) and name else type(store).__name__


def _store_health(store: Any, ensure: Callable[[Any], None]) -> HealthReport:
    """One store's report; connecting or checking never raises out of here."""
    started = time.perf_counter()
    try:
        ensure(store)
        check = getattr(store, "health_check", None)
        if check is None:
            report: HealthReport = {"status": "healthy", "backend": backend_name(store)}
            if hasattr(store, "count"):
                report["details"] = {"count": store.count()}
        else:
            report = dict(check())  # type: ignore[assignment]
    except Exception as exc:
        report = failed_report(exc)
    return finish_report(report, store, started)


def failed_report(exc: BaseException) -> HealthReport:
    """The report of a store whose connect or check raised ``exc``."""
    return {"status": "unhealthy", "error": f"{type(exc).__name__}: {exc}"}


def finish_report(report: HealthReport, store: Any, started: float) -> HealthReport:
    """Fill ``backend`` and ``latency_ms`` (since ``started``) and force a known status."""
    report.setdefault("backend", backend_name(store))
    report.setdefault("latency_ms", round((time.perf_counter() - started) * 1000, 3))
    if report.get("status") not in _RANK:
        report["status"] = "unhealthy"
    return report


HEALTH_TIMEOUT = 3.0
"""Default cap, in seconds, of ``MemoryAPI.health_check()`` whatever the backends do."""


def timed_out_report(store: Any, timeout: float) -> HealthReport:
    """The report of a store whose probe did not finish within ``timeout`` seconds."""
    return {"status": "unhealthy", "backend": backend_name(store),
            "error": f"no answer within the health check's timeout={timeout:g} s "
                     "(server hung or network black-holed?)",
            "latency_ms": round(timeout * 1000, 3)}


def _probe_all(stores: list[Any], ensure: Callable[[Any], None], timeout: float
               ) -> dict[int, HealthReport]:
    """Every store's report, each probed in its own daemon thread at the same time; a
    store that has not answered within ``timeout`` is reported unhealthy (its probe ends
    in the background, bounded by the store's own deadline)."""
    reports: dict[int, HealthReport] = {}
    done = threading.Condition()

    def probe(store: Any) -> None:
        report = _store_health(store, ensure)
        with done:
            reports[id(store)] = report
            done.notify_all()

    for store in stores:
        threading.Thread(target=probe, args=(store,), daemon=True,
                         name=f"health:{backend_name(store)}").start()
    limit = time.monotonic() + timeout
    with done:
        while len(reports) < len(stores):
            left = limit - time.monotonic()
            if left <= 0:
                break
            done.wait(left)
        result = dict(reports)
    for store in stores:
        if id(store) not in result:
            result[id(store)] = timed_out_report(store, timeout)
    return result


def health(roles: dict[str, Any], ensure: Callable[[Any], None], timestamp: str,
           timeout: float = HEALTH_TIMEOUT) -> JSONDict:
    """Check each distinct store once, all at the same time, and report per adapter, worst
    status first; returns within ``timeout`` seconds whatever the backends do."""
    reports = _probe_all(list(distinct_stores(roles)), ensure, timeout)
    return health_of(roles, reports, timestamp)


def health_of(roles: dict[str, Any], reports: dict[int, HealthReport], timestamp: str
              ) -> JSONDict:
    """The spec's health shape from each distinct store's report (keyed by ``id``)."""
    adapters: dict[str, JSONDict] = {}
    for adapter, names in ADAPTER_ROLES.items():
        stores = distinct_stores(roles, names)
        if len(stores) == 1:
            entry: JSONDict = dict(reports[id(stores[0])])
        else:
            by_role = {name: dict(reports[id(roles[name])]) for name in names}
            worst = max((str(r["status"]) for r in by_role.values()),
                        key=lambda status: _RANK[status])
            entry = {"status": worst,
                     "backend": ",".join(sorted({str(r["backend"]) for r in by_role.values()})),
                     "roles": by_role}
        entry["serves"] = list(names)
        adapters[adapter] = entry
    statuses = [report["status"] for report in reports.values()]
    if all(status == "healthy" for status in statuses):
        overall = "healthy"
    elif all(status == "unhealthy" for status in statuses):
        overall = "unhealthy"
    else:
        overall = "degraded"
    return {"overall_status": overall, "adapters": adapters, "timestamp": timestamp}


def _fill_spec_key(adapter: str, store: Any, stats: JSONDict) -> None:
    """Make sure the spec's key of the adapter is present (None when the backend has no
    such figure); the vector count comes from the index itself when its stats lack it."""
    key = _SPEC_KEYS[adapter]
    if key in stats:
        return
    stats[key] = int(store.count()) if adapter == "vector" and hasattr(store, "count") else None


def _store_stats(store: Any, ensure: Callable[[Any], None]) -> JSONDict:
    """One store's statistics; a backend fault is reported as ``error``, never raised."""
    try:
        ensure(store)
        getter = getattr(store, "stats", None)
        return dict(getter()) if getter is not None else {}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def stats_stores(roles: dict[str, Any]) -> list[Any]:
    """The stores whose statistics :func:`memory_stats` reports (each adapter's first)."""
    return _distinct_first(roles)


def _distinct_first(roles: dict[str, Any]) -> list[Any]:
    seen: dict[int, Any] = {}
    for names in ADAPTER_ROLES.values():
        seen.setdefault(id(roles[names[0]]), roles[names[0]])
    return list(seen.values())


def memory_stats(roles: dict[str, Any], ensure: Callable[[Any], None],
                 timestamp: str) -> JSONDict:
    """Each adapter's statistics (the store serving its first role), with the spec's key
    present; an adapter whose backend fails carries ``error`` and ``None`` for that key."""
    cache = {id(store): _store_stats(store, ensure) for store in stats_stores(roles)}
    return stats_of(roles, cache, timestamp)


def stats_of(roles: dict[str, Any], cache: dict[int, JSONDict], timestamp: str) -> JSONDict:
    """The spec's statistics shape from each store's ``stats()`` (keyed by ``id``)."""
    adapters: dict[str, JSONDict] = {}
    for adapter, names in ADAPTER_ROLES.items():
        store = roles[names[0]]
        stats = dict(cache[id(store)])
        stats.setdefault("backend", backend_name(store))
        if "error" in stats:
            stats.setdefault(_SPEC_KEYS[adapter], None)
        else:
            _fill_spec_key(adapter, store, stats)
        adapters[adapter] = stats
    return {"adapters": adapters, "timestamp": timestamp}
