"""Per-request planning context shared by the provider adapters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from promptcache._api import RequestInfo
from promptcache._hooks import Rewrite
from promptcache._plan._options import AnthropicOptions, OpenAIOptions
from promptcache._plan._state import PlannerState

__all__ = ["Ctx", "Mode"]

Mode = Literal["off", "safe", "auto"]


@dataclass(slots=True)
class Ctx:
    """Everything an adapter needs besides the body."""

    info: RequestInfo
    mode: Mode
    state: PlannerState
    now: float
    anthropic: AnthropicOptions
    openai: OpenAIOptions

    def finish(
        self,
        body: dict[str, Any],
        out: dict[str, Any],
        notes: list[str],
        *,
        chars: int,
        added: frozenset[str] = frozenset(),
        family: str = "",
    ) -> Rewrite:
        """Build the :class:`Rewrite` and remember what ``observe``/``rejected`` will need."""
        # Shared subtrees compare by identity, so this is cheap even on huge bodies.
        changed = out is not body and out != body
        rw = Rewrite(
            body=out if changed else body, changed=changed, added_params=added, notes=notes
        )
        self.state.put_meta(
            rw.body, {"chars": chars, "model": self.info.model, "family": family, "original": body}
        )
        return rw
