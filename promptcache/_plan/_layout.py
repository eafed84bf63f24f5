"""Explicit layout for app code: mark prompt text as static or dynamic where it is built.

The marks are invisible private-use characters (Unicode plane 15) wrapped around the text.
They are plain ``str`` content, so they survive f-strings, concatenation, templating and the
SDK's JSON serialisation; the planner finds them in the request body the transport sees,
reorders so static text forms the cached prefix and dynamic text follows it, and strips them
before anything leaves the process. Sent through an *unwrapped* client the marks would reach
the provider as four invisible characters per span: harmless to most models, but a waste of
tokens — call :func:`strip_marks` on such text, or send it through a wrapped client.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, Literal, ParamSpec, TypeVar, cast, overload

__all__ = [
    "MARK_CHARS",
    "Piece",
    "dynamic",
    "has_marks",
    "layout",
    "split_marked",
    "static",
    "strip_marks",
]

# Supplementary private-use area A: unlikely to occur in real prompts (icon fonts use the BMP
# private-use area), and one code point each so a scan is a plain substring test in C.
S_OPEN: Final = "\U000f1e00"
S_CLOSE: Final = "\U000f1e01"
D_OPEN: Final = "\U000f1e02"
D_CLOSE: Final = "\U000f1e03"
MARK_CHARS: Final = (S_OPEN, S_CLOSE, D_OPEN, D_CLOSE)
_STRIP_TABLE: Final = {ord(c): None for c in MARK_CHARS}
_TOKEN_RE: Final = re.compile(f"([{S_OPEN}{S_CLOSE}{D_OPEN}{D_CLOSE}])")

_MAX_BIND: Final = 200

P = ParamSpec("P")
R = TypeVar("R")

Kind = Literal["static", "dynamic", "plain"]


def static(text: str) -> str:
    """Mark ``text`` as static: part of the prefix the provider should cache.

    >>> import promptcache
    >>> promptcache.static("You are a helpful assistant.") != "You are a helpful assistant."
    True
    """
    if not isinstance(text, str):
        raise TypeError(f"static() takes a str, got {type(text).__name__}")
    return f"{S_OPEN}{text}{S_CLOSE}"


def dynamic(text: str) -> str:
    """Mark ``text`` as dynamic: sent after the cached prefix, so it never breaks it.

    A dynamic span takes the unmarked text on its own line with it, so
    ``f"Current time: {dynamic(now)}"`` moves as one line.
    """
    if not isinstance(text, str):
        raise TypeError(f"dynamic() takes a str, got {type(text).__name__}")
    return f"{D_OPEN}{text}{D_CLOSE}"


# Aliases: ``layout``'s keyword parameters shadow the two functions inside its body.
_static_mark = static
_dynamic_mark = dynamic


def has_marks(text: str) -> bool:
    """Return whether ``text`` carries any layout mark."""
    return S_OPEN in text or D_OPEN in text or S_CLOSE in text or D_CLOSE in text


def strip_marks(text: str) -> str:
    """Return ``text`` without layout marks (what the provider must see)."""
    return text.translate(_STRIP_TABLE)


class Piece:
    """One run of marked text: ``kind`` is ``"static"``, ``"dynamic"`` or ``"plain"``."""

    __slots__ = ("kind", "text")

    def __init__(self, kind: Kind, text: str) -> None:
        self.kind: Kind = kind
        self.text = text

    def __repr__(self) -> str:
        return f"Piece({self.kind!r}, {self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Piece) and (self.kind, self.text) == (other.kind, other.text)

    def __hash__(self) -> int:
        return hash((self.kind, self.text))


def _raw_pieces(text: str) -> list[Piece]:
    # Marks nest (a dynamic value inside a static template): the innermost open mark decides.
    out: list[Piece] = []
    stack: list[Kind] = []
    for tok in _TOKEN_RE.split(text):
        if tok == S_OPEN:
            stack.append("static")
        elif tok == D_OPEN:
            stack.append("dynamic")
        elif tok in (S_CLOSE, D_CLOSE):
            if stack:
                stack.pop()
        elif tok:
            kind: Kind = stack[-1] if stack else "plain"
            if out and out[-1].kind == kind:
                out[-1].text += tok
            else:
                out.append(Piece(kind, tok))
    return out


def split_marked(text: str) -> list[Piece]:
    """Split marked text into runs, binding each dynamic span to the rest of its line.

    Unmarked text on the same line as a dynamic span (up to and including the line's newline)
    joins the span, so a label such as ``"Time: "`` moves with its value — unless the span
    already starts or ends its line, or the rest of the line is longer than 200 characters
    (then it is prose, not a label). Static and plain runs
    stay where they are. Concatenating the returned texts gives ``strip_marks(text)``.
    """
    raw = _raw_pieces(text)
    for i, p in enumerate(raw):
        if p.kind != "dynamic":
            continue
        if i > 0 and raw[i - 1].kind == "plain" and not p.text.startswith("\n"):
            left = raw[i - 1]
            cut = left.text.rfind("\n") + 1
            if len(left.text) - cut <= _MAX_BIND:
                p.text = left.text[cut:] + p.text
                left.text = left.text[:cut]
        if i + 1 < len(raw) and raw[i + 1].kind == "plain" and not p.text.endswith("\n"):
            right = raw[i + 1]
            cut = right.text.find("\n") + 1 or len(right.text)
            if cut <= _MAX_BIND:
                p.text += right.text[:cut]
                right.text = right.text[cut:]
    merged: list[Piece] = []
    for p in raw:
        if not p.text:
            continue
        if merged and merged[-1].kind == p.kind:
            merged[-1].text += p.text
        else:
            merged.append(Piece(p.kind, p.text))
    return merged


def _mark(value: Any, marker: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return marker(value)
    if isinstance(value, list):
        return [_mark(v, marker) for v in value]
    if isinstance(value, tuple):
        return tuple(_mark(v, marker) for v in value)
    return value


@overload
def layout(
    *, static: Iterable[str], dynamic: Iterable[str] | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
@overload
def layout(
    *, static: Iterable[str] | None = None, dynamic: Iterable[str]
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
def layout(
    *, static: Iterable[str] | None = None, dynamic: Iterable[str] | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    r"""Declare which inputs of a prompt-building function are static.

    String arguments named in ``static`` are marked static; every other string argument (or
    only those named in ``dynamic``, when given) is marked dynamic. Lists and tuples of strings
    are marked element by element; other values pass through. The function's own template text
    is unmarked and stays in place. Works on coroutine functions and keeps the signature.

    >>> import promptcache
    >>> @promptcache.layout(static=["rules"])
    ... def system_prompt(rules: str, now: str) -> str:
    ...     return f"Now: {now}\n{rules}"
    >>> promptcache.has_marks(system_prompt("Be brief.", "12:00"))
    True
    """
    static_names = frozenset(static or ())
    dynamic_names = None if dynamic is None else frozenset(dynamic)
    if dynamic_names is not None and static_names & dynamic_names:
        raise TypeError(f"inputs both static and dynamic: {sorted(static_names & dynamic_names)}")

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if not callable(fn):
            raise TypeError("layout(...) decorates a function")
        sig = inspect.signature(fn)
        unknown = (static_names | (dynamic_names or frozenset())) - set(sig.parameters)
        if unknown:
            raise TypeError(f"{fn.__qualname__} has no parameter(s) {sorted(unknown)}")

        def mark_args(args: Any, kwargs: Any) -> inspect.BoundArguments:
            bound = sig.bind(*args, **kwargs)
            for name, value in bound.arguments.items():
                if name in static_names:
                    bound.arguments[name] = _mark(value, _static_mark)
                elif dynamic_names is None or name in dynamic_names:
                    bound.arguments[name] = _mark(value, _dynamic_mark)
            return bound

        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[..., Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                bound = mark_args(args, kwargs)
                return await afn(*bound.args, **bound.kwargs)

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = mark_args(args, kwargs)
            return fn(*bound.args, **bound.kwargs)

        return wrapper

    return decorate
