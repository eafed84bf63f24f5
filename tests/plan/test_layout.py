from __future__ import annotations

import asyncio
import inspect
import json

import pytest

import promptcache
from promptcache._plan._layout import Piece, has_marks, split_marked, strip_marks


def test_marks_are_invisible_plain_strings_that_strip_back() -> None:
    s = promptcache.static("rules")
    d = promptcache.dynamic("now")
    assert type(s) is str and type(d) is str
    assert has_marks(s) and has_marks(d) and not has_marks("plain")
    assert strip_marks(f"a{s}b{d}c") == "arulesbnowc"


@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_marks_survive_json_serialisation(ensure_ascii: bool) -> None:
    text = promptcache.static("A") + promptcache.dynamic("B")
    back = json.loads(json.dumps({"t": text}, ensure_ascii=ensure_ascii))["t"]
    assert back == text
    assert [p.kind for p in split_marked(back)] == ["static", "dynamic"]


def test_dynamic_span_takes_its_line_with_it() -> None:
    now = promptcache.dynamic("2026-11-28T10:00Z")
    text = f"Intro line\nCurrent time: {now} (UTC)\n" + promptcache.static("Rules.\n")
    pieces = split_marked(text)
    assert pieces == [
        Piece("plain", "Intro line\n"),
        Piece("dynamic", "Current time: 2026-11-28T10:00Z (UTC)\n"),
        Piece("static", "Rules.\n"),
    ]
    assert "".join(p.text for p in pieces) == strip_marks(text)


def test_nested_marks_innermost_wins() -> None:
    text = promptcache.static("A " + promptcache.dynamic("x") + " B")
    kinds = [(p.kind, p.text) for p in split_marked(text)]
    assert kinds == [("static", "A "), ("dynamic", "x"), ("static", " B")]


def test_static_and_dynamic_reject_non_strings() -> None:
    with pytest.raises(TypeError):
        promptcache.static(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        promptcache.dynamic(None)  # type: ignore[arg-type]


def test_layout_decorator_marks_inputs_and_keeps_signature() -> None:
    @promptcache.layout(static=["rules"])
    def build(rules: str, question: str, n: int = 1) -> str:
        return f"{rules}\nQ: {question} x{n}"

    out = build("Be brief.", "why?", n=2)
    pieces = split_marked(out)
    assert [p.kind for p in pieces] == ["static", "plain", "dynamic"]
    assert strip_marks(out) == "Be brief.\nQ: why? x2"
    assert list(inspect.signature(build).parameters) == ["rules", "question", "n"]
    assert build.__wrapped__ is not None  # type: ignore[attr-defined]


def test_layout_only_named_dynamic_inputs() -> None:
    @promptcache.layout(static=["a"], dynamic=["b"])
    def build(a: str, b: str, c: str) -> str:
        return a + b + c

    kinds = [p.kind for p in split_marked(build("A", "B", "C"))]
    assert kinds == ["static", "dynamic"]  # "C" is plain and binds to the dynamic line


def test_layout_on_coroutines_and_lists() -> None:
    @promptcache.layout(static=["docs"])
    async def build(docs: list[str], q: str) -> list[str]:
        return [*docs, q]

    out = asyncio.run(build(["d1", "d2"], "q"))
    assert [split_marked(x)[0].kind for x in out] == ["static", "static", "dynamic"]


def test_layout_misuse_is_a_type_error() -> None:
    with pytest.raises(TypeError):

        @promptcache.layout(static=["nope"])
        def f(a: str) -> str:
            return a

    with pytest.raises(TypeError):
        promptcache.layout(static=["a"], dynamic=["a"])
