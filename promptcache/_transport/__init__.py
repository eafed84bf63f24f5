"""The transport: where a wrapped client's requests are keyed, served locally or sent upstream.

One class, :class:`PromptCacheTransport`, implements both ``httpx2.BaseTransport`` and
``httpx2.AsyncBaseTransport``. It sits inside an ``httpx2`` client that ``wrap()`` hands to
the SDK, and sends upstream *through the user's own http client*, so their proxies, limits,
event hooks and certificates still apply.

For a generating route (``route()``) the flow is:

1. key the body the SDK serialised (``_keys.request_key_from_bytes``), under a namespace of
   provider, base URL, a salted fingerprint of the credential and the user's namespace — or,
   for a call the fast path (``_fastpath.py``) already keyed and planned on the user's
   arguments, take that call as it was parked (no second parse of the body);
2. if the request is cacheable and the policy allows, look it up; a verified entry is replayed
   as bytes (status, headers, body; SSE byte for byte) and the SDK builds its own objects;
3. otherwise join the single-flight for the key; the leader asks the planner for a rewrite,
   sends upstream, retries once without the planner's additions on a 4xx it caused, records
   usage, lets the planner observe, and stores 2xx answers — JSON at once, streams only when
   read to their end (:class:`TeeStream` passes chunks through as they arrive).

Everything else passes through byte for byte. The package:

- ``_engine``: :class:`Engine`, :class:`Keyer`, :class:`Call` — the decisions (no I/O);
- ``_flow``: the flow above written once, as generators that yield the I/O they need
  (look up, lock, wait for a leader, send, read, store) — sans-I/O;
- ``_streams``: replayed, passed-through and teed (recorded) response bodies;
- ``_driver``: :class:`PromptCacheTransport`, the thin sync and async drivers that perform
  the flow's steps by calling or by awaiting.
"""

from promptcache._transport._driver import PromptCacheTransport
from promptcache._transport._engine import CACHE_HEADER, TICKET_HEADER, Call, Engine, Keyer

__all__ = ["CACHE_HEADER", "TICKET_HEADER", "Call", "Engine", "Keyer", "PromptCacheTransport"]
