"""Shared text moves: layout marks, volatile lines, and a copy-on-write mark stripper."""

from __future__ import annotations

from typing import Any

from promptcache._plan._layout import has_marks, split_marked, strip_marks
from promptcache._plan._volatile import volatile_lines

__all__ = ["relayout", "strip_deep"]


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


def strip_deep(obj: Any) -> Any:
    """Return ``obj`` with layout marks removed from every string; the same object if none.

    Copy-on-write: containers are copied only along paths that change, so the caller's body is
    never mutated and untouched subtrees are shared.
    """
    if isinstance(obj, str):
        return strip_marks(obj) if has_marks(obj) else obj
    if isinstance(obj, dict):
        new: dict[str, Any] | None = None
        for k, v in obj.items():
            nv = strip_deep(v)
            if nv is not v:
                if new is None:
                    new = dict(obj)
                new[k] = nv
        return obj if new is None else new
    if isinstance(obj, list):
        newl: list[Any] | None = None
        for i, v in enumerate(obj):
            nv = strip_deep(v)
            if nv is not v:
                if newl is None:
                    newl = list(obj)
                newl[i] = nv
        return obj if newl is None else newl
    return obj
