"""What a provider handler hands back to the HTTP layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from promptcache.testing._types import Billing

__all__ = ["Outcome", "sse"]


@dataclass
class Outcome:
    """A successful answer: a JSON body, or SSE frames for a stream.

    ``deltas`` flags which frames carry output (the latency model paces those).
    """

    api: str
    model: str
    stream: bool
    body: Any = None
    frames: list[bytes] = field(default_factory=list)
    deltas: list[bool] = field(default_factory=list)
    billing: Billing = field(default_factory=Billing)
    response_id: str | None = None
    prompt_cache_key: str | None = None
    status: int = 200
    machine: int = 0  # OpenAI: the routing pool machine that served it (0 = home)

    def add_frame(self, frame: bytes, *, delta: bool = False) -> None:
        """Append one SSE frame."""
        self.frames.append(frame)
        self.deltas.append(delta)


def sse(data: Any, event: str | None = None) -> bytes:
    """One SSE frame: optional ``event:`` line, a ``data:`` line, blank line."""
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    if event is None:
        return b"data: " + payload + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"
