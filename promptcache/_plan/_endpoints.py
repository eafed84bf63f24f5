"""Which OpenAI-style endpoints get OpenAI's prompt-caching hints, and what a refusal names.

An app reaches OpenAI models through OpenAI itself, Azure OpenAI, or a gateway (LiteLLM proxy,
Cloudflare AI Gateway, Portkey, Helicone, OpenRouter, a corporate proxy); it reaches other
models through OpenAI-compatible servers (vLLM, Ollama, llama.cpp, TGI, other vendors). Only
the first kind benefits from ``prompt_cache_key`` and the gpt-5.6+ breakpoints, and servers of
the second kind may refuse fields they do not know. ``OpenAIOptions(endpoint="auto")`` decides
per request from what is knowable there: the host and path of the base URL, and the model name.

When a server refuses a field anyway, :func:`refused_fields` reads its 400/422 body and names
the fields it blames, so that only a refusal of something promptcache added is retried.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit

from promptcache._plan._models import openai_explicit

if TYPE_CHECKING:
    from promptcache._plan._ctx import Ctx

__all__ = [
    "OPENAI_HINTS",
    "Verdict",
    "WithheldHints",
    "classify",
    "error_message",
    "hints_allowed",
    "host_of",
    "is_openai_model",
    "refused_fields",
]

#: Request fields promptcache may add that only OpenAI (and gateways in front of it) knows.
OPENAI_HINTS: Final = frozenset(
    {"prompt_cache_key", "prompt_cache_options", "prompt_cache_breakpoint"}
)

# OpenAI model families as sent on the wire, after any provider prefix a gateway uses
# (``openai/gpt-5.6`` on OpenRouter, LiteLLM, Cloudflare's unified endpoint, Vercel; Portkey's
# ``@slug/gpt-4o``) and a fine-tune's ``ft:``. Not gpt-oss (open weights, served by vLLM,
# Ollama, Groq ...) nor gpt-2/gpt-j/gpt-neo*, which compatible servers host.
_OPENAI_MODEL: Final = re.compile(
    r"(?:ft:)?(?:gpt-(?:3\.5|[4-9]|\d\d)|chatgpt-|o\d+(?:-|$)|codex-|computer-use-)"
)
_OLLAMA_PORT: Final = 11434  # Ollama's default port: never OpenAI behind it


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether an endpoint gets OpenAI's hints, and the reason (for the doctor and warnings)."""

    openai: bool
    why: str


@dataclass(frozen=True, slots=True)
class WithheldHints:
    """Hints promptcache did not send to one endpoint, and why (``DefaultPlanner.withheld``).

    Attributes:
        base_url: The base URL the requests went to (scheme, host, path, query).
        host: Its host name.
        model: The model of those requests (``None`` for a refusal: it holds for every model).
        hints: The fields withheld, among ``prompt_cache_key``, ``prompt_cache_options`` (which
            stands for the gpt-5.6+ breakpoints too) and ``prompt_cache_breakpoint``.
        reason: ``"not_openai"`` (``endpoint="auto"`` judged the server not to be OpenAI),
            ``"declared"`` (``endpoint="compatible"``) or ``"rejected"`` (the server refused
            them with a 400/422 and the call was retried without them).
        detail: Why, in words: the verdict, or the start of the server's error message.
        fix: The option that sends them anyway, or what to do.
        requests: Requests sent without them (for ``"rejected"``: refusals seen).
        first_seen: Planner clock time of the first such request.
        last_seen: Planner clock time of the latest.

    """

    base_url: str
    host: str
    model: str | None
    hints: tuple[str, ...]
    reason: Literal["not_openai", "declared", "rejected"]
    detail: str
    fix: str
    requests: int
    first_seen: float
    last_seen: float


@functools.lru_cache(maxsize=512)  # few models per process; a regex per call otherwise
def is_openai_model(model: str | None) -> bool:
    """Whether ``model`` names an OpenAI model family (with or without a provider prefix)."""
    if not model:
        return False
    name = model.lower().rsplit("/", 1)[-1]
    return _OPENAI_MODEL.match(name) is not None and "gpt-oss" not in name


def _openai_host(host: str, path: str) -> str | None:
    """Why a base URL is OpenAI, or a gateway route that only ever reaches OpenAI models."""
    if host == "api.openai.com" or host.endswith((".openai.com", ".openai.azure.com")):
        return f"{host} is OpenAI"
    if host.endswith(".azure.com") and "/openai" in path:
        return "an Azure OpenAI deployment"  # cognitiveservices / services.ai with /openai/...
    segments = [s for s in path.split("/") if s]
    if (
        host == "gateway.ai.cloudflare.com"
        and segments
        and (segments[-1] == "openai" or "azure-openai" in segments)
    ):
        return "a Cloudflare AI Gateway route to OpenAI"
    if host in ("oai.helicone.ai", "oai.hconeai.com"):
        return "Helicone's OpenAI proxy"
    return None


