"""Per-model facts the planner needs: Anthropic minimums, OpenAI explicit-breakpoint support.

Our own table, written from PROVIDERS.md §2.1/§3.1 (the emulator keeps its own; they must not
share one, so that a mistake in either fails a test instead of agreeing with itself).
"""

from __future__ import annotations

import functools
import re
from typing import Final

__all__ = ["CONSERVATIVE_MIN", "anthropic_min_tokens", "openai_explicit", "openai_min_tokens"]

# Unknown Anthropic models get the largest published minimum: a breakpoint placed below the
# real minimum silently does nothing, but one never placed above it cannot hurt.
CONSERVATIVE_MIN: Final = 4096

_NEW: Final = re.compile(r"claude-(opus|sonnet|haiku|fable|mythos)-(\d+)(?:[-.](\d)(?!\d))?")
_OLD: Final = re.compile(r"claude-(\d)(?:[-.](\d))?-(opus|sonnet|haiku)")

# (family, major, minor) -> minimum. minor None means "x" (no minor in the name).
_TABLE: Final[dict[tuple[str, int, int | None], int]] = {
    ("opus", 5, None): 512,
    ("opus", 5, 5): 512,
    ("fable", 5, None): 512,
    ("fable", 5, 1): 512,
    ("mythos", 5, None): 512,
    ("mythos", 5, 1): 512,
    ("opus", 4, 8): 1024,
    ("sonnet", 5, None): 1024,
    # Sonnet 4.6: 1,024 in the current doc, 2,048 in an earlier one (conflict): take the larger.
    ("sonnet", 4, 6): 2048,
    ("sonnet", 4, 5): 1024,
    ("opus", 4, 1): 1024,
    ("opus", 4, None): 1024,
    ("sonnet", 4, None): 1024,
    ("opus", 4, 7): 2048,
    ("opus", 4, 6): 4096,
    ("opus", 4, 5): 4096,
    ("haiku", 4, 5): 4096,
    # Claude 3.x naming (claude-3-5-haiku, claude-3-7-sonnet, ...).
    ("haiku", 3, 5): 2048,
    ("haiku", 3, None): 2048,
    ("sonnet", 3, 7): 1024,
    ("sonnet", 3, 5): 1024,
    ("opus", 3, None): 1024,
}


@functools.lru_cache(maxsize=512)  # a handful of model names per process; regexes per call
def anthropic_min_tokens(model: str | None) -> int:
    """Minimum cacheable prefix for an Anthropic model; conservative when unknown."""
    if not model:
        return CONSERVATIVE_MIN
    m = model.lower()
    if "mythos" in m and "preview" in m:
        return 2048
    hit = _NEW.search(m)
    if hit:
        fam, major, minor = hit.group(1), int(hit.group(2)), hit.group(3)
        key = (fam, major, int(minor) if minor is not None else None)
    else:
        old = _OLD.search(m)
        if not old:
            return CONSERVATIVE_MIN
        key = (old.group(3), int(old.group(1)), int(old.group(2)) if old.group(2) else None)
    return _TABLE.get(key, CONSERVATIVE_MIN)


_GPT: Final = re.compile(r"(?:^|[/:])gpt-(\d+)(?:\.(\d+))?")


@functools.lru_cache(maxsize=512)  # a handful of model names per process; regexes per call
def openai_explicit(model: str | None) -> bool:
    """Whether ``model`` supports explicit breakpoints and ``prompt_cache_options`` (gpt-5.6+).

    Older models reject both (PROVIDERS.md §2.1), so anything unparsable counts as older.
    """
    if not model:
        return False
    hit = _GPT.search(model.lower())
    if not hit:
        return False
    major, minor = int(hit.group(1)), int(hit.group(2) or 0)
    return (major, minor) >= (5, 6)


def openai_min_tokens(model: str | None) -> int:
    """Minimum cacheable prefix on OpenAI: 1,024 (gpt-5.6+; older models 1,024-2,048)."""
    return 1024 if openai_explicit(model) else 2048
