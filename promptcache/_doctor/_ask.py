"""Asking the provider why it missed (opt-in: ``DoctorOptions(ask_provider=True)``).

Both providers can compare a request with an earlier response of theirs and name what changed
(PROVIDERS.md §1 item 7):

* Anthropic Messages: ``diagnostics={"previous_message_id": id}`` → the message's
  ``diagnostics.cache_miss_reason`` (``system_changed``, ``messages_changed``, …);
* OpenAI Responses (gpt-5.6+): ``prompt_cache_options.comparison_response_id`` →
  ``prompt_cache_diagnostics`` (``cache_miss`` with a ``reason``, or ``cache_hit``).

These functions add the parameter to a family's request (naming the family's previous
response) and read the answer from the response bytes. Pure; the driver keeps the ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import orjson

from promptcache._api import Api
from promptcache._plan._models import openai_explicit

__all__ = ["ask", "kind_of_reason", "read_answer"]

# What the providers' reasons mean in the doctor's kinds.
_KIND: Final = {
    "model_changed": "scope_changed",
    "tools_changed": "scope_changed",
    "prompt_cache_key_changed": "scope_changed",
    "text_format_changed": "scope_changed",
    "reasoning_effort_changed": "scope_changed",
    "verbosity_changed": "scope_changed",
    "service_tier_changed": "scope_changed",
    "system_changed": "prefix_changed",
    "messages_changed": "prefix_changed",
    "input_changed": "prefix_changed",
    "context_compacted": "prefix_changed",
}


def kind_of_reason(reason: str) -> str | None:
    """Return the doctor's kind for a provider's miss reason (``None`` when unknown)."""
    return _KIND.get(reason.split(" ", 1)[0])


def ask(api: Api, model: str | None, body: dict[str, Any], previous: str) -> dict[str, Any] | None:
    """Return ``body`` asking the provider to compare with ``previous``, or ``None`` if not."""
    if api is Api.ANTHROPIC_MESSAGES:
        if "diagnostics" in body:
            return None  # the app asks itself: not ours to change
        return {**body, "diagnostics": {"previous_message_id": previous}}
    if api is Api.OPENAI_RESPONSES and openai_explicit(model):
        opts = body.get("prompt_cache_options")
        if opts is None:
            opts = {}
        if not isinstance(opts, dict) or "comparison_response_id" in opts:
            return None
        return {**body, "prompt_cache_options": {**opts, "comparison_response_id": previous}}
    return None


def _events(raw: bytes) -> Iterator[Any]:
    from promptcache._accounting._usage import _sse_events

    for _, data in _sse_events(raw):
        yield data


def read_answer(api: Api, body: bytes, *, stream: bool) -> tuple[str | None, str | None]:
    """Return ``(response id, the provider's miss reason)`` from a response's bytes."""
    obj: Any = None
    if stream:
        # The id is in the first event; the diagnostics ride on the message or response object.
        for data in _events(body):
            if not isinstance(data, dict):
                continue
            inner = data.get("message") or data.get("response")
            if isinstance(inner, dict) and (obj is None or _reason(api, inner)):
                obj = inner
    else:
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None, None
    if not isinstance(obj, dict):
        return None, None
    rid = obj.get("id")
    return (rid if isinstance(rid, str) else None), _reason(api, obj)


def _reason(api: Api, obj: dict[str, Any]) -> str | None:
    if api is Api.ANTHROPIC_MESSAGES:
        diag = obj.get("diagnostics")
        why = diag.get("cache_miss_reason") if isinstance(diag, dict) else None
        if not isinstance(why, dict) or not isinstance(why.get("type"), str):
            return None
        missed = why.get("cache_missed_input_tokens")
        return str(why["type"]) + (f" ({missed} tokens)" if isinstance(missed, int) else "")
    diag = obj.get("prompt_cache_diagnostics")
    if not isinstance(diag, dict) or diag.get("type") != "cache_miss":
        return None
    reason = str(diag.get("reason") or "cache_miss")
    missed = diag.get("cache_missed_tokens")
    return reason + (f" ({missed} tokens)" if isinstance(missed, int) else "")
