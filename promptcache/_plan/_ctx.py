"""Per-request planning context shared by the provider adapters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from promptcache._api import RequestInfo
from promptcache._hooks import Rewrite
from promptcache._plan._options import AnthropicOptions, OpenAIOptions
from promptcache._plan._state import PlannerState

__all__ = ["Ctx", "Mode", "PlanFacts"]

Mode = Literal["off", "safe", "auto"]


@dataclass(slots=True, frozen=True)
class PlanFacts:
    """What ``observe``/``rejected`` need about one planned request (``Rewrite.plan``)."""

    chars: int  # estimated size, in the units the token calibration uses
    model: str | None
    family: str
    original: dict[str, Any]  # the body as the app wrote it (for a retry without our changes)
    # Digest of instructions that now lead the stored input as a developer item (Responses,
    # stored): ``observe`` files it under the response id for a chained follow-up.
    moved: str | None = None


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
        moved: str | None = None,
    ) -> Rewrite:
        """Build the :class:`Rewrite`, carrying what ``observe``/``rejected`` will need.

        The facts ride on the Rewrite (which lives as long as the call in flight) instead of a
        planner-side table: a table keyed by body would keep thousands of bodies alive.
        """
        # Shared subtrees compare by identity, so this is cheap even on huge bodies.
        changed = out is not body and out != body
        return Rewrite(
            body=out if changed else body,
            changed=changed,
            added_params=added,
            notes=notes,
            plan=PlanFacts(chars, self.info.model, family, body, moved),
        )
