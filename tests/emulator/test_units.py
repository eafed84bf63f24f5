"""Pure pieces of the emulator: token counting, prefix digests, model rules, clocks, schemas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from promptcache.testing import (
    FakeClock,
    SystemClock,
    anthropic_minimum,
    openai_has_explicit_caching,
    tokens_for_bytes,
)
from promptcache.testing._reply import minimal_instance
from promptcache.testing._tokens import Rendering, header

ROOT = Path(__file__).resolve().parents[2]


def test_tokens_for_bytes() -> None:
    assert [tokens_for_bytes(n) for n in (0, 1, 4, 5, 8)] == [0, 1, 1, 2, 2]
    assert len(header("assistant")) == 16


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=1500), max_size=8))
def test_chunk_digests_equal_hashing_the_prefix(pieces: list[bytes]) -> None:
    r = Rendering(chunk_bytes=512)
    for piece in pieces:
        r.add(piece)
    data = b"".join(pieces)
    assert [c.offset for c in r.chunks] == list(range(512, len(data) + 1, 512))
    for c in r.chunks:
        assert c.digest == xxhash.xxh3_128(data[: c.offset]).digest()
        assert c.tokens == c.offset // 4


def test_block_digests_depend_on_invisible_context() -> None:
    a, b = Rendering(), Rendering()
    for r, choice in ((a, "auto"), (b, "any")):
        r.add(b"tools")
        r.mark()
        r.context("tool_choice", {"type": choice})
        r.add(b"messages")
        r.mark()
    assert a.blocks[0].digest == b.blocks[0].digest
    assert a.blocks[1].digest != b.blocks[1].digest
    assert a.blocks[1].tokens == b.blocks[1].tokens == 4


@pytest.mark.parametrize(
    ("model", "explicit"),
    [
        ("gpt-4o", False),
        ("gpt-4.1-mini", False),
        ("gpt-5", False),
        ("gpt-5.5-2026-04-23", False),
        ("o3", False),
        ("gpt-5.6-sol", True),
        ("gpt-6-luna", True),
        ("gpt-6.1-terra", True),
        ("ft:gpt-6-luna:acme::abc", True),
    ],
)
def test_openai_generation_rules(model: str, explicit: bool) -> None:
    assert openai_has_explicit_caching(model) is explicit


def test_anthropic_minimum_names() -> None:
    assert anthropic_minimum("claude-opus-5-5") == 512
    assert anthropic_minimum("claude-sonnet-4-5-20250929") == 1024  # retired 2026-11-30
    assert anthropic_minimum("claude-sonnet-5") == 1024
    assert anthropic_minimum("us.anthropic.claude-haiku-4-5-20251001-v1:0") == 4096
    assert anthropic_minimum("claude-opus-4-7@20260101") == 2048
    assert anthropic_minimum("claude-haiku-5-5") == 1024  # unverified upstream: default


def test_clocks() -> None:
    clock = FakeClock(start=100.0)
    assert clock.advance(5) == 105.0
    clock.set(200.0)
    assert clock.now() == 200.0
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        clock.set(10.0)
    wall = SystemClock()
    before = wall.now()
    assert wall.advance(3600) >= before + 3600


def test_minimal_instance() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/$defs/A"},
            "b": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 3}]},
            "c": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "d": {"enum": ["x", "y"]},
            "e": {"type": ["null", "boolean"]},
            "f": {"type": "string", "format": "date"},
        },
        "$defs": {"A": {"type": "object", "properties": {"n": {"type": "number"}}}},
    }
    assert minimal_instance(schema) == {
        "a": {"n": 0},
        "b": 3,
        "c": ["text", "text"],
        "d": "x",
        "e": False,
        "f": "2026-01-01",
    }


def test_import_is_light() -> None:
    code = (
        "import sys, promptcache.testing; "
        "print(any(m in sys.modules for m in ('openai', 'anthropic', 'pydantic')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "False"
