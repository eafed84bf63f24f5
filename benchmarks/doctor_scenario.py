"""The cache doctor on the provider-cache workloads, as the apps write them (restructure="off").

Runs ``rag (time at top)``, ``agent, tools unordered`` and ``many-shot, 12-min gaps`` through
the real SDKs against the emulator (FakeClock) with ``PromptCache(restructure="off")``, then
prints ``promptcache doctor`` for the directory — the output shown in the docs.

Run: ``python benchmarks/doctor_scenario.py [DIR]`` (default: a fresh temporary directory).
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import anthropic  # noqa: E402
import openai  # noqa: E402
from workloads import WORKLOADS, render_anthropic, render_openai  # noqa: E402

import promptcache  # noqa: E402
from promptcache.cli import main as cli  # noqa: E402
from promptcache.testing import Emulator, FakeClock  # noqa: E402


def main() -> None:
    logging.getLogger("promptcache.doctor").setLevel(logging.ERROR)  # the table says it all
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    with Emulator(clock=FakeClock()) as emu:
        pc = promptcache.PromptCache(
            directory, response_cache=False, restructure="off", clock=emu.clock.now
        )
        with (
            anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="x") as a_raw,
            openai.OpenAI(base_url=emu.openai_base_url, api_key="x") as o_raw,
        ):
            claude, gpt = pc.wrap(a_raw), pc.wrap(o_raw)
            for name, provider, model in (
                ("rag (time at top)", "anthropic", "claude-sonnet-5"),
                ("agent, tools unordered", "openai", "gpt-4.1"),
                ("many-shot, 12-min gaps", "anthropic", "claude-sonnet-5"),
            ):
                for r in WORKLOADS[name]()[:10]:
                    emu.clock.advance(r.gap)
                    if provider == "anthropic":
                        kw: Any = render_anthropic(r, oracle=False)
                        kw["system"] = [
                            {
                                "type": "text",
                                "text": kw["system"],
                                "cache_control": {"type": "ephemeral"},
                            }
                        ]
                        claude.messages.create(model=model, **kw)
                    else:
                        gpt.chat.completions.create(model=model, **render_openai(r, oracle=False))
        pc.close()
    cli(["doctor", "--dir", str(directory)])


if __name__ == "__main__":
    main()
