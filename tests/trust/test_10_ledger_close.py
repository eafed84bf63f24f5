"""Issue 9 item 10, the ledger's part: close() releases every descriptor and thread it made."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from promptcache._accounting._ledger import Ledger
from promptcache.testing import Emulator

ROOT = Path(__file__).resolve().parents[2]

# In a fresh process, so that no other test's ledger keeps the flusher thread alive.
_CHILD = textwrap.dedent(
    """
    import os, sys, threading, time
    from concurrent.futures import ThreadPoolExecutor
    import openai, promptcache
    base, directory = sys.argv[1], sys.argv[2]
    pc = promptcache.PromptCache(directory=directory, restructure="off", response_cache=False)
    client = pc.wrap(openai.OpenAI(base_url=base, api_key="sk", max_retries=0))

    def call(i):
        client.chat.completions.create(
            model="gpt-5.6-sol", messages=[{"role": "user", "content": f"q{i}"}]
        )
        return pc.ledger.summary().requests  # queries from worker threads too

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(call, range(20)))
    pc.close()
    assert pc.ledger.summary().requests == 20  # a query after close opens and closes again

    def ledger_fds():
        out = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if "ledger" in target:
                out.append(target)
        return out

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
        t.name == "promptcache-ledger" for t in threading.enumerate()
    ):
        time.sleep(0.05)
    threads = [t.name for t in threading.enumerate() if t.name == "promptcache-ledger"]
    print(ledger_fds(), threads)
    """
)


@pytest.mark.process
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_close_releases_ledger_descriptors_and_thread(emulator: Emulator, tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, emulator.openai_base_url, str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] []", out.stdout
    # Everything was folded in and the journal deleted: nothing is left to replay.
    assert list((tmp_path / "ledger-journal").iterdir()) == []
    ledger = Ledger(tmp_path)
    assert ledger.summary().requests == 20
    ledger.close()
