"""A test helper for users' CI: assert that a prompt's cacheable prefix stays byte-stable.

Unlike the emulator beside it (which imports nothing from the rest of promptcache, to stay an
independent referee), this helper *is* the cache doctor's check, run on request arguments
instead of live traffic: it fingerprints each request the way the doctor does and fails with
the doctor's explanation — which block changed, where, what it looked like.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

__all__ = ["assert_prefix_stable"]

ApiName = Literal["anthropic.messages", "openai.chat", "openai.responses"]


def _api_of(body: Mapping[str, Any]) -> ApiName:
    if "input" in body or "instructions" in body:
        return "openai.responses"
    if "system" in body or ("max_tokens" in body and "messages" in body):
        return "anthropic.messages"
    return "openai.chat"


def assert_prefix_stable(
    requests: Sequence[Mapping[str, Any]] | Callable[[], Mapping[str, Any]],
    *,
    calls: int = 3,
    api: ApiName | None = None,
) -> None:
    """Fail if what should be the cached prefix differs between requests of one prompt.

    ``requests`` are keyword arguments as passed to ``messages.create`` /
    ``chat.completions.create`` / ``responses.create`` (in the order sent), or a function
    building them, called ``calls`` times. Everything before each request's final message —
    tools, system prompt or instructions, earlier turns — must reappear byte for byte in the
    next request, and the settings that scope the cache (model, tools and their order,
    ``tool_choice``, reasoning, response format) must not change. ``api`` is inferred from
    the arguments when not given.

    >>> from promptcache.testing import assert_prefix_stable
    >>> ask = lambda q: {"model": "m", "system": "Be brief.", "max_tokens": 9,
    ...                  "messages": [{"role": "user", "content": q}]}
    >>> assert_prefix_stable([ask("one"), ask("two")])
    """
    from promptcache._api import Api, RequestInfo
    from promptcache._doctor._core import common_blocks, diff_block, must_repeat
    from promptcache._doctor._findings import DoctorOptions
    from promptcache._doctor._fingerprint import fingerprint

    bodies = [requests() for _ in range(calls)] if callable(requests) else list(requests)
    if len(bodies) < 2:
        raise ValueError("assert_prefix_stable needs at least two requests to compare")
    options = DoctorOptions(excerpt_chars=60)
    prints = []
    for body in bodies:
        kind = Api(api or _api_of(body))
        model = body.get("model")
        name = model if isinstance(model, str) else None
        info = RequestInfo(kind, "https://example.invalid", name, "", stream=False)
        prints.append(fingerprint(info, dict(body)))
    for n, (a, b) in enumerate(itertools.pairwise(prints), start=1):
        changed = [k for k in b.scope if b.scope[k] != a.scope.get(k)]
        if a.tools != b.tools:
            changed.append("tools order" if sorted(a.tools) == sorted(b.tools) else "tools")
        if changed:
            raise AssertionError(
                f"request {n} changed {', '.join(changed)} since request {n - 1}: "
                "the provider cache of the earlier request does not apply"
            )
        shared = common_blocks(a.digests, b.digests)
        if shared < must_repeat(a, b):
            label, at, before, after, volatile = diff_block(a, b, shared, options)
            looks = f" (looks like a {volatile})" if volatile else ""
            where = f"{label}, char {at}" if at is not None else label
            raise AssertionError(
                f"request {n} changed the prefix in {where}{looks}\n"
                f"  before: {before!r}\n  after:  {after!r}"
            )
