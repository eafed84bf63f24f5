"""Shared text moves: layout marks, volatile lines, and a copy-on-write mark stripper."""

from __future__ import annotations

from typing import Any, Final

import orjson

from promptcache._plan._layout import has_marks, split_marked, strip_marks
from promptcache._plan._volatile import volatile_lines

__all__ = ["TEXT_KEYS", "count_key", "relayout", "scan", "strip_deep"]


def relayout(text: str, *, volatile: bool, labels: frozenset[str]) -> tuple[str, list[str], bool]:
    """Split ``text`` into what stays and what moves after the cached prefix.

    Returns ``(kept, moved, static_marked)``: ``kept`` is the static and unmarked text in its
    original order, ``moved`` the dynamic runs (and, when ``volatile``, whole lines carrying
    timestamps, ids or labels seen to change) in their original order. ``kept`` plus the
    concatenation of ``moved`` is a permutation of the mark-free text: nothing is added or lost.
    """
    static_marked = False
    moved: list[str] = []
    if has_marks(text):
        pieces = split_marked(text)
        kept = "".join(p.text for p in pieces if p.kind != "dynamic")
        moved = [p.text for p in pieces if p.kind == "dynamic"]
        static_marked = any(p.kind == "static" for p in pieces)
    else:
        kept = text
    if volatile and kept:
        spans = volatile_lines(kept, labels)
        if spans:
            parts: list[str] = []
            last = 0
            for a, b in spans:
                parts.append(kept[last:a])
                moved.append(kept[a:b])
                last = b
            parts.append(kept[last:])
            kept = "".join(parts)
    return kept, moved, static_marked


# Keys whose containers carry prompt text (often huge strings): walked in Python, where a
# string costs O(1). Containers under any other key are structure (tool schemas, tool calls,
# response formats): many small nodes, so one C-speed serialisation tells they are mark-free.
TEXT_KEYS: Final = frozenset({"messages", "input", "content", "system", "instructions", "output"})


def _ascii(obj: Any) -> bool:
    # ASCII JSON cannot hold a mark (marks are astral-plane characters).
    try:
        return orjson.dumps(obj).isascii()
    except (TypeError, orjson.JSONEncodeError):
        return False


def strip_deep(obj: Any) -> Any:
    """Return ``obj`` with layout marks removed from every string; the same object if none.

    Copy-on-write: containers are copied only along paths that change, so the caller's body is
    never mutated and untouched subtrees are shared. This walk runs on every request in every
    mode, so it dispatches on exact types (parsed JSON has no subclasses), tests strings without
    a call (an ASCII string cannot hold a mark, and ``in`` on a string of a narrower kind than
    the mark returns at once, so only astral-plane text is ever scanned), and checks structure
    subtrees in one serialisation rather than node by node.
    """
    t = type(obj)
    if t is dict:
        new: dict[str, Any] | None = None
        for k, v in obj.items():
            tv = type(v)
            if tv is str:
                if v.isascii() or not has_marks(v):
                    continue
                nv: Any = strip_marks(v)
            elif tv is dict or tv is list:
                if k not in TEXT_KEYS and _ascii(v):
                    continue
                nv = strip_deep(v)
                if nv is v:
                    continue
            elif isinstance(v, (str, dict, list)):
                nv = _strip_any(v)
                if nv is v:
                    continue
            else:
                continue
            if new is None:
                new = dict(obj)
            new[k] = nv
        return obj if new is None else new
    if t is list:
        newl: list[Any] | None = None
        for i, v in enumerate(obj):
            tv = type(v)
            if tv is str:
                if v.isascii() or not has_marks(v):
                    continue
                nv = strip_marks(v)
            elif tv is dict or tv is list:
                nv = strip_deep(v)
                if nv is v:
                    continue
            elif isinstance(v, (str, dict, list)):
                nv = _strip_any(v)
                if nv is v:
                    continue
            else:
                continue
            if newl is None:
                newl = list(obj)
            newl[i] = nv
        return obj if newl is None else newl
    return _strip_any(obj)


def _strip_any(obj: Any) -> Any:
    # Subclasses of str/dict/list (only from hand-built bodies): the same rules, slower path.
    if isinstance(obj, str):
        return strip_marks(obj) if has_marks(obj) else obj
    if isinstance(obj, dict):
        return strip_deep(dict(obj)) if _marked(obj) else obj
    if isinstance(obj, list):
        return strip_deep(list(obj)) if _marked(obj) else obj
    return obj


def _marked(obj: Any) -> bool:
    if isinstance(obj, str):
        return has_marks(obj)
    if isinstance(obj, dict):
        return any(_marked(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_marked(v) for v in obj)
    return False


def count_key(obj: Any, key: str) -> int:
    """Count dicts anywhere in ``obj`` that carry ``key`` (e.g. the user's own breakpoints)."""
    return scan(obj, key)[1]


def scan(obj: Any, key: str, *, structure: bool = False) -> tuple[bool, int]:
    """Return ``(has_marks, count)``: layout marks anywhere in ``obj``, dicts carrying ``key``.

    One pass instead of two walks. Text containers are walked in Python (a string costs O(1):
    see :func:`strip_deep`); structure subtrees (tool schemas) are serialised once, where
    ``"key":`` can only be a key (inside a string value the quotes would be escaped) and ASCII
    output proves there is no mark. ``structure=True`` says ``obj`` itself is structure (the
    value of a body key such as ``tools``), to be serialised rather than walked.
    """
    pattern = b'"' + key.encode() + b'":'
    marked = False

    def text(v: str) -> None:
        nonlocal marked
        if not marked and not v.isascii() and has_marks(v):
            marked = True

    def walk(o: Any) -> int:
        nonlocal marked
        if isinstance(o, dict):
            n = 1 if key in o else 0
            for k, v in o.items():
                if type(v) is str:
                    if not v.isascii():
                        text(v)
                    continue
                if not isinstance(v, (dict, list)):
                    if isinstance(v, str):
                        text(v)
                    continue
                if k not in TEXT_KEYS:
                    try:
                        raw = orjson.dumps(v)
                    except (TypeError, orjson.JSONEncodeError):
                        raw = None
                    if raw is not None:
                        n += raw.count(pattern)
                        if not marked and not raw.isascii() and _marked(v):
                            marked = True
                        continue
                n += walk(v)
            return n
        if isinstance(o, list):
            n = 0
            for v in o:
                if type(v) is dict:
                    # A message or block of plain strings (most of a conversation): checked
                    # here, without a call per item.
                    flat = True
                    for x in v.values():
                        if type(x) is str:
                            if not x.isascii():
                                text(x)
                        elif isinstance(x, (dict, list, str)):
                            flat = False
                            break
                    if flat:
                        n += key in v
                        continue
                    n += walk(v)
                elif type(v) is str:
                    if not v.isascii():
                        text(v)
                elif isinstance(v, (dict, list)):
                    n += walk(v)
                elif isinstance(v, str):
                    text(v)
            return n
        if isinstance(o, str):
            text(o)
        return 0

    if structure and type(obj) is not str and isinstance(obj, (dict, list)):
        n = walk({"": obj})  # a key outside TEXT_KEYS: one serialisation
    else:
        n = walk(obj)
    return marked, n
