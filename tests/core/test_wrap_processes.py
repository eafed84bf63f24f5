"""Processes that open the same directory share entries (a real second interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import openai

from promptcache._wrap import PromptCache
from promptcache.testing import Emulator
from tests.core.test_wrap_kit import (
    RecordingAccountant,
    RecordingPlanner,
    create_kwargs,
    served,
)

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, sys
import openai
from promptcache import PromptCache
from tests.core.test_wrap_kit import RecordingAccountant, RecordingPlanner

base_url, directory, text = sys.argv[1:4]
pc = PromptCache(directory, planner=RecordingPlanner(), accountant=RecordingAccountant())
client = pc.wrap(openai.OpenAI(base_url=base_url, api_key="test-key", max_retries=0))
reply = client.chat.completions.create(
    model="gpt-4o", messages=[{"role": "user", "content": text}]
)
pc.close()
print(json.dumps(reply.model_dump()))
"""


def test_a_second_process_hits_what_the_first_stored(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    with Emulator() as emu:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        child = subprocess.run(
            [sys.executable, "-c", CHILD, emu.openai_base_url, str(directory), "across"],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        assert child.returncode == 0, child.stderr
        assert served(emu) == 1
        pc = PromptCache(directory, planner=RecordingPlanner(), accountant=RecordingAccountant())
        bare = openai.OpenAI(base_url=emu.openai_base_url, api_key="test-key", max_retries=0)
        client = pc.wrap(bare)
        reply = client.chat.completions.create(**create_kwargs("OpenAI", "across"))
        assert served(emu) == 1  # served from what the other process stored
        assert reply.model_dump() == json.loads(child.stdout)
        bare.close()
        pc.close()
