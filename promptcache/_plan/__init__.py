"""The planner: restructures requests so the provider prompt cache hits (DESIGN §5).

:class:`DefaultPlanner` implements the transport's ``Planner`` protocol for OpenAI Chat
Completions, OpenAI Responses and Anthropic Messages, in three modes:

* ``"off"``: the body goes out as written (layout marks are still stripped);
* ``"safe"``: semantics-preserving hints only — Anthropic breakpoints, OpenAI
  ``prompt_cache_key`` and gpt-5.6+ breakpoints — plus the moves the app asked for with
  :func:`promptcache.static` / :func:`promptcache.dynamic` / :func:`promptcache.layout`;
* ``"auto"``: also moves volatile lines (timestamps, dates, ids, counters, text seen to change
  between calls) out of the prefix, sorts tools by name and serialises tool arguments stably.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Literal

from promptcache._api import Api, RequestInfo
from promptcache._errors import ConfigError, HintRejectedWarning, RewriteWarning
from promptcache._hooks import Rewrite, UsageMeta
from promptcache._plan._anthropic import plan_anthropic
from promptcache._plan._ctx import Ctx, PlanFacts
from promptcache._plan._endpoints import WithheldHints, error_message, host_of, refused_fields
from promptcache._plan._openai import plan_openai
from promptcache._plan._options import AnthropicOptions, OpenAIOptions
from promptcache._plan._state import PlannerState
from promptcache._plan._text import count_key, strip_deep

__all__ = ["AnthropicOptions", "DefaultPlanner", "OpenAIOptions", "WithheldHints"]

_MODES = ("off", "safe", "auto")


class DefaultPlanner:
    """Plans provider prompt caching for every request a wrapped client sends.

    ``rewrite`` is pure with respect to its input: the body it is given is never mutated; a
    changed request is a new dict. State learnt across calls (prefix families, reuse intervals,
    volatile lines, token calibration, endpoint capabilities) is in memory and thread-safe.
    Requests from signing clients (``info.signed``) are never changed — layout marks in them
    reach the provider as invisible characters, so use marks only with unsigned clients there.
    """

    def __init__(
        self,
        mode: Literal["off", "safe", "auto"] = "safe",
        *,
        openai: OpenAIOptions | None = None,
        anthropic: AnthropicOptions | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if mode not in _MODES:
            raise ConfigError(f"restructure must be one of {_MODES}, got {mode!r}")
        self.mode: Literal["off", "safe", "auto"] = mode
        self.openai = openai or OpenAIOptions()
        self.anthropic = anthropic or AnthropicOptions()
        self._clock = clock
        self._state = PlannerState()
        self._lock = threading.Lock()
        self._warned: set[str] = set()  # endpoints already warned about a refusal

    def rewrite(self, info: RequestInfo, body: dict[str, Any]) -> Rewrite:
        """Return the body to send: reordered, with breakpoints and cache key as planned."""
        if info.signed:
            return Rewrite(body=body)
        ctx = Ctx(info, self.mode, self._state, self._clock(), self.anthropic, self.openai)
        try:
            if info.api is Api.ANTHROPIC_MESSAGES:
                return plan_anthropic(ctx, body)
            return plan_openai(ctx, body)
        except Exception as exc:  # planning must never cost the user a call
            warnings.warn(
                RewriteWarning(
                    f"promptcache could not plan this request ({exc!r}); sent as written"
                ),
                stacklevel=2,
            )
            out = strip_deep(body)
            return Rewrite(body=out, changed=out is not body)

    def observe(self, info: RequestInfo, sent: Rewrite, usage: UsageMeta | None) -> None:
        """Recalibrate token estimates from the inclusive input the provider billed."""
        facts = sent.plan
        if not usage or not isinstance(facts, PlanFacts):
            return
        # The accountant's meta nests the usage ({"v": 1, "usage": {...}}); accept both shapes.
        inner = usage.get("usage")
        counts: Mapping[str, Any] = inner if isinstance(inner, Mapping) else usage
        tokens = counts.get("input_tokens")  # inclusive of cache reads and writes
        if isinstance(tokens, int) and not isinstance(tokens, bool):
            self._state.calibration.update(facts.model, facts.chars, tokens)
        rid = usage.get("response_id")
        if facts.moved is not None and isinstance(rid, str):
            # This stored response's input starts with instructions we moved: a turn chained
            # to it must not send them again (_plan/_openai.py).
            self._state.remember_moved(rid, facts.moved)

    def rejected(
        self, info: RequestInfo, sent: Rewrite, status: int, error_body: bytes
    ) -> dict[str, Any] | None:
        """On a 400 naming something we added, remember it for the endpoint and retry without."""
        if status not in (400, 422):
            return None
        text = error_body.decode("utf-8", "replace").lower()
        original = sent.plan.original if isinstance(sent.plan, PlanFacts) else None
        if info.api is Api.ANTHROPIC_MESSAGES:
            if "cache_control" not in text or not sent.changed or not isinstance(original, dict):
                return None
            # An endpoint (a proxy, a gateway) that refuses our breakpoints gets none again. But
            # when the app set breakpoints of its own, the 400 may well be about theirs (a 1h
            # after a 5m, say): retry as written, and do not switch planning off for everyone.
            if count_key(original, "cache_control") == 0:
                self._state.reject(info.base_url, {"cache_control"})
            fallback: dict[str, Any] = strip_deep(original)
            return fallback if fallback != sent.body else None
        if not isinstance(original, dict):
            return None
        blamed = refused_fields(error_body)
        user_key = original.get("prompt_cache_key")
        if (
            isinstance(user_key, str)
            and "prompt_cache_key" in blamed
            and sent.body.get("prompt_cache_key") != user_key
        ):
            # A shard derived from the app's own key was refused (too long, say): the app's key
            # goes as written, and this endpoint's user keys are not sharded again.
            self._state.reject(info.base_url, {"shard_user_keys"})
            return {**sent.body, "prompt_cache_key": user_key}
        if any(k in blamed for k in original if k.startswith("prompt_cache")):
            return None  # the 400 names a setting the app chose itself: theirs to see
        ours = set(sent.added_params)
        if "prompt_cache_breakpoint" in blamed:
            if count_key(original, "prompt_cache_breakpoint"):
                return None  # the app's own breakpoints are refused too: not ours to remove
            if count_key(sent.body, "prompt_cache_breakpoint"):
                ours.add("prompt_cache_breakpoint")
        if not blamed & ours:
            return None
        # A server that refuses one of OpenAI's caching fields knows none of them (they came
        # together): drop all of ours at once, so that this one retry succeeds, and send none
        # again to this endpoint.
        if "prompt_cache_breakpoint" in ours:
            ours.add("prompt_cache_options")  # the planner gates breakpoints on this name
        top = ours - {"prompt_cache_breakpoint"}
        self._refused(info, top, status, error_message(error_body))
        retry = {k: v for k, v in sent.body.items() if k not in top}
        if "prompt_cache_options" in top:
            retry = _drop_breakpoints(retry)
        return retry

    def _refused(self, info: RequestInfo, fields: set[str], status: int, error_text: str) -> None:
        """Remember a refusal for the endpoint, note it for the doctor, and warn once."""
        self._state.reject(info.base_url, fields)
        host = host_of(info.base_url)
        self._state.withhold(
            info.base_url,
            host,
            None,
            tuple(sorted(fields)),
            "rejected",
            error_text,
            "none needed: the server does not take them (a new PromptCache tries once more)",
            self._clock(),
        )
        with self._lock:
            if info.base_url in self._warned:
                return
            self._warned.add(info.base_url)
        warnings.warn(
            HintRejectedWarning(
                f"promptcache: {host} refused {', '.join(sorted(fields))} "
                f"(HTTP {status}: {error_text!r}); the call was retried without them, and "
                f"requests to {info.base_url} will not carry them again from this PromptCache "
                "(warned once per endpoint)"
            ),
            stacklevel=2,
        )

    def withheld(self) -> list[WithheldHints]:
        """Endpoints sent fewer of OpenAI's caching hints than OpenAI would take, and why.

        One entry per base URL and model that ``OpenAIOptions(endpoint=...)`` kept the hints
        from (``"not_openai"``, ``"declared"``), and one per base URL that refused them
        (``"rejected"``); in memory, for this planner's lifetime.
        """
        return self._state.withheld()


def _drop_breakpoints(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_breakpoints(v) for k, v in obj.items() if k != "prompt_cache_breakpoint"}
    if isinstance(obj, list):
        return [_drop_breakpoints(v) for v in obj]
    return obj
