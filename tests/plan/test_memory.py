"""The planner keeps no request bodies once a call is over, however large they are."""

from __future__ import annotations

import gc
import threading
import time
import tracemalloc
from typing import Any

import pytest

from promptcache._api import Api, RequestInfo
from promptcache._plan import DefaultPlanner

MB = 1 << 20


def _body(api: Api, k: int) -> dict[str, Any]:
    # ~1 MB of fresh text per request (a new string each time, as a parsed body would have).
    doc = (f"Document {k}. " + "The river runs past the old mill. " * 32_000)[:MB]
    if api is Api.ANTHROPIC_MESSAGES:
        return {
            "model": "claude-sonnet-5",
            "max_tokens": 10,
            "system": "You answer questions about documents.",
            "messages": [{"role": "user", "content": doc}],
        }
    if api is Api.OPENAI_RESPONSES:
        return {"model": "gpt-6.1-sol", "instructions": "Answer briefly.", "input": doc}
    return {
        "model": "gpt-6.1-sol",
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": doc},
        ],
    }


@pytest.mark.parametrize("mode", ["off", "safe", "auto"])
@pytest.mark.parametrize("api", list(Api))
def test_memory_does_not_grow_with_large_requests(api: Api, mode: Any) -> None:
    planner = DefaultPlanner(mode)
    base = (
        "https://api.anthropic.com"
        if api is Api.ANTHROPIC_MESSAGES
        else "https://api.openai.com/v1"
    )
    info = RequestInfo(api, base, None, "t1", False)
    usage = {"v": 1, "usage": {"input_tokens": 250_000}}

    def one(k: int) -> None:
        body = _body(api, k)
        sent = planner.rewrite(info, body)
        planner.observe(info, sent, usage)

    one(0)  # first-call allocations (family tables, compiled patterns) are not growth
    # tracemalloc counts every thread: let an earlier test's doctor finish its batch first.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
        t.name == "promptcache-doctor" for t in threading.enumerate()
    ):
        time.sleep(0.05)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for k in range(1, 51):
            one(k)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # 50 requests of 1 MB: keeping bodies would retain ~50 MB; a few hundred KB of family
    # bookkeeping is all that may stay.
    assert grown < 2 * MB, f"retained {grown / MB:.1f} MB over 50 requests of 1 MB"
