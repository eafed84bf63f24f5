"""The two seams between the transport and the rest of the library.

The transport (``_transport/``) owns I/O, keys, the local cache and single-flight. It calls:

* a :class:`Planner` to restructure a request body on its way upstream (``_plan/``), and
* an :class:`Accountant` to decode usage, price it and append it to the ledger
  (``_accounting/_accountant.py``).

Both are plain objects with no I/O on the request path except the ledger's buffered append,
so the transport can call them from sync and async code alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from promptcache._api import RequestInfo

__all__ = ["Accountant", "Planner", "Rewrite", "UsageMeta"]

# JSON-able summary of one upstream call's usage and cost, as returned by
# ``Accountant.record_upstream``. The transport stores it beside a cached response so a later
# local hit can be recorded with the cost it avoided, without decoding the body again.
UsageMeta = Mapping[str, Any]


@dataclass(slots=True)
class Rewrite:
    """The outcome of planning one request.

    ``body`` is what goes upstream (the same object as the input when nothing changed);
    ``added_params`` names top-level parameters the planner introduced (e.g.
    ``"prompt_cache_key"``) so that a 400 naming one of them can be retried without it;
    ``notes`` are human-readable records of what was done (what moved, which breakpoints);
    ``plan`` is opaque planner data for ``observe``/``rejected`` (``None`` when there is none).
    """

    body: dict[str, Any]
    changed: bool = False
    added_params: frozenset[str] = frozenset()
    notes: list[str] = field(default_factory=list)
    # The planner's own per-request facts (token estimate, family, the original body for a
    # retry), handed back to it in ``observe``/``rejected``. Carried here rather than in a
    # planner-side table so that nothing outlives the call in flight; opaque to the transport.
    plan: Any = None


class Planner(Protocol):
    """Restructures request bodies so the provider cache hits (DESIGN §5)."""

    def rewrite(self, info: RequestInfo, body: dict[str, Any]) -> Rewrite:
        """Return the body to send. Must strip layout markers in every mode, ``"off"`` too."""
        ...

    def observe(self, info: RequestInfo, sent: Rewrite, usage: UsageMeta | None) -> None:
        """Learn from what the provider reported for a request this planner shaped."""
        ...

    def rejected(
        self, info: RequestInfo, sent: Rewrite, status: int, error_body: bytes
    ) -> dict[str, Any] | None:
        """Return a body to retry once with after a 4xx for a rewritten request, or ``None``."""
        ...


class Accountant(Protocol):
    """Decodes usage from wire bytes, prices it and appends it to the ledger (DESIGN §6)."""

    def record_upstream(
        self, info: RequestInfo, body: bytes, *, status: int, complete: bool
    ) -> UsageMeta | None:
        """Record a call that reached the provider.

        ``body`` is the JSON body, or for a stream the raw SSE bytes received (``complete`` is
        ``False`` when the stream was cut or closed early: what was billed is still recorded).
        Returns the meta to store beside a cached response (``None`` for errors).
        """
        ...

    def record_local_hit(self, info: RequestInfo, meta: UsageMeta | None) -> None:
        """Record a call served from the local cache.

        ``meta`` is what ``record_upstream`` returned when the entry was stored (``None`` if
        unknown).
        """
        ...
