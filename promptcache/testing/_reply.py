"""Deterministic reply content: words, minimal JSON instances of schemas, ids, errors."""

from __future__ import annotations

import random
import secrets
from typing import Any

import orjson

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "ApiError",
    "chunk_text",
    "fresh_id",
    "minimal_instance",
    "words",
]

DEFAULT_OUTPUT_TOKENS = 24

# fmt: off
_VOCAB: tuple[str, ...] = (
    "the", "cache", "keeps", "a", "stable", "prefix", "so", "every", "later", "call", "reads",
    "it", "back", "cheaply", "while", "new", "tokens", "arrive", "after", "the", "breakpoint",
    "and", "the", "model", "answers", "briefly", "with", "plain", "words", "that", "mean",
    "nothing", "in", "particular", "but", "are", "always", "the", "same", "for", "the", "same",
    "request", "emulator", "reply", "prompt", "token", "input", "output", "fast", "warm",
    "cold", "hit", "miss", "write", "read",
)
# fmt: on


class ApiError(Exception):
    """An error answer in the provider's own shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code


def words(seed: bytes, n: int) -> list[str]:
    """``n`` words chosen deterministically from ``seed`` (one output token each)."""
    rng = random.Random(seed)
    return [rng.choice(_VOCAB) for _ in range(n)]


def fresh_id(prefix: str, length: int = 24) -> str:
    """Return a new random id such as ``msg_…`` (fresh for every served call)."""
    return prefix + secrets.token_hex(length)[:length]


def chunk_text(text: str, size: int = 16) -> list[str]:
    """Split text into deltas of ``size`` characters for streaming."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _resolve(schema: Any, root: Any) -> Any:
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema and seen < 32:
        ref = schema["$ref"]
        seen += 1
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return {}
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        schema = node
    return schema


def minimal_instance(schema: Any, root: Any | None = None, depth: int = 0) -> Any:
    """Return a small JSON value valid against ``schema``, enough for ``parse()`` helpers.

    Handles objects (every listed property, since strict schemas require them all), arrays
    (``minItems`` items), enums/consts, ``anyOf``/``oneOf``/``allOf``, ``$ref`` into ``$defs``,
    string formats and numeric minimums.
    """
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if not isinstance(schema, dict) or depth > 12:
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "default" in schema and depth > 0:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            non_null = [o for o in options if _resolve(o, root) != {"type": "null"}]
            return minimal_instance((non_null or options)[0], root, depth + 1)
    if isinstance(schema.get("allOf"), list) and schema["allOf"]:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            part = _resolve(part, root)
            if isinstance(part, dict):
                merged.update(part)
        return minimal_instance(merged, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and "properties" in schema:
        kind = "object"
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: minimal_instance(sub, root, depth + 1) for name, sub in props.items()}
    if kind == "array":
        count = int(schema.get("minItems") or 0)
        return [minimal_instance(schema.get("items", {}), root, depth + 1) for _ in range(count)]
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date-time":
            return "2026-01-01T00:00:00Z"
        if fmt == "date":
            return "2026-01-01"
        if fmt == "uuid":
            return "00000000-0000-4000-8000-000000000000"
        min_len = int(schema.get("minLength") or 0)
        return "x" * max(min_len, 1) if min_len else "text"
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return {}


def json_text(value: Any) -> str:
    """Compact JSON text of ``value``."""
    return orjson.dumps(value).decode()
