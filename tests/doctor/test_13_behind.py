"""Issue 13: the doctor works behind the call, on what was sent then.

It fingerprints a copy of the sent body's containers and examines it later (a thread, or
``findings()``): a user who appends to, or edits, their own messages list right after the
call must not change what the doctor saw.
"""

from __future__ import annotations

import copy
from typing import Any

from promptcache._api import Api, RequestInfo
from promptcache._doctor import Doctor, DoctorOptions
from promptcache._doctor._doctor import COPY_PARTS, _Carried
from promptcache._doctor._fingerprint import fingerprint
from promptcache._hooks import Rewrite

from .kit import SYSTEM


class _SameBody:
    """A planner that sends the user's own dict (nothing copied: the worst case)."""

    def rewrite(self, info: RequestInfo, body: dict[str, Any]) -> Rewrite:
        return Rewrite(body)

    def observe(self, info: RequestInfo, sent: Rewrite, usage: Any) -> None:
        return None

    def rejected(self, info: RequestInfo, sent: Rewrite, status: int, body: bytes) -> None:
        return None


def test_the_fingerprint_is_of_the_body_as_sent_not_as_changed_afterwards() -> None:
    doctor = Doctor(_SameBody(), DoctorOptions(history=False))
    info = RequestInfo(Api.ANTHROPIC_MESSAGES, "https://api.anthropic.com", "claude-x", "t", False)
    messages: list[dict[str, Any]] = [{"role": "user", "content": [{"type": "text", "text": "q"}]}]
    body: dict[str, Any] = {"model": "claude-x", "system": SYSTEM, "messages": messages}
    as_sent = copy.deepcopy(body)
    sent = doctor.rewrite(info, body)
    carried = sent.plan
    assert isinstance(carried, _Carried) and carried.print is None  # not fingerprinted yet
    # The app goes on with its conversation before the doctor looks.
    messages.append({"role": "assistant", "content": "a"})
    messages[0]["content"][0]["text"] = "edited"
    body["system"] = "another system prompt"
    usage = {"v": 1, "usage": {"input_tokens": 10, "cache_read_tokens": 0}, "provider": "x"}
    doctor.observe(info, sent, usage)
    doctor.findings()  # examines what is queued
    assert carried.snapshot is None  # fingerprinted (and the copy let go)
    assert carried.fingerprint(info).digests == fingerprint(info, as_sent).digests


def test_warnings_and_overflow_are_examined_before_sending() -> None:
    info = RequestInfo(Api.ANTHROPIC_MESSAGES, "https://api.anthropic.com", "claude-x", "t", False)
    body: dict[str, Any] = {"model": "claude-x", "messages": [{"role": "user", "content": "q"}]}
    warned = Doctor(_SameBody(), DoctorOptions(history=False, warnings=True)).rewrite(info, body)
    assert isinstance(warned.plan, _Carried) and warned.plan.print is not None
    cc = {"type": "ephemeral"}
    many = {
        **body,
        "system": [{"type": "text", "text": f"p{i}", "cache_control": cc} for i in range(5)],
    }
    quiet = Doctor(_SameBody(), DoctorOptions(history=False))
    over = quiet.rewrite(info, many)
    assert isinstance(over.plan, _Carried) and over.plan.print is not None
    assert [f.kind for f in quiet.findings()] == ["breakpoints"]


def test_long_bodies_are_fingerprinted_at_once_copying_them_would_cost_as_much() -> None:
    doctor = Doctor(_SameBody(), DoctorOptions(history=False))
    info = RequestInfo(Api.ANTHROPIC_MESSAGES, "https://api.anthropic.com", "claude-x", "t", False)
    turns = [{"role": "user", "content": f"q{i}"} for i in range(COPY_PARTS + 1)]
    sent = doctor.rewrite(info, {"model": "claude-x", "messages": turns})
    assert isinstance(sent.plan, _Carried) and sent.plan.print is not None
    short = doctor.rewrite(info, {"model": "claude-x", "messages": turns[:COPY_PARTS]})
    assert isinstance(short.plan, _Carried) and short.plan.print is None
