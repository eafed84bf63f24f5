"""The accountant: what every call used, what it cost, and where that is kept.

``_usage`` decodes a response's token counts, ``_pricing`` prices them, ``_accountant`` is the
:class:`LedgerAccountant` the transport calls, ``_ledger`` persists each call in the PromptCache
directory and answers summaries, ``_fleet`` sums ledgers across machines through Redis,
``_attribution`` tags calls with the app's context, and ``_otel`` exports the same numbers as
OpenTelemetry metrics. All of it is pure or local I/O; nothing here talks to a provider.

The names other parts use are loaded on first access, as in :mod:`promptcache`: the transport
only needs attribution, and must not pay for SQLite or the price table when it is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from promptcache._accounting._accountant import LedgerAccountant
    from promptcache._accounting._attribution import Attribution, current_attribution, tag, track
    from promptcache._accounting._fleet import FleetLedger, FleetView, fleet_store, open_fleet
    from promptcache._accounting._ledger import Ledger, Record, Summary
    from promptcache._accounting._otel import OtelMetrics
    from promptcache._accounting._pricing import ModelPrice, PriceBook, provider_from_model
    from promptcache._accounting._usage import Usage

__all__ = [
    "Attribution",
    "FleetLedger",
    "FleetView",
    "Ledger",
    "LedgerAccountant",
    "ModelPrice",
    "OtelMetrics",
    "PriceBook",
    "Record",
    "Summary",
    "Usage",
    "current_attribution",
    "fleet_store",
    "open_fleet",
    "provider_from_model",
    "tag",
    "track",
]

# Name -> the module of this package that defines it.
_LAZY: dict[str, str] = {
    "Attribution": "_attribution",
    "FleetLedger": "_fleet",
    "FleetView": "_fleet",
    "Ledger": "_ledger",
    "LedgerAccountant": "_accountant",
    "ModelPrice": "_pricing",
    "OtelMetrics": "_otel",
    "PriceBook": "_pricing",
    "Record": "_ledger",
    "Summary": "_ledger",
    "Usage": "_usage",
    "current_attribution": "_attribution",
    "fleet_store": "_fleet",
    "open_fleet": "_fleet",
    "provider_from_model": "_pricing",
    "tag": "_attribution",
    "track": "_attribution",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
