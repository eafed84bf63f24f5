"""Volatile spans in would-be prefixes: timestamps, dates, ids, counters, observed changes.

Detection is line-based: a line that carries a volatile value moves as a whole (label and
value), so the model still reads ``Current time: …`` as one statement, just later. Only short
lines are considered — a date inside a paragraph of a document is content, not a clock — and
only the head and tail of very long texts are scanned with regexes, to stay inside the
planning budget; changes observed between calls of a family are found anywhere by a
memcmp-speed diff.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["common_prefix_len", "common_suffix_len", "diff_label", "volatile_lines"]

MAX_LINE: Final = 200
SCAN_WINDOW: Final = 4000

_DIGIT: Final = re.compile(r"\d")
_ASCII_DIGITS: Final = "0123456789"
_VOLATILE: Final = re.compile(
    r"""
      \d{4}-\d{2}-\d{2}(?:[T\s]\d{1,2}:\d{2})?                       # ISO date / datetime
    | \b\d{1,2}[/.]\d{1,2}[/.]\d{2,4}\b                               # 28/11/2026, 11.28.26
    | \b\d{1,2}:\d{2}(?::\d{2})?\b                                    # 10:24, 10:24:19
    | \b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?
        \s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}\b                           # November 28, 2026
    | \b\d{1,2}\s+(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?\s+\d{4}\b
    | \b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b  # UUID
    | \b(?=[0-9a-f]{12})[0-9a-f]*\d[0-9a-f]*\b                          # hex ids
    | \b(?:req|request|trace|span|session|sess|run|call|msg|chatcmpl|resp|evt|job|txn)
        [_-][A-Za-z0-9]{6,}\b                                         # prefixed ids
    | \b1[6-9]\d{8}(?:\.\d+)?\b                                       # unix epoch seconds
    | \b1[6-9]\d{11}\b                                                # unix epoch millis
    | (?i:\b(?:request|req|call|turn|attempt|iteration|counter|count|run|visit|seq)
        \s*(?:\#|no\.?|number|id)?\s*[:=\#]?\s*\d+\b)                 # counters
    """,
    re.VERBOSE,
)


def _line_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    ls = text.rfind("\n", 0, start) + 1
    le = text.find("\n", end)
    return ls, (len(text) if le < 0 else le + 1)


def volatile_lines(text: str, labels: frozenset[str] = frozenset()) -> list[tuple[int, int]]:
    """Return sorted, disjoint ``(start, end)`` spans of whole short lines to move.

    A line qualifies when it matches a volatile pattern or starts with one of ``labels``
    (text observed to precede a changing value in earlier calls of the same family).
    """
    spans: set[tuple[int, int]] = set()
    n = len(text)
    windows = [(0, n)] if n <= 2 * SCAN_WINDOW else [(0, SCAN_WINDOW), (n - SCAN_WINDOW, n)]
    ascii_text = text.isascii()
    for ws, we in windows:
        # Every pattern needs a digit: jump from digit to digit, test only short lines.
        pos = ws
        nxt = [text.find(c, ws, we) for c in _ASCII_DIGITS] if ascii_text else []
        while True:
            if ascii_text:
                # ASCII text: the next digit by memchr-speed finds (one per digit, advanced
                # only when passed), ~10x cheaper than a regex scan of the window.
                at = -1
                for i, x in enumerate(nxt):
                    if 0 <= x < pos:
                        nxt[i] = x = text.find(_ASCII_DIGITS[i], pos, we)
                    if x >= 0 and (at < 0 or x < at):
                        at = x
                if at < 0:
                    break
            else:
                d = _DIGIT.search(text, pos, we)  # \d: any Unicode digit
                if d is None:
                    break
                at = d.start()
            ls, le = _line_bounds(text, at, at)
            if le - ls <= MAX_LINE and _VOLATILE.search(text, ls, le):
                spans.add((ls, le))
            pos = max(le, at + 1)
    for label in labels:
        pos = 0
        while True:
            i = text.find(label, pos)
            if i < 0:
                break
            pos = i + 1
            if i == 0 or text[i - 1] == "\n":
                ls, le = _line_bounds(text, i, i + len(label))
                if le - ls <= MAX_LINE:
                    spans.add((ls, le))
    return sorted(spans)


def common_prefix_len(a: str, b: str) -> int:
    """Length of the common prefix of ``a`` and ``b`` (binary search on C-speed slices)."""
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def common_suffix_len(a: str, b: str, limit: int) -> int:
    """Length of the common suffix of ``a`` and ``b``, at most ``limit``."""
    lo, hi = 0, min(len(a), len(b), limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid :] == b[len(b) - mid :]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def diff_label(old: str, new: str) -> str | None:
    """If ``new`` differs from ``old`` inside one short line, return that line's stable label.

    The label is the line's text before the first changed character (at least 3 chars), which
    later calls find with a substring search. ``None`` when the change is not a one-line edit.
    """
    if old == new:
        return None
    i = common_prefix_len(old, new)
    j = common_suffix_len(old, new, min(len(old), len(new)) - i)
    ls, le_new = _line_bounds(new, i, len(new) - j)
    _, le_old = _line_bounds(old, i, len(old) - j)
    if le_new - ls > MAX_LINE or le_old - ls > MAX_LINE:
        return None
    if new[ls:le_new].count("\n") > 1 or i >= len(new) - j:
        # several lines, or a pure deletion: nothing in the new text to call volatile
        return None
    label = new[ls:i]
    return label if len(label.strip()) >= 3 else None
