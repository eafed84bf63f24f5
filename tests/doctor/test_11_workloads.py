"""The provider-cache benchmark workloads in restructure="off": the doctor names their causes.

``rag`` puts the current time at the top of its system prompt; ``agent, tools unordered``
lists its tools in a different order on every call. Run through the real SDKs against the
emulator as the app writes them, the doctor must name the volatile timestamp and the tool
order — and stay silent on the workloads that are already cache-friendly.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from promptcache import Finding
from promptcache.testing import Emulator

from .kit import pc_for

# The workloads live with the benchmarks (not a package mypy checks): loaded by name.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
_workloads: Any = importlib.import_module("workloads")
WORKLOADS: dict[str, Any] = _workloads.WORKLOADS
render_anthropic = _workloads.render_anthropic
render_openai = _workloads.render_openai


def _run(emu: Emulator, tmp_path: Path, name: str, provider: str, model: str) -> list[Finding]:
    pc = pc_for(emu, tmp_path, "off")
    reqs = WORKLOADS[name]()[:8]
    if provider == "anthropic":
        with anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="x") as raw:
            client = pc.wrap(raw)
            for r in reqs:
                emu.clock.advance(r.gap)
                kw: Any = render_anthropic(r, oracle=False)
                # As an app that read the docs would: one breakpoint at the end of the system.
                kw["system"] = [
                    {"type": "text", "text": kw["system"], "cache_control": {"type": "ephemeral"}}
                ]
                client.messages.create(model=model, **kw)
    else:
        with openai.OpenAI(base_url=emu.openai_base_url, api_key="x") as oraw:
            oclient = pc.wrap(oraw)
            for r in reqs:
                emu.clock.advance(r.gap)
                oclient.chat.completions.create(model=model, **render_openai(r, oracle=False))
    found = pc.doctor()
    pc.close()
    return found


@pytest.mark.parametrize(
    ("provider", "model"), [("anthropic", "claude-sonnet-5"), ("openai", "gpt-4.1")]
)
def test_rag_names_the_timestamp(
    emulator: Emulator, tmp_path: Path, provider: str, model: str
) -> None:
    found = _run(emulator, tmp_path, "rag (time at top)", provider, model)
    assert [f.kind for f in found] == ["prefix_changed"]
    f = found[0]
    assert f.evidence.volatile == "timestamp"
    assert f.evidence.block in ("system", "message 0")
    assert f.evidence.before is not None and "Current time: 2026-11-28T" in f.evidence.before
    assert f.count == 7


@pytest.mark.parametrize(
    ("provider", "model"), [("anthropic", "claude-sonnet-5"), ("openai", "gpt-4.1")]
)
def test_unordered_tools_are_named(
    emulator: Emulator, tmp_path: Path, provider: str, model: str
) -> None:
    found = _run(emulator, tmp_path, "agent, tools unordered", provider, model)
    assert {f.kind for f in found} == {"scope_changed"}
    assert all(f.evidence.fields == ("tools order",) for f in found)


def test_cache_friendly_workloads_are_silent(emulator: Emulator, tmp_path: Path) -> None:
    assert "agent, 15 tools" in WORKLOADS
    for i, name in enumerate(("agent, 15 tools", "many-shot", "10-turn chat")):
        emulator.reset()
        assert _run(emulator, tmp_path / str(i), name, "openai", "gpt-4.1") == []
