"""Issue 12 item 2: distributed single-flight, across processes on one Redis or one directory.

Workers are real processes (the real ``openai`` SDK, the emulator over HTTP with a latency
model so an upstream call takes about 200 ms); the emulator's ``calls`` is the ground truth.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import openai
import pytest
import redis

from promptcache import PromptCache
from promptcache._accounting._fleet import open_fleet
from promptcache._accounting._ledger import Ledger
from promptcache.testing import Emulator, LatencyModel
from tests.fleet.conftest import REDIS, needs_redis

ROOT = Path(__file__).resolve().parents[2]

# One worker process: THREADS threads each ask every question (some streamed) at the same
# moment (when the file ``start`` appears: every process is ready), and report what they got.
WORKER = """
import json, os, sys, threading, time
import openai
import promptcache
from promptcache import PromptCache

base_url, directory, store, threads, questions, start = sys.argv[1:7]
questions = json.loads(questions)
results, errors = [], []
with PromptCache(directory, store=None if store == "disk" else store) as pc:
    client = pc.wrap(openai.OpenAI(base_url=base_url, api_key="sk-fleet", max_retries=0))

    def ask(question, stream):
        messages = [{"role": "user", "content": question}]
        if stream:
            chunks = client.chat.completions.create(
                model="gpt-4o", messages=messages, stream=True
            )
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        reply = client.chat.completions.create(model="gpt-4o", messages=messages)
        return reply.choices[0].message.content

    def run():
        while not os.path.exists(start):
            time.sleep(0.002)
        for i, question in enumerate(questions):
            try:
                with promptcache.tag(f"q{i}"):
                    results.append([question, ask(question, stream=i % 2 == 1)])
            except Exception as exc:
                errors.append(repr(exc))

    print("go", flush=True)
    pool = [threading.Thread(target=run) for _ in range(int(threads))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    done = time.time()
print(json.dumps({"results": results, "errors": errors, "done": done}))
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTCACHE_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _spawn(
    emu: Emulator,
    directory: Path,
    store: str,
    threads: int,
    questions: list[str],
    start: Path,
    **env: str,
) -> subprocess.Popen[str]:
    args = [emu.openai_base_url, str(directory), store, str(threads), json.dumps(questions)]
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, *args, str(start)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(**env),
        cwd=ROOT,
    )


