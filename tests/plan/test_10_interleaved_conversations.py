"""Many conversations of one family, interleaved: each turn still reads its previous turn.

The planner recognises a turn that extends an earlier request of its family. It used to look
only at the family's last 8 requests, so with more conversations than that in flight (a busy
app, or one family spread over routing shards) no turn ever looked like a continuation, the
family was taken for one that diverges, and the ends of turns stopped being written: later
turns read only the system prompt (88% read share instead of 97% on the overflow benchmark).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai

import promptcache
from promptcache.testing import Emulator

SYSTEM = "You are a meticulous analyst of quarterly reports. Answer precisely. " * 120
TURN = "Here is the next section of the report to consider in detail. " * 40


def test_interleaved_conversations_keep_writing_their_ends(
    emulator: Emulator, tmp_path: Path
) -> None:
    pc = promptcache.PromptCache(directory=tmp_path, response_cache=False, clock=emulator.clock.now)
    raw = openai.OpenAI(base_url=emulator.openai_base_url, api_key="k", max_retries=0)
    client = pc.wrap(raw)
    histories: list[list[dict[str, Any]]] = [[] for _ in range(12)]  # more than 8 in flight
    reads: dict[tuple[int, int], int] = {}
    try:
        for turn in range(4):
            for conv, history in enumerate(histories):
                emulator.clock.advance(5)
                history.append({"role": "user", "content": f"[{conv}/{turn}] {TURN}"})
                reply = client.chat.completions.create(
                    model="gpt-6.1-sol",
                    messages=[{"role": "system", "content": SYSTEM}, *history],  # type: ignore[list-item]
                )
                history.append({"role": "assistant", "content": reply.choices[0].message.content})
                reads[conv, turn] = emulator.last_call.cache_read_tokens
    finally:
        raw.close()
        pc.close()
    system_only = reads[1, 0]  # a first turn reads the shared system prompt only
    assert system_only > 0
    for conv in range(len(histories)):
        for turn in range(2, 4):
            # Turn t reads everything up to turn t-1 — far more than the system prompt.
            assert reads[conv, turn] > system_only + 500 * (turn - 1), (conv, turn, reads)
