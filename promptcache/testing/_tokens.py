"""Deterministic token counting: the prompt rendered as one byte stream, 4 bytes a token.

The emulator does not run a real tokenizer (none is available offline, and the point is to be
predictable). Each request is *rendered* into a single byte stream, in the order the provider
builds its prefix, and then::

    tokens(prefix) = ceil(len(rendered bytes of the prefix) / 4)

The rendering, per API:

* tools first (each tool definition as canonical JSON: sorted keys, no whitespace, without
  ``cache_control``), then the structured-output schema (OpenAI), then the system prompt and
  messages;
* every message (and the system prompt) starts with a 16-byte role header (4 tokens);
* text is its UTF-8 bytes; images are a fixed 340 bytes (85 tokens); any other content block
  (tool calls, tool results' non-text parts, documents, …) is its canonical JSON without cache
  markers;
* every request ends with a 16-byte reply primer (4 tokens) that is never cached.

So a 4,000-character ASCII system prompt is 1,000 tokens plus 4 for its header. Settings that
change the cache key without costing tokens (Anthropic ``tool_choice`` and ``thinking``, OpenAI
``reasoning`` effort) are mixed into the prefix hash at the point where they take effect, but add
no bytes.

Prefix identity is an xxh3-128 digest of the byte stream up to a boundary, computed in one
streaming pass (no per-token work): boundaries are block ends (Anthropic breakpoints, OpenAI
gpt-5.6+ breakpoints) or every 512 bytes = 128 tokens (OpenAI implicit caching before gpt-5.6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import xxhash

__all__ = [
    "BYTES_PER_TOKEN",
    "Boundary",
    "Rendering",
    "canonical",
    "header",
    "image_bytes",
    "tokens_for_bytes",
]

BYTES_PER_TOKEN = 4
HEADER_BYTES = 16
IMAGE_BYTES = 340
REPLY_PRIMER = b"<|reply|>".ljust(HEADER_BYTES)
# Keys that mark cache boundaries but are not part of the prompt the model sees.
_MARKER_KEYS = ("cache_control", "prompt_cache_breakpoint")


def tokens_for_bytes(n: int) -> int:
    """Tokens for ``n`` rendered bytes: ``ceil(n / 4)``."""
    return -(-n // BYTES_PER_TOKEN)


def header(role: str) -> bytes:
    """Return the 16-byte (4-token) header that opens a message."""
    return f"<|{role[:11]}|>".encode().ljust(HEADER_BYTES)


def _strip_markers(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_markers(v) for k, v in value.items() if k not in _MARKER_KEYS}
    if isinstance(value, list):
        return [_strip_markers(v) for v in value]
    return value


def canonical(value: Any) -> bytes:
    """Canonical JSON (sorted keys, compact) of ``value`` without cache markers."""
    return orjson.dumps(_strip_markers(value), option=orjson.OPT_SORT_KEYS)


def image_bytes(block: Any) -> bytes:
    """Return a fixed-size (85-token) stand-in for an image, unique to the image's content."""
    digest = xxhash.xxh3_128_hexdigest(canonical(block))
    return f"<|image:{digest}|>".encode().ljust(IMAGE_BYTES, b".")


@dataclass(frozen=True)
class Boundary:
    """A position in the rendered prompt: byte offset, token count, prefix digest."""

    offset: int
    tokens: int
    digest: bytes


class Rendering:
    """Builds the byte stream of a prompt and the digests of chosen prefixes.

    Args:
        chunk_bytes: When set, also record a boundary every ``chunk_bytes`` bytes (used for
            OpenAI's 128-token increments: 512 bytes).
        head_bytes: When set, keep the digest of the first ``head_bytes`` bytes in
            :attr:`head` (OpenAI routes by a hash of the prompt's first ~256 tokens).

    """

    def __init__(self, chunk_bytes: int | None = None, head_bytes: int | None = None) -> None:
        self._hasher = xxhash.xxh3_128()
        self._length = 0
        self._chunk = chunk_bytes
        self._head_at = head_bytes
        self.head: bytes | None = None
        self.chunks: list[Boundary] = []
        self.blocks: list[Boundary] = []

    @property
    def length(self) -> int:
        """Bytes rendered so far."""
        return self._length

    @property
    def tokens(self) -> int:
        """Tokens rendered so far."""
        return tokens_for_bytes(self._length)

    def add(self, data: bytes | memoryview) -> None:
        """Append visible prompt bytes."""
        if not data:
            return
        at = self._head_at
        if at is not None and self._length < at <= self._length + len(data):
            view = memoryview(data)
            cut = at - self._length
            self._add(view[:cut])
            self.head = self._hasher.digest()
            self._add(view[cut:])
            return
        self._add(data)

    def head_digest(self) -> bytes:
        """Digest of the first ``head_bytes`` bytes, or of everything for a shorter prompt."""
        return self.head if self.head is not None else self._hasher.digest()

    def _add(self, data: bytes | memoryview) -> None:
        if not data:
            return
        chunk = self._chunk
        if chunk is None:
            self._hasher.update(data)
            self._length += len(data)
            return
        # Split the update at every chunk boundary so each boundary gets its prefix digest:
        # one hasher update per 512 bytes, never per token.
        view = memoryview(data)
        pos = 0
        while pos < len(data):
            room = chunk - (self._length % chunk)
            piece = view[pos : pos + room]
            self._hasher.update(piece)
            self._length += len(piece)
            pos += len(piece)
            if self._length % chunk == 0:
                self.chunks.append(
                    Boundary(self._length, self._length // BYTES_PER_TOKEN, self._hasher.digest())
                )

    def add_text(self, text: str) -> None:
        """Append a text piece as UTF-8."""
        self.add(text.encode("utf-8", "surrogatepass"))

    def context(self, tag: str, value: Any) -> None:
        """Mix an invisible setting into the prefix identity (no bytes, no tokens).

        Used for settings that invalidate the cache from this point on without being prompt
        text (Anthropic ``tool_choice``/``thinking``; OpenAI reasoning effort).
        """
        if value is None:
            return
        self._hasher.update(b"\x00ctx:" + tag.encode() + b"=" + canonical(value) + b"\x00")

    def mark(self) -> int:
        """Record a block boundary at the current position and return its index."""
        self.blocks.append(Boundary(self._length, self.tokens, self._hasher.digest()))
        return len(self.blocks) - 1

    def digest(self) -> bytes:
        """Digest of everything rendered so far (visible and invisible)."""
        return self._hasher.digest()

    def finish(self) -> int:
        """Append the never-cached reply primer and return the total prompt tokens."""
        saved_chunk, self._chunk = self._chunk, None
        self.add(REPLY_PRIMER)
        self._chunk = saved_chunk
        return self.tokens
