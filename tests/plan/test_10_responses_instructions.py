"""Issue 10 (a): a long static ``instructions`` string on the Responses API, gpt-5.6+.

Breakpoints live on input content parts, so ``instructions`` can never end a cached prefix.
In ``auto`` the planner sends the same text as a leading developer message (a part that holds
the breakpoint): where no stored history can carry the moved copy into a chained turn
(``store=False``, history sent inline), and since the default-move change also on stored
responses until the app is seen chaining (``OpenAIOptions(chained_responses=...)``); in
``safe`` it leaves ``instructions`` alone and writes nothing that no later call reads after the
family's first call. Figures are the emulator's ground truth.

Before this change (commit 84436d8), on the "doc in instructions" workload (a 20k-token
document as ``instructions``, 12 different questions): auto and safe read 0 tokens; bare wrote
240,756 tokens (every call, implicit mode), safe and auto 20,063 (the first call), none read.
After: auto with ``store=False`` reads 91.4% of the input (1.000 of the reachable), input cost
0.15 of uncached; a chained conversation reads 86.1% in every mode (before 78.0%).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

import promptcache
from promptcache._plan import OpenAIOptions
from promptcache.testing import Emulator, FakeClock
from tests.plan._workloads10 import run

DOC = "Answer from the handbook only.\n" + "The handbook says: keep every promise. " * 600
SHORT = "Be brief."


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def emu(clock: FakeClock) -> Iterator[Emulator]:
    with Emulator(clock=clock) as e:
        yield e


def wrapped(emu: Emulator, clock: FakeClock, tmp: Path, mode: str) -> tuple[Any, Any]:
    pc = promptcache.PromptCache(
        directory=tmp / mode,
        response_cache=False,
        restructure=mode,  # type: ignore[arg-type]
        clock=clock.now,
        openai=OpenAIOptions(endpoint="openai"),
    )
    raw = openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0)
    return pc, pc.wrap(raw)


def test_auto_reads_the_instructions_after_the_first_call(tmp_path: Path) -> None:
    f = run("doc in instructions, store=False", "auto", tmp_path)
    # Every call after the first reads the whole document; only the first call writes.
    assert f.reads[0] == 0 and min(f.reads[1:]) >= 20_000
    assert f.writes[1:] == [0] * 11
    assert f.of_optimum >= 0.999
    first = f.bodies[0]
    assert "instructions" not in first
    lead = first["input"][0]
    assert lead["role"] == "developer" and lead["content"][0]["text"].startswith("Answer from")
    assert "prompt_cache_breakpoint" in lead["content"][0]
    assert first["input"][1] == {"role": "user", "content": first["input"][1]["content"]}


def test_stored_responses_keep_their_instructions_when_the_app_says_it_chains(
    tmp_path: Path,
) -> None:
    # store left on, no chaining seen: moved by default (tests/plan/test_10_responses_default.py
    # covers the chained follow-up) ...
    stored = run("doc in instructions", "auto", tmp_path)
    assert all("instructions" not in b for b in stored.bodies)
    assert min(stored.reads[1:]) >= 20_000 and stored.of_optimum >= 0.999
    # ... unless the app declares it chains its stored responses: then they stay, as in safe.
    chains = OpenAIOptions(endpoint="openai", chained_responses="always")
    kept = run("doc in instructions", "auto", tmp_path, chains)
    assert all("instructions" in b for b in kept.bodies) and kept.read == 0
    assert kept.writes[1:] == [0] * 11


def test_a_chained_conversation_reads_every_earlier_turn(tmp_path: Path) -> None:
    # Before: every turn read only what the first call wrote (78.0% of the input).
    bare = run("chat, previous_response_id", "bare", tmp_path)
    for mode in ("safe", "auto"):
        f = run("chat, previous_response_id", mode, tmp_path)
        assert f.reads == bare.reads  # implicit caching's every-end write is the optimum here
        assert all(b > a for a, b in zip(f.reads[1:], f.reads[2:], strict=False))
        assert f.write == bare.write and f.input_tokens == bare.input_tokens
        if mode == "safe":
            assert all(body["instructions"].startswith("You are") for body in f.bodies)
        else:
            # auto moved the instructions of the first (stored) turn into a developer item;
            # the chained turns do not send them again: the history starts with them.
            assert f.bodies[0]["input"][0]["role"] == "developer"
            assert all("instructions" not in body for body in f.bodies)


def test_safe_keeps_instructions_and_pays_one_write_where_bare_pays_every_call(
    tmp_path: Path,
) -> None:
    safe = run("doc in instructions", "safe", tmp_path)
    bare = run("doc in instructions", "bare", tmp_path)
    assert all(b["instructions"].startswith("Answer from") for b in safe.bodies)
    assert safe.read == 0  # nothing can be read without moving the text: safe does not move
    # The first call of a family is written speculatively (a conversation would read it);
    # after that no call writes what nothing reads. Bare (implicit mode) writes every call.
    assert safe.writes[1:] == [0] * 11 and safe.writes[0] > 0
    assert all(w > 20_000 for w in bare.writes)
    assert safe.cost_ratio < 1.03 < 1.2 < bare.cost_ratio


def test_the_model_sees_the_same_prompt_and_answers_the_same(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    raw = openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0)
    pc, client = wrapped(emu, clock, tmp_path, "auto")
    try:
        kw: dict[str, Any] = {"instructions": DOC, "input": "Why?", "store": False}
        bare = raw.responses.create(model="gpt-6.1-sol", **kw)
        clock.advance(5)
        moved = client.responses.create(model="gpt-6.1-sol", **kw)
    finally:
        pc.close()
        client.close()
        raw.close()
    sent = emu.calls[-1].request_body
    assert sent is not None and "instructions" not in sent
    # The emulator renders `instructions` as a developer message: the same tokens, the same
    # answer. What differs is the echo: the response reports no instructions.
    assert emu.calls[-1].input_tokens == emu.calls[0].input_tokens
    assert moved.output_text == bare.output_text
    assert bare.instructions == DOC and moved.instructions is None


def test_instructions_move_only_where_no_stored_history_can_carry_them(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    history = [
        {"role": "user", "content": "Start."},
        {"role": "assistant", "content": "Started."},
        {"role": "user", "content": "Go on."},
    ]
    pc, client = wrapped(emu, clock, tmp_path, "auto")
    try:

        def send(**kw: Any) -> str:
            clock.advance(10)
            return str(client.responses.create(model="gpt-6.1-sol", instructions=DOC, **kw).id)

        send(input=history)  # 0: history inline, the app keeps its own state: moved
        send(input="Start.")  # 1: stored, no chaining seen yet: moved (and remembered)
        send(input="Other.", store=False)  # 2: not stored: moved
        # 3: a stored response sent by an app that says it chains: instructions stay.
        chained = OpenAIOptions(endpoint="openai", chained_responses="always")
        with (
            promptcache.PromptCache(
                directory=tmp_path / "always",
                response_cache=False,
                restructure="auto",
                clock=clock.now,
                openai=chained,
            ) as pc2,
            openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0) as raw,
        ):
            c2 = pc2.wrap(raw)
            kept = str(c2.responses.create(model="gpt-6.1-sol", instructions=DOC, input="A.").id)
        send(input="Next.", previous_response_id=kept)  # 4: chained: stays
        send(input=history)  # 5: this app chains: inline history is no proof any more
        send(input="Start.")  # 6: chaining seen: a stored response keeps its instructions
        send(input="x", store=False)  # 7: cannot be chained: moved
    finally:
        pc.close()
        client.close()
    bodies = [c.request_body or {} for c in emu.calls]
    assert [c.status for c in emu.calls] == [200] * 8
    assert ["instructions" in b for b in bodies] == [
        False,
        False,
        False,
        True,
        True,
        True,
        True,
        False,
    ]
    # Where moved, the same text leads the input, once, and nothing else changed in it.
    assert bodies[0]["input"][0]["content"][0]["text"] == DOC
    texts = [
        c if isinstance(c, str) else c[0]["text"]
        for c in (i["content"] for i in bodies[0]["input"][1:])
    ]
    assert texts == ["Start.", "Started.", "Go on."]
    assert str(bodies[0]).count("keep every promise") == DOC.count("keep every promise")


@pytest.mark.parametrize(
    ("model", "instructions", "mode"),
    [
        ("gpt-5.5", DOC, "auto"),  # implicit caching reads instructions as they are
        ("gpt-6.1-sol", SHORT, "auto"),  # below the minimum: nothing to gain
        ("gpt-6.1-sol", DOC, "safe"),  # safe never changes what the model reads
    ],
)
def test_instructions_stay_where_moving_gains_nothing_or_is_not_allowed(
    emu: Emulator, clock: FakeClock, tmp_path: Path, model: str, instructions: str, mode: str
) -> None:
    pc, client = wrapped(emu, clock, tmp_path, mode)
    try:
        client.responses.create(model=model, instructions=instructions, input="Hello.")
    finally:
        pc.close()
        client.close()
    sent = emu.calls[-1].request_body
    assert sent is not None and sent["instructions"] == instructions
    items = sent["input"]
    text = items if isinstance(items, str) else items[0]["content"]
    assert (text if isinstance(text, str) else text[0]["text"]) == "Hello."


@pytest.mark.parametrize(
    "extra",
    [
        {"prompt": {"id": "pmpt_1"}},  # a stored prompt template brings its own messages
        {"truncation": "auto"},  # input items may be dropped from the start, instructions not
        {"conversation": "conv_1"},  # the conversation object would keep the moved copy
    ],
)
def test_instructions_stay_where_an_input_item_would_mean_something_else(
    extra: dict[str, Any],
) -> None:
    from promptcache._api import Api, RequestInfo
    from promptcache._plan import DefaultPlanner

    info = RequestInfo(Api.OPENAI_RESPONSES, "https://api.openai.com/v1", "gpt-6.1-sol", "t", False)
    body = {"model": "gpt-6.1-sol", "instructions": DOC, "input": "q", **extra}
    out = DefaultPlanner("auto").rewrite(info, body).body
    assert out["instructions"] == DOC
    assert all(i.get("role") != "developer" for i in out["input"] if isinstance(i, dict))


def test_safe_stops_writing_when_the_instructions_change_every_call(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    # The app puts the time at the top of its instructions and safe mode does not move it:
    # no prefix can ever be read, so after the first (speculative) call nothing is written.
    # (Before: the second call wrote again, 5,875 + 5,888 tokens, none read.)
    pc, client = wrapped(emu, clock, tmp_path, "safe")
    items: list[dict[str, Any]] = []
    try:
        for turn in range(6):
            items.append({"role": "user", "content": f"Question {turn}?"})
            client.responses.create(
                model="gpt-6.1-sol",
                instructions=f"Now: 2026-11-28T10:{turn:02d}:00Z\n" + DOC,
                input=list(items),
            )
            items.append({"role": "assistant", "content": f"Answer {turn}."})
            clock.advance(60)
    finally:
        pc.close()
        client.close()
    assert [c.cache_read_tokens for c in emu.calls] == [0] * 6
    writes = [c.cache_write_tokens for c in emu.calls]
    assert writes[0] > 0 and writes[1:] == [0] * 5