@functools.lru_cache(maxsize=512)  # a handful of (base URL, model) pairs per process
def classify(base_url: str, model: str | None) -> Verdict:
    """Decide whether a request to ``base_url`` for ``model`` gets OpenAI's hints ("auto")."""
    split = urlsplit(base_url)
    host = (split.hostname or "").lower()
    why = _openai_host(host, split.path)
    if why is not None:
        return Verdict(True, why)
    try:
        port = split.port
    except ValueError:
        port = None
    if port == _OLLAMA_PORT:
        return Verdict(False, f"{host}:{port} is an Ollama server")
    if is_openai_model(model):
        return Verdict(True, f"{model!r} is an OpenAI model (through a gateway or proxy)")
    return Verdict(False, f"{model!r} is not an OpenAI model, so {host} is not OpenAI for it")


@functools.lru_cache(maxsize=256)
def host_of(base_url: str) -> str:
    """Return the host name of a base URL, in lower case."""
    return (urlsplit(base_url).hostname or "").lower()


def hints_allowed(ctx: Ctx) -> bool:
    """Whether this request gets OpenAI's hints; otherwise note what is withheld, and why."""
    opts = ctx.openai
    if opts.endpoint == "openai":
        return True
    info = ctx.info
    reason: Literal["not_openai", "declared"]
    if opts.endpoint == "compatible":
        reason, why = "declared", 'OpenAIOptions(endpoint="compatible") was set'
    else:
        verdict = classify(info.base_url, info.model)
        if verdict.openai:
            return True
        reason, why = "not_openai", verdict.why
    hints: tuple[str, ...] = () if opts.compatible_accepts_cache_key else ("prompt_cache_key",)
    if opts.explicit_breakpoints and openai_explicit(info.model):
        hints += ("prompt_cache_options",)
    if hints:
        fix = (
            'OpenAIOptions(endpoint="openai") sends them all; '
            "OpenAIOptions(compatible_accepts_cache_key=True) sends prompt_cache_key only"
        )
        host = host_of(info.base_url)
        ctx.state.withhold(info.base_url, host, info.model, hints, reason, why, fix, ctx.now)
    return False


# --- what a refusal names ---------------------------------------------------------------------

# Clauses that list what a server *accepts* (serde's "expected one of", "did you mean",
# LiteLLM's "for model=..."): a field named there is not the one refused.
_ALLOWED_LIST: Final = re.compile(
    r"(expected one of|expected\s+`|did you mean|supported (?:values|parameters|fields)"
    r"|valid (?:parameters|fields)|use\s+['\"`]?\w+['\"`]?\s+instead|for model=|to drop these)"
    r".*?(?=$|\n|\.\s)",
    re.IGNORECASE | re.DOTALL,
)
# A pydantic error list rendered as Python repr inside a message (vLLM, LiteLLM): only each
# entry's ``loc`` blames a field; its ``input`` may echo the whole request body.
_REPR_LOC: Final = re.compile(r"""['"]loc['"]:\s*[(\[]([^)\]]*)[)\]]""")
_WORD: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _words(text: str) -> set[str]:
    if "'loc'" in text or '"loc"' in text:
        return {w for loc in _REPR_LOC.findall(text) for w in _WORD.findall(loc)}
    return set(_WORD.findall(_ALLOWED_LIST.sub(" ", text)))


def _walk(obj: Any, out: set[str]) -> None:
    if isinstance(obj, dict):
        loc = obj.get("loc")
        if isinstance(loc, list) and "msg" in obj:
            # A FastAPI/pydantic error entry: the location is the blamed field, never the echo.
            out.update(w for part in loc if isinstance(part, str) for w in _WORD.findall(part))
            return
        for k, v in obj.items():
            if k == "param" and isinstance(v, str):
                out.update(_WORD.findall(v))  # OpenAI: "messages[0].content[0].x"
            elif k in ("message", "msg", "error", "detail", "errors"):
                _walk(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _walk(v, out)
    elif isinstance(obj, str):
        out.update(_words(obj))


def refused_fields(error_body: bytes) -> frozenset[str]:
    """Names the error body blames, among words of its messages, params and pydantic locations.

    Only the parts of an error that say what went wrong are read — the message, OpenAI's
    ``param``, pydantic's ``loc`` — never echoed input, and never a list of what the server
    would have accepted instead. Callers intersect the result with the fields they added.
    """
    text = error_body.decode("utf-8", "replace")
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        return frozenset(_words(text))
    out: set[str] = set()
    _walk(parsed, out)
    return frozenset(out)


def error_message(error_body: bytes, limit: int = 200) -> str:
    """Return the human part of an error body (its ``message``/``detail``), on one short line."""
    text = error_body.decode("utf-8", "replace")
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = text
    for _ in range(3):  # {"error": {"message": ...}}, {"detail": [...]}, {"error": "..."}
        if not isinstance(parsed, dict):
            break
        inner = next((parsed[k] for k in ("error", "message", "detail") if k in parsed), None)
        if inner is None:
            break
        parsed = inner
    if not isinstance(parsed, str):
        parsed = json.dumps(parsed, ensure_ascii=False)
    return " ".join(parsed.split())[:limit]
