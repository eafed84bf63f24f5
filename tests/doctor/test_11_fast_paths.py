"""The doctor's hot-path shortcuts give exactly what the plain computation gives."""

from __future__ import annotations

from itertools import compress, count
from operator import ne

import xxhash
from hypothesis import given
from hypothesis import strategies as st

from promptcache._doctor._core import common_blocks
from promptcache._doctor._fingerprint import _TextDigests


def _plain_common(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    return next(compress(count(), map(ne, a, b)), min(len(a), len(b)))


_blocks = st.lists(st.integers(0, 3), max_size=40).map(tuple)


@given(_blocks, _blocks)
def test_common_blocks_matches_the_plain_walk(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    assert common_blocks(a, b) == _plain_common(a, b)
    assert common_blocks(a + b, a + a) == _plain_common(a + b, a + a)


def test_common_blocks_on_the_usual_shapes() -> None:
    a = tuple(range(47))
    assert common_blocks(a, a) == 47
    assert common_blocks(a, (*a[:-1], -1)) == 46  # a new question
    assert common_blocks(a, (*a, 99, 100)) == 47  # a conversation grew
    assert common_blocks(a, (*a[:-1], -1, 5)) == 46
    assert common_blocks(a, (*a[:10], -1, *a[11:])) == 10  # changed inside the prefix


def _digest(text: str) -> int:
    return xxhash.xxh3_64_intdigest(text.encode("utf-8", "surrogatepass"))


# Texts that share their length and both ends but differ inside: the content key matches,
# and only the full comparison tells them apart.
_middles = st.text(alphabet="ab\u00e9\ud800", min_size=1, max_size=8)


@given(st.lists(_middles, min_size=1, max_size=6))
def test_text_digests_by_content_never_mix_up_texts(middles: list[str]) -> None:
    texts = _TextDigests()
    edge = "=" * 5000
    for m in middles:
        text = edge + m.ljust(8, "a") + edge
        fresh = (text + " ")[:-1]  # an equal string, another object (a parsed body)
        assert texts.digest(text) == _digest(text)
        assert texts.digest(fresh) == _digest(text)


def test_fresh_copies_are_not_kept() -> None:
    texts = _TextDigests()
    prompt = "policy " * 2000
    texts.digest(prompt)
    for _ in range(50):
        assert texts.digest((prompt + " ")[:-1]) == _digest(prompt)
    assert len(texts._map) == 1 and texts._chars == len(prompt)
