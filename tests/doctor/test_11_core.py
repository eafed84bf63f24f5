"""Unit tests of the pure parts: fingerprints, findings as JSON, the history file."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from promptcache import Finding
from promptcache._api import Api, RequestInfo
from promptcache._doctor import Evidence, _history
from promptcache._doctor._fingerprint import _texts, fingerprint

ANT = RequestInfo(
    Api.ANTHROPIC_MESSAGES, "https://api.anthropic.com", "claude-sonnet-5", "t", False
)
RESP = RequestInfo(Api.OPENAI_RESPONSES, "https://api.openai.com/v1", "gpt-6.1-sol", "t", False)


def test_breakpoints_and_string_vs_part_do_not_change_a_fingerprint() -> None:
    cc: Any = {"type": "ephemeral", "ttl": "1h"}
    plain = {
        "system": "S" * 5000,
        "messages": [{"role": "user", "content": "hello"}],
    }
    marked = {
        "system": [{"type": "text", "text": "S" * 5000, "cache_control": cc}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hello", "cache_control": cc}]}
        ],
    }
    a, b = fingerprint(ANT, plain), fingerprint(ANT, marked)
    assert a.digests == b.digests and a.family == b.family
    assert a.bps == () and b.bps == (0, 1) and b.ttl_s == 3600
    assert b.label(1) == "message 0 part 0" and a.label(1) == "message 0"


def test_a_tool_output_string_and_parts_differ_as_they_do_for_the_provider() -> None:
    def body(output: Any) -> dict[str, Any]:
        return {
            "input": [{"type": "function_call_output", "call_id": "c", "output": output}],
        }

    a = fingerprint(RESP, body("rows"))
    b = fingerprint(RESP, body([{"type": "input_text", "text": "rows"}]))
    c = fingerprint(
        RESP,
        body(
            [
                {
                    "type": "input_text",
                    "text": "rows",
                    "prompt_cache_breakpoint": {"mode": "explicit"},
                }
            ]
        ),
    )
    assert a.digests != b.digests
    assert b.digests == c.digests and c.bps == (0,)


def test_text_digests_by_identity_never_mix_up_strings() -> None:
    big = "x" * 10_000
    same = _texts.digest(big)
    assert _texts.digest(big) == same
    other = big[:-1] + "y"
    assert _texts.digest(other) != same
    assert _texts.digest(("x" * 9_999) + "x") == same  # equal text, another object


def test_findings_round_trip_and_fold() -> None:
    f = Finding(
        kind="prefix_changed",
        family="abc",
        api="openai.chat",
        model="gpt-4.1",
        summary="s",
        fix="f",
        evidence=Evidence(block="system", char_offset=3, fields=("model",)),
        cost=Decimal("0.5"),
        missed_tokens=10,
        first_seen=1.0,
        last_seen=2.0,
    )
    assert Finding.from_json(f.to_json()) == f
    g = f.merged(f)
    assert g.count == 2 and g.cost == Decimal("1.0") and g.missed_tokens == 20


def test_history_folds_and_ignores_foreign_files(tmp_path: Path) -> None:
    f = Finding("ttl_lapsed", "fam", "anthropic.messages", "m", "s", "f", cost=None)
    _history.add(tmp_path, [f])
    _history.add(tmp_path, [f])
    (got,) = _history.load(tmp_path)
    assert got.count == 2 and got.cost is None
    (tmp_path / "doctor.json").write_text('{"v": 99, "findings": []}')
    assert _history.load(tmp_path) == []