def _result(proc: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    lines = [line for line in out.splitlines() if line != "go"]
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@pytest.fixture()
def slow_emulator() -> Any:
    """An emulator whose answers take about 200 ms (a real provider's first token)."""
    with Emulator(latency=LatencyModel(base_s=0.2, per_output_token_s=0.001)) as emu:
        yield emu


def _flush(url: str) -> None:
    server = redis.Redis.from_url(url)
    server.flushdb()
    server.close()


def _run_fleet(
    emu: Emulator, tmp_path: Path, store: str, processes: int, threads: int, *, shared_dir: bool
) -> tuple[float, int]:
    questions = ["fleet question one", "fleet question two", "fleet question three"]
    start = tmp_path / "start"
    procs = [
        _spawn(
            emu,
            tmp_path / ("shared" if shared_dir else f"machine-{i}"),
            store,
            threads,
            questions,
            start,
        )
        for i in range(processes)
    ]
    for proc in procs:  # every process has imported the SDK and is ready
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "go"
    began = time.time()
    start.touch()
    results = [_result(p) for p in procs]
    elapsed = max(r["done"] for r in results) - began  # until the last call's end
    assert [r["errors"] for r in results] == [[]] * processes
    answers: dict[str, set[str]] = {}
    for r in results:
        assert len(r["results"]) == threads * len(questions)
        for question, content in r["results"]:
            answers.setdefault(question, set()).add(content)
    # Every caller got the same answer per question, and the provider answered each once.
    assert all(len(v) == 1 for v in answers.values()) and len(answers) == 3
    served = [c for c in emu.calls if c.api == "openai.chat"]
    assert len(served) == len(questions)
    if store != "disk":
        _check_fleet_ledger(tmp_path, store, processes, processes * threads * len(questions))
    return elapsed, processes * threads * len(questions)


def _check_fleet_ledger(tmp_path: Path, store: str, processes: int, calls: int) -> None:
    """No record lost: the fleet ledger in Redis sums exactly the machines' own ledgers."""
    local = [Ledger(tmp_path / f"machine-{i}", rollup_after_days=None) for i in range(processes)]
    try:
        totals = [ledger.summary() for ledger in local]
    finally:
        for ledger in local:
            ledger.close()
    view = open_fleet(tmp_path, store)
    try:
        fleet = view.summary()
        by_tag = view.group_by("tag")
    finally:
        view.store.close()
    assert fleet.requests == sum(t.requests for t in totals) == calls
    assert fleet.local_hits == sum(t.local_hits for t in totals) == calls - 3
    assert fleet.input_tokens == sum(t.input_tokens for t in totals) > 0
    assert fleet.output_tokens == sum(t.output_tokens for t in totals)
    assert fleet.cost_known == sum(t.cost_known for t in totals) > 0
    # The streamed question's usage is unknown (no include_usage): counted, never as $0.
    assert fleet.unknown_cost_requests == sum(t.unknown_cost_requests for t in totals) == 1
    assert sorted(by_tag) == ["q0", "q1", "q2"]
    assert sum(g.requests for g in by_tag.values()) == calls


@needs_redis
@pytest.mark.process
def test_processes_on_one_redis_make_one_upstream_call_per_request(
    redis_url: str, slow_emulator: Emulator, tmp_path: Path
) -> None:
    _flush(redis_url)
    _run_fleet(slow_emulator, tmp_path, redis_url, 4, 4, shared_dir=False)


@pytest.mark.process
def test_processes_sharing_a_directory_make_one_upstream_call_per_request(
    slow_emulator: Emulator, tmp_path: Path
) -> None:
    _run_fleet(slow_emulator, tmp_path, "disk", 4, 4, shared_dir=True)


@needs_redis
@pytest.mark.load
@pytest.mark.process
def test_8_processes_by_4_threads_on_one_redis(
    redis_url: str, slow_emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _flush(redis_url)
    elapsed, calls = _run_fleet(slow_emulator, tmp_path, redis_url, 8, 4, shared_dir=False)
    with capsys.disabled():
        print(f"\n8 processes x 4 threads: {calls} calls in {elapsed:.2f} s, 3 upstream")


def _killed_leader(emu: Emulator, tmp_path: Path, store: str, shared_dir: bool) -> float:
    """Start a leader, then a follower; SIGKILL the leader; return the follower's delay."""
    question = ["a question whose leader dies"]
    env = {"PROMPTCACHE_LOCK_LEASE": "0.5"}
    leader = _spawn(emu, tmp_path / "a", store, 1, question, ROOT, **env)
    assert leader.stdout is not None
    assert leader.stdout.readline().strip() == "go"
    time.sleep(0.3)  # the leader holds the lock and waits for the provider
    follower = _spawn(emu, tmp_path / ("a" if shared_dir else "b"), store, 1, question, ROOT, **env)
    assert follower.stdout is not None
    assert follower.stdout.readline().strip() == "go"
    time.sleep(0.3)  # the follower is waiting for the leader
    assert leader.poll() is None, "the leader finished before it could be killed"
    os.kill(leader.pid, signal.SIGKILL)
    killed = time.monotonic()
    leader.communicate()
    result = _result(follower)
    delay = time.monotonic() - killed
    assert result["errors"] == []
    assert result["results"][0][1]
    return delay


@pytest.fixture()
def very_slow_emulator() -> Any:
    """Answers take 2 s: long enough to kill a leader mid-call."""
    with Emulator(latency=LatencyModel(base_s=2.0, per_output_token_s=0.0)) as emu:
        yield emu


@needs_redis
@pytest.mark.process
def test_a_killed_leader_frees_its_redis_followers_within_the_lease(
    redis_url: str, very_slow_emulator: Emulator, tmp_path: Path
) -> None:
    _flush(redis_url)
    delay = _killed_leader(very_slow_emulator, tmp_path, redis_url, shared_dir=False)
    print(f"\nRedis: follower answered {delay:.2f} s after its leader's SIGKILL")
    # The lease (0.5 s) runs out, the follower leads and waits for its own 2 s call; without
    # the lease it would wait the whole bounded wait (60 s).
    assert delay < 0.5 + 2.0 + 2.0
    # Two requests reached the provider: the dead leader's and the follower's.
    assert len([c for c in very_slow_emulator.calls if c.api == "openai.chat"]) <= 2


@pytest.mark.process
def test_a_killed_leader_frees_its_disk_followers_at_once(
    very_slow_emulator: Emulator, tmp_path: Path
) -> None:
    delay = _killed_leader(very_slow_emulator, tmp_path, "disk", shared_dir=True)
    print(f"\ndisk: follower answered {delay:.2f} s after its leader's SIGKILL")
    assert delay < 2.0 + 2.0  # the kernel dropped the flock: no lease to wait out


# --- in one process: two PromptCache objects are two "machines" (each its own single-flight) ---


def _store_for(backend: str, request: pytest.FixtureRequest) -> str:
    """The store spec for a parametrized backend: the disk store, or a flushed real Redis."""
    if backend != "redis":
        return "disk"
    if REDIS is None:
        pytest.skip("redis-server is not installed")
    url: str = request.getfixturevalue("redis_url")
    _flush(url)
    return url


def _two_caches(tmp_path: Path, store: str) -> tuple[PromptCache, PromptCache]:
    if store == "disk":  # one directory shared, as processes on one machine share it
        return PromptCache(tmp_path / "shared"), PromptCache(tmp_path / "shared")
    return PromptCache(tmp_path / "a", store=store), PromptCache(tmp_path / "b", store=store)


@pytest.mark.parametrize("backend", ["redis", "disk"])
async def test_async_callers_of_two_caches_share_one_upstream_call(
    backend: str, request: pytest.FixtureRequest, slow_emulator: Emulator, tmp_path: Path
) -> None:
    store = _store_for(backend, request)
    a, b = _two_caches(tmp_path, store)
    bare = [openai.AsyncOpenAI(base_url=slow_emulator.openai_base_url, api_key="sk-1")] * 2
    with a, b:
        clients = [pc.wrap(c) for pc, c in zip((a, b), bare, strict=True)]
        messages: Any = [{"role": "user", "content": "asked by two machines at once"}]
        replies = await asyncio.gather(
            *(c.chat.completions.create(model="gpt-4o", messages=messages) for c in clients)
        )
    await bare[0].close()
    assert replies[0].id == replies[1].id
    assert len(slow_emulator.calls) == 1


@pytest.mark.parametrize("backend", ["redis", "disk"])
def test_a_failed_leader_hands_over_at_once(
    backend: str, request: pytest.FixtureRequest, slow_emulator: Emulator, tmp_path: Path
) -> None:
    store = _store_for(backend, request)
    slow_emulator.inject("server_error", times=1)
    a, b = _two_caches(tmp_path, store)
    outcome: dict[str, Any] = {}

    def ask(name: str, pc: PromptCache) -> None:
        bare = openai.OpenAI(base_url=slow_emulator.openai_base_url, api_key="sk-1", max_retries=0)
        client = pc.wrap(bare)
        start = time.monotonic()
        try:
            reply = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "the leader fails"}]
            )
            outcome[name] = reply.choices[0].message.content
        except openai.InternalServerError as exc:
            outcome[name] = exc
        outcome[name + " s"] = time.monotonic() - start
        bare.close()

    with a, b:
        leader = threading.Thread(target=ask, args=("leader", a))
        leader.start()
        time.sleep(0.05)  # the leader holds the lock, its request on the way
        ask("follower", b)
        leader.join()
    assert isinstance(outcome["leader"], openai.InternalServerError)
    assert isinstance(outcome["follower"], str)
    # Released as failed: the follower went upstream at once, not after the 60 s wait.
    assert outcome["follower s"] < 3.0
    assert len(slow_emulator.calls) == 2


@pytest.mark.parametrize("backend", ["redis", "disk"])
def test_a_stalled_stream_leader_gives_its_lock_up(
    backend: str, request: pytest.FixtureRequest, slow_emulator: Emulator, tmp_path: Path
) -> None:
    store = _store_for(backend, request)
    a, b = _two_caches(tmp_path, store)
    bare = openai.OpenAI(base_url=slow_emulator.openai_base_url, api_key="sk-1", max_retries=0)
    messages: Any = [{"role": "user", "content": "a stream nobody reads"}]
    with a, b:
        stream = a.wrap(bare).chat.completions.create(
            model="gpt-4o", messages=messages, stream=True
        )
        next(iter(stream))  # the leader's reader pulls one chunk, then stops reading
        start = time.monotonic()
        reply = b.wrap(bare).chat.completions.create(model="gpt-4o", messages=messages, stream=True)
        chunks = list(reply)
        waited = time.monotonic() - start
        stream.close()
    bare.close()
    assert chunks
    # The lock went after about a second without progress, not after the 60 s wait.
    assert waited < 4.0
    assert len(slow_emulator.calls) == 2
