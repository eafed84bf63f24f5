"""A strict OpenAI-compatible server: request fields it does not know are refused.

OpenAI's own API, Azure OpenAI on older API versions and many OpenAI-compatible servers answer
a field they do not know with an error instead of ignoring it. ``Emulator(strict=...)`` makes
the emulator one of them for the OpenAI routes, so that code which adds fields (promptcache's
``prompt_cache_key``, the gpt-5.6+ breakpoints) can be tested against such a server through the
real SDKs. The error bodies follow the servers named by :data:`StrictStyle`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = ["CHAT_FIELDS", "RESPONSES_FIELDS", "StrictServer", "StrictStyle", "refusal"]

#: Whose error body a refusal copies:
#:
#: * ``"openai"``: 400 ``Unrecognized request argument supplied: <field>`` (OpenAI's legacy
#:   wording, still answered by Azure OpenAI on older API versions), and ``Unknown parameter:
#:   '<path>'`` with ``param``/``code`` for a nested field; one field per answer.
#: * ``"pydantic"``: 422 ``{"detail": [{"type": "extra_forbidden", "loc": ["body", ...],
#:   "msg": "Extra inputs are not permitted", "input": ...}]}``, every unknown field at once
#:   (FastAPI servers whose request models forbid extra fields).
#: * ``"vllm"``: 400 ``{"error": {"message": "<the pydantic errors as Python repr>", "type":
#:   "BadRequestError", "param": null, "code": 400}}`` (vLLM's wrapping of a validation error).
#: * ``"litellm"``: 400 ``litellm.UnsupportedParamsError: <provider> does not support
#:   parameters: [...], for model=... To drop these, set `litellm.drop_params=True` ...``.
#: * ``"tgi"``: 422 ``{"error": "Failed to deserialize the JSON body into the target type:
#:   unknown field `<field>`, expected one of ...", "error_type": "validation"}`` (serde), one
#:   field per answer, followed by the list of fields it would have taken.
StrictStyle = Literal["openai", "pydantic", "vllm", "litellm", "tgi"]

# What a strict OpenAI-compatible server knows: OpenAI's parameters without the prompt-caching
# ones (prompt_cache_key, prompt_cache_retention, prompt_cache_options).
CHAT_FIELDS: Final = frozenset(
    {
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "messages",
        "metadata",
        "modalities",
        "model",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
RESPONSES_FIELDS: Final = frozenset(
    {
        "background",
        "conversation",
        "include",
        "input",
        "instructions",
        "max_output_tokens",
        "max_tool_calls",
        "metadata",
        "model",
        "parallel_tool_calls",
        "previous_response_id",
        "prompt",
        "reasoning",
        "safety_identifier",
        "service_tier",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "text",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "truncation",
        "user",
    }
)
_BREAKPOINT: Final = "prompt_cache_breakpoint"


@dataclass(frozen=True, slots=True)
class StrictServer:
    """How a strict emulator refuses unknown request fields (OpenAI routes only).

    Attributes:
        style: Whose error body to copy (:data:`StrictStyle`).
        known: Top-level fields the server takes; ``None`` means OpenAI's own parameters
            without the prompt-caching ones (:data:`CHAT_FIELDS`, :data:`RESPONSES_FIELDS`).
            ``prompt_cache_breakpoint`` inside messages is taken only when listed here.
        hosts: Only requests addressed to these hosts (as :attr:`ServedCall.host` records them,
            see ``Emulator.transport()``) are checked; ``None`` checks every request.
        provider: The upstream a ``"litellm"`` refusal names.

    """

    style: StrictStyle = "pydantic"
    known: frozenset[str] | None = None
    hosts: frozenset[str] | None = None
    provider: str = "hosted_vllm"

    def applies(self, host: str) -> bool:
        """Whether a request addressed to ``host`` is checked."""
        return self.hosts is None or host in self.hosts


def _unknown(strict: StrictServer, api: str, body: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Locations of the fields ``strict`` does not know, in body order (top level first)."""
    known = strict.known
    if known is None:
        known = (
            RESPONSES_FIELDS if api in ("openai.responses", "openai.input_tokens") else CHAT_FIELDS
        )
    found: list[tuple[Any, ...]] = [(k,) for k in body if k not in known]
    if _BREAKPOINT in known:
        return found
    items_key = "messages" if api == "openai.chat" else "input"
    items = body.get(items_key)
    for i, item in enumerate(items if isinstance(items, list) else ()):
        if not isinstance(item, dict):
            continue
        for field in ("content", "output"):
            parts = item.get(field)
            for j, part in enumerate(parts if isinstance(parts, list) else ()):
                if isinstance(part, dict) and _BREAKPOINT in part:
                    found.append((items_key, i, field, j, _BREAKPOINT))
    return found


