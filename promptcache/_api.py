"""Which provider API a request is for: pure routing on method and path."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from promptcache._accounting import Attribution

__all__ = ["Api", "RequestInfo", "route"]


class Api(enum.Enum):
    """A generating API that promptcache understands."""

    OPENAI_CHAT = "openai.chat"
    OPENAI_RESPONSES = "openai.responses"
    ANTHROPIC_MESSAGES = "anthropic.messages"

    @property
    def provider(self) -> str:
        """``"openai"`` or ``"anthropic"`` (the wire dialect, not who hosts it)."""
        return self.value.split(".", 1)[0]


def route(method: str, path: str) -> Api | None:
    """Return the generating API for a request, or ``None`` for everything else.

    Matching is on the path suffix so that proxies, Azure deployment paths
    (``/openai/deployments/x/chat/completions``) and gateways with prefixes all route.
    ``…/messages/count_tokens``, ``…/responses/{id}`` and batch routes are not generating
    routes and return ``None``.
    """
    if method != "POST":
        return None
    p = path.rstrip("/")
    if p.endswith("/chat/completions"):
        return Api.OPENAI_CHAT
    if p.endswith("/responses"):
        return Api.OPENAI_RESPONSES
    if p.endswith("/messages"):
        # Anthropic threads and batches live under other suffixes; /v1/messages is the one
        # generating route (beta.messages.create posts here too, with ?beta=true).
        return Api.ANTHROPIC_MESSAGES
    return None


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What every layer needs to know about one generating call, computed once per request.

    ``base_url`` is the URL up to (not including) the API path, e.g.
    ``"https://api.openai.com/v1"``; ``tenant`` is a salted fingerprint of the credential
    (never the credential); ``signed`` marks request-signing clients (Bedrock SigV4 …) whose
    body must not be rewritten after the SDK serialised it.
    """

    api: Api
    base_url: str
    model: str | None
    tenant: str
    stream: bool
    signed: bool = False
    attribution: Attribution = field(default_factory=Attribution)
    started: float = 0.0
