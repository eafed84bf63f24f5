"""Issue 10 (a): in ``auto``, long Responses ``instructions`` move on stored responses too.

A stateless request with a large static ``instructions`` string (``store`` left at its default)
sends the same text as a leading developer item that can hold a gpt-5.6+ breakpoint. A stored
response keeps its input items for a chained turn (``previous_response_id``) but not its
instructions, so the planner remembers which responses carry moved text: a chained turn whose
instructions are the same text does not send them again (the model reads them once, as bare);
different or absent instructions go as written (the documented residual difference). An app
seen chaining in a family, or that says so (``chained_responses="always"``), keeps today's
conservative behaviour. Figures are the emulator's ground truth (``emu.calls``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

import promptcache
from promptcache import ConfigError
from promptcache._plan import OpenAIOptions
from promptcache._plan import _state as state_module
from promptcache._plan._state import PlannerState
from promptcache.testing import Emulator, FakeClock

MODEL = "gpt-6.1-sol"
DOC = "Answer from the handbook only.\n" + "The handbook says: keep every promise. " * 600


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def emu(clock: FakeClock) -> Iterator[Emulator]:
    with Emulator(clock=clock) as e:
        yield e


class App:
    """A Responses client, bare or wrapped in ``auto``/``safe``, against the emulator."""

    def __init__(
        self,
        emu: Emulator,
        clock: FakeClock,
        tmp: Path,
        mode: str,
        chained: str = "auto",
    ) -> None:
        self.clock = clock
        self.raw = openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0)
        self.pc: promptcache.PromptCache | None = None
        self.client: Any = self.raw
        if mode != "bare":
            self.pc = promptcache.PromptCache(
                directory=tmp / f"{mode}-{chained}",
                response_cache=False,
                restructure=mode,  # type: ignore[arg-type]
                clock=clock.now,
                openai=OpenAIOptions(endpoint="openai", chained_responses=chained),  # type: ignore[arg-type]
            )
            self.client = self.pc.wrap(self.raw)

    def send(self, *, stream: bool = False, **kw: Any) -> tuple[str, str]:
        """Send one request; return (response id, output text)."""
        self.clock.advance(30)
        if not stream:
            r = self.client.responses.create(model=MODEL, **kw)
            return str(r.id), str(r.output_text)
        with self.client.responses.create(model=MODEL, stream=True, **kw) as events:
            final = [e for e in events if e.type == "response.completed"]
        assert len(final) == 1
        return str(final[0].response.id), str(final[0].response.output_text)

    def close(self) -> None:
        if self.pc is not None:
            self.pc.close()
        self.raw.close()


def chat(app: App, turns: list[dict[str, Any]], *, stream: bool = False) -> list[str]:
    """A conversation chained with previous_response_id; each turn may set instructions."""
    prev: str | None = None
    texts: list[str] = []
    for t in turns:
        kw = dict(t) | ({"previous_response_id": prev} if prev else {})
        prev, text = app.send(stream=stream, **kw)
        texts.append(text)
    return texts


def test_stateless_stored_requests_move_and_read_the_instructions(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    # The rag/many-shot shape: one static document, a new question per call, store default.
    app = App(emu, clock, tmp_path, "auto")
    try:
        for i in range(6):
            app.send(instructions=DOC, input=f"Question {i}?")
    finally:
        app.close()
    bodies = [c.request_body or {} for c in emu.calls]
    assert all("instructions" not in b and "store" not in b for b in bodies)
    assert all(b["input"][0]["content"][0]["text"] == DOC for b in bodies)
    reads = [c.cache_read_tokens for c in emu.calls]
    assert reads[0] == 0 and min(reads[1:]) >= 5_500  # the whole document, every later call
    assert [c.cache_write_tokens for c in emu.calls][1:] == [0] * 5


@pytest.mark.parametrize("stream", [False, True])
def test_chained_turns_after_a_moved_first_turn_see_the_instructions_once(
    emu: Emulator, clock: FakeClock, tmp_path: Path, stream: bool
) -> None:
    turns = [{"instructions": DOC, "input": f"Turn {k}: go on."} for k in range(5)]
    bare = App(emu, clock, tmp_path, "bare")
    try:
        bare_texts = chat(bare, turns, stream=stream)
    finally:
        bare.close()
    n = len(emu.calls)
    auto = App(emu, clock, tmp_path, "auto")
    try:
        auto_texts = chat(auto, turns, stream=stream)
    finally:
        auto.close()
    base, ours = emu.calls[:n], emu.calls[n:]
    assert [c.status for c in ours] == [200] * 5
    # The model sees the same prompt on every turn: same billed input (no doubled
    # instructions), same answers (the emulator's reply is a function of the prompt).
    assert [c.input_tokens for c in ours] == [c.input_tokens for c in base]
    assert auto_texts == bare_texts
    bodies = [c.request_body or {} for c in ours]
    assert bodies[0]["input"][0]["role"] == "developer"
    assert all("instructions" not in b for b in bodies)
    # And the cache reads the document and the history the way bare does, or better.
    assert [c.cache_read_tokens for c in ours][1:] >= [c.cache_read_tokens for c in base][1:]
    assert min(c.cache_read_tokens for c in ours[1:]) >= 5_500


def test_a_chained_turn_with_other_or_no_instructions_is_sent_as_written(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    # The residual difference, documented: the first turn's text stays in the stored history
    # as a developer item, so the model sees it as well as the new instructions (or alone).
    other = "Answer in French. " * 50
    turns: list[dict[str, Any]] = [
        {"instructions": DOC, "input": "Start."},
        {"instructions": other, "input": "Next."},
        {"input": "And then?"},
    ]
    bare = App(emu, clock, tmp_path, "bare")
    try:
        chat(bare, turns)
    finally:
        bare.close()
    auto = App(emu, clock, tmp_path, "auto")
    try:
        chat(auto, turns)
    finally:
        auto.close()
    base, ours = emu.calls[:3], emu.calls[3:]
    assert [c.status for c in ours] == [200] * 3  # the conversation continues
    bodies = [c.request_body or {} for c in ours]
    assert bodies[1]["instructions"] == other and "instructions" not in bodies[2]
    extra = [a.input_tokens - b.input_tokens for a, b in zip(ours, base, strict=True)]
    assert extra[0] == 0
    # Bare's stored history has no DOC (instructions are not carried); ours has it once.
    # (Turn 1's answer differs from bare's, as its prompt does: a few tokens either way.)
    assert all(5_500 < e < base[0].input_tokens for e in extra[1:])
    assert abs(extra[1] - extra[2]) < 50


def test_an_unknown_previous_response_gets_its_instructions_as_written(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    # A response this PromptCache did not send (another process, before a restart): we cannot
    # know what its history holds, so nothing is dropped.
    bare = App(emu, clock, tmp_path, "bare")
    try:
        first, _ = bare.send(instructions=DOC, input="Start.")
    finally:
        bare.close()
    auto = App(emu, clock, tmp_path, "auto")
    try:
        auto.send(instructions=DOC, input="Next.", previous_response_id=first)
    finally:
        auto.close()
    assert (emu.calls[-1].request_body or {})["instructions"] == DOC


def test_after_chaining_is_seen_stored_first_turns_keep_their_instructions(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    app = App(emu, clock, tmp_path, "auto")
    try:
        first, _ = app.send(instructions=DOC, input="Start.")  # 0: moved
        app.send(instructions=DOC, input="Next.", previous_response_id=first)  # 1: dropped
        app.send(instructions=DOC, input="New conversation.")  # 2: chaining seen: stays
        app.send(instructions=DOC, input="Not stored.", store=False)  # 3: moved
    finally:
        app.close()
    sent = [(c.request_body or {}).get("instructions") for c in emu.calls]
    assert sent == [None, None, DOC, None]


@pytest.mark.parametrize(
    ("chained", "expected"),
    [
        ("never", [None, None, None]),  # the app says it never chains: always moved
        ("always", [DOC, DOC, DOC]),  # the app chains stored responses: never moved on them
    ],
)
def test_the_declared_chaining_decides_for_stored_responses(
    emu: Emulator, clock: FakeClock, tmp_path: Path, chained: str, expected: list[str | None]
) -> None:
    app = App(emu, clock, tmp_path, "auto", chained)
    try:
        first, _ = app.send(instructions=DOC, input="Start.")
        app.send(instructions=DOC, input="Next.", previous_response_id=first)
        app.send(instructions=DOC, input="New conversation.")
        app.send(instructions=DOC, input="Not stored.", store=False)
    finally:
        app.close()
    sent = [(c.request_body or {}).get("instructions") for c in emu.calls]
    # The chained turn (1) follows what was done on turn 0; store=False (3) always moves.
    assert [sent[0], sent[1], sent[2]] == expected and sent[3] is None
    assert all(c.status == 200 for c in emu.calls)


def test_safe_never_moves_and_writes_only_on_the_first_call(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    app = App(emu, clock, tmp_path, "safe")
    try:
        for i in range(5):
            app.send(instructions=DOC, input=f"Question {i}?")
    finally:
        app.close()
    assert all((c.request_body or {}).get("instructions") == DOC for c in emu.calls)
    writes = [c.cache_write_tokens for c in emu.calls]
    assert writes[0] > 0 and writes[1:] == [0] * 4


def test_chained_requests_are_never_served_from_the_local_cache(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    with (
        promptcache.PromptCache(
            directory=tmp_path / "pc",
            restructure="auto",
            clock=clock.now,
            openai=OpenAIOptions(endpoint="openai"),
        ) as pc,
        openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0) as raw,
    ):
        client = pc.wrap(raw)
        first = client.responses.create(model=MODEL, instructions=DOC, input="Start.").id
        for _ in range(2):
            client.responses.create(
                model=MODEL, instructions=DOC, input="Next.", previous_response_id=first
            )
    assert len(emu.calls) == 3


def test_chained_responses_takes_only_its_documented_values() -> None:
    with pytest.raises(ConfigError, match="chained_responses"):
        OpenAIOptions(chained_responses="sometimes")  # type: ignore[arg-type]


def test_the_memory_of_moved_responses_is_bounded_and_thread_safe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(state_module, "MAX_MOVED_RESPONSES", 100)
    state = PlannerState()

    def fill(t: int) -> None:
        for i in range(500):
            state.remember_moved(f"resp_{t}_{i}", f"d{t}")
            state.moved_in(f"resp_{t}_{i}")

    threads = [threading.Thread(target=fill, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    kept = [
        f"resp_{t}_{i}" for t in range(4) for i in range(500) if state.moved_in(f"resp_{t}_{i}")
    ]
    assert len(kept) == 100  # the newest ones
    assert all(state.moved_in(k) == f"d{k.split('_')[1]}" for k in kept)