def _value(body: dict[str, Any], loc: tuple[Any, ...]) -> Any:
    v: Any = body
    for part in loc:
        v = v[part]
    return v


def _dotted(loc: tuple[Any, ...]) -> str:
    out = str(loc[0])
    for part in loc[1:]:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def refusal(
    strict: StrictServer, api: str, body: dict[str, Any], model: str
) -> tuple[int, str, dict[str, Any]] | None:
    """``(status, error type, JSON body)`` refusing the unknown fields of ``body``, or ``None``."""
    unknown = _unknown(strict, api, body)
    if not unknown:
        return None
    first = unknown[0]
    style = strict.style
    if style == "openai":
        if len(first) == 1:
            message = f"Unrecognized request argument supplied: {first[0]}"
            return 400, "invalid_request_error", _openai_error(message, None, None)
        path = _dotted(first)
        message = f"Unknown parameter: '{path}'."
        return 400, "invalid_request_error", _openai_error(message, path, "unknown_parameter")
    errors = [
        {
            "type": "extra_forbidden",
            "loc": ["body", *loc],
            "msg": "Extra inputs are not permitted",
            "input": _value(body, loc),
        }
        for loc in unknown
    ]
    if style == "pydantic":
        return 422, "extra_forbidden", {"detail": errors}
    if style == "vllm":
        rendered = repr([{**e, "loc": tuple(e["loc"])} for e in errors])
        return 400, "BadRequestError", _openai_error(rendered, None, 400, kind="BadRequestError")
    if style == "litellm":
        top = [loc[0] for loc in unknown if len(loc) == 1]
        if top:
            message = (
                f"litellm.UnsupportedParamsError: {strict.provider} does not support parameters: "
                f"{top!r}, for model={model}. To drop these, set `litellm.drop_params=True` or "
                "for proxy:\n\n`litellm_settings:\n drop_params: true`\n"
            )
        else:  # nested fields reach the upstream, whose refusal LiteLLM passes on
            rendered = repr([{**e, "loc": tuple(e["loc"])} for e in errors])
            message = f"litellm.BadRequestError: Hosted_vllmException - {rendered}"
        return 400, "None", _openai_error(message, None, "400", kind="None")
    # tgi: serde stops at the first unknown field and lists what it expected there
    expected = sorted(
        strict.known
        or (RESPONSES_FIELDS if api in ("openai.responses", "openai.input_tokens") else CHAT_FIELDS)
    )
    where = "" if len(first) == 1 else f"{_dotted(first[:-1])}: "
    allowed = "`type`, `text`" if len(first) > 1 else ", ".join(f"`{f}`" for f in expected)
    message = (
        f"Failed to deserialize the JSON body into the target type: {where}unknown field "
        f"`{first[-1]}`, expected one of {allowed} at line 1 column 1"
    )
    return 422, "validation", {"error": message, "error_type": "validation"}


def _openai_error(
    message: str, param: str | None, code: str | int | None, *, kind: str = "invalid_request_error"
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
