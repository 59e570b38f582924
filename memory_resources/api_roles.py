"""What MemoryAPI and AsyncMemoryAPI share about their composition: the store of each role,
the backend names, the role check and the repr. The two differ only in how they connect."""

from __future__ import annotations

from typing import Any

from .api_build import ADAPTER_ROLES, Composition
from .api_monitor import backend_name
from .clock import Clock
from .errors import MemoryValidationError


class RoleStores:
    """The stores filling each role of a facade, named once for the sync and async APIs."""

    _roles: dict[str, Any]
    _clock: Clock

    def _set_roles(self, composition: Composition, clock: Clock) -> None:
        self._roles = composition.roles
        self._clock = clock
        r = composition.roles
        self._context, self._events, self._locks = r["context"], r["events"], r["locks"]
        self._history, self._outputs, self._audit = r["history"], r["outputs"], r["audit"]
        self._vectors = r["vectors"]

    @property
    def backends(self) -> dict[str, str]:
        """Which backend serves each role, e.g. ``{"context": "redis", "history": "sqlite"}``."""
        return {role: backend_name(store) for role, store in self._roles.items()}

    def _role_store(self, role: str) -> Any:
        """The (not yet connected) store serving ``role``; a typed error for an unknown role."""
        if role not in self._roles:
            raise MemoryValidationError(
                "role", f"must be one of {', '.join(self._roles)}, got {role!r}")
        return self._roles[role]

    @property
    def vector_dimension(self) -> int:
        """The dimension every embedding must have."""
        return int(self._vectors.dimension)

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{adapter}={'+'.join(sorted({self.backends[r] for r in roles}))}"
            for adapter, roles in ADAPTER_ROLES.items()
        )
        return f"{type(self).__name__}({parts})"
