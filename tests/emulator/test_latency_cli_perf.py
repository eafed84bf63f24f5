"""Latency model, the `promptcache emulate` command, and the emulator's own handling time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import openai

from promptcache.testing import Emulator, FakeClock, LatencyModel

ROOT = Path(__file__).resolve().parents[2]
BIG = "Reference material that stays the same. " * 1000  # 40,000 bytes -> 10,000 tokens


def _ttft(client: openai.OpenAI, question: str) -> float:
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "system", "content": BIG}, {"role": "user", "content": question}],
        stream=True,
    )
    next(iter(stream))
    elapsed = time.perf_counter() - started
    for _ in stream:
        pass
    return elapsed


def test_ttft_grows_with_uncached_tokens() -> None:
    model = LatencyModel(
        base_s=0.0, per_uncached_token_s=2e-5, per_cached_token_s=1e-7, per_output_token_s=0.0
    )
    assert model.ttft(10_000, 0) == 0.2
    with (
        Emulator(clock=FakeClock(), latency=model) as emu,
        openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0) as client,
    ):
        cold = _ttft(client, "first")
        warm = _ttft(client, "second")
        calls = emu.calls
    assert calls[0].ttft_s > 0.2 and calls[1].ttft_s < 0.01
    assert cold >= 0.2
    assert warm < cold / 3


def test_no_latency_by_default(emulator: Emulator) -> None:
    assert emulator.latency is None


def test_cli_serves_until_interrupted(tmp_path: Any) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "promptcache", "emulate", "--port", "0", "--latency"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        base = line.strip().rsplit(" ", 1)[-1]
        with httpx2.Client(base_url=base) as http:
            resp = http.post(
                "/v1/messages",
                json={
                    "model": "claude-sonnet-5",
                    "max_tokens": 5,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            )
            assert resp.status_code == 200 and resp.json()["usage"]["output_tokens"] == 5
            assert http.get("/_emulator/calls").json()[0]["api"] == "anthropic.messages"
            now = http.get("/_emulator/health").json()["now"]
            advanced = http.post("/_emulator/clock/advance", json={"seconds": 3600}).json()
            assert advanced["now"] >= now + 3600
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_cli_reports_a_busy_port(emulator: Emulator) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "promptcache", "emulate", "--port", str(emulator.port)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert done.returncode == 2
    assert "cannot bind" in done.stderr and "Traceback" not in done.stderr


def test_handling_time_stays_small_at_200k_tokens() -> None:
    """The emulator's own work (parse, count, cache) for a ~800 KB body is a few ms."""
    with Emulator(clock=FakeClock(), record_bodies=False) as emu, httpx2.Client() as http:
        for tokens in (2_000, 20_000, 200_000):
            body = {
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": "lorem ipsum " * (tokens // 3)}],
            }
            for _ in range(3):
                assert http.post(emu.openai_base_url + "/chat/completions", json=body).is_success
        worst_200k = max(c.handling_ms for c in emu.calls[-3:])
        assert emu.calls[-1].input_tokens > 199_000
    # Generous bound for slow CI machines; typical is well under 10 ms (see docs/emulator.md).
    assert worst_200k < 150
