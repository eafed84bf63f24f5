"""Smoke test: the provider-cache benchmark still runs, end to end, on one tiny cell.

It drives the real harness (``benchmarks/bench_provider_cache.py``): real SDKs with production
and gateway base URLs through ``emu.transport()``, the oracle, the writes-never-read ledger and
the markdown report - cut to three requests so it takes seconds.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKLOAD = "many-shot family, diverging"


def _load() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_provider_cache", ROOT / "benchmarks" / "bench_provider_cache.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_provider_cache", module)
    spec.loader.exec_module(module)
    return module


bench = _load()


@pytest.fixture(scope="module")
def cell() -> Any:
    variants = [bench.VARIANTS[0], bench.VARIANTS[3]]  # default URL; gateway URL, streaming
    return bench.run_cell(WORKLOAD, "responses", "gpt-6.1-sol", variants, max_requests=3)


def test_optimum_is_consistent_with_the_emulator(cell: Any) -> None:
    opt = cell.optimum
    # The third request shares the examples with the first two: the oracle wrote them once.
    assert 0 < opt.read < opt.input_tokens
    assert opt.never_read == 0
    assert opt.mismatches == 0  # every read the oracle planned is the read the emulator served
    assert not [f for f in cell.flags() if "oracle" in f]


def test_bare_pays_for_writes_nobody_reads(cell: Any) -> None:
    # gpt-6.1-sol bills the implicit end-of-prompt write; no later request shares it.
    bare = cell.run("bare")
    assert bare.read == 0 and bare.write > 0
    assert bare.never_read == bare.write
    assert bare.cost_ratio > 1.0


def test_variants_reach_the_production_and_gateway_hosts(cell: Any) -> None:
    assert cell.run("auto", bench.VARIANTS[0]).hosts == ("api.openai.com",)
    assert cell.run("auto", bench.VARIANTS[3]).hosts == ("gateway.ai.cloudflare.com",)
    assert cell.run("optimum").hosts == ("api.openai.com",)


def test_report_renders(cell: Any) -> None:
    variants = [bench.VARIANTS[0], bench.VARIANTS[3]]
    head = bench.header(variants)
    line = bench.row(cell, variants)
    assert line.count("|") == head[0].count("|")
    text = bench.markdown([cell], variants, "python benchmarks/bench_provider_cache.py", "")
    assert "## Summary" in text and "OpenAI responses, gpt-5.6+" in text


def test_cli_with_hooks(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "provider_cache.md"
    argv = ["--workload", "10-turn", "--api", "anthropic", "--model", "sonnet"]
    argv += ["--variant", "stream", "--max-requests", "2", "--out", str(out)]
    argv += ["--strict"]  # (--overflow runs bench_overflow.py in full: not a smoke test)
    assert bench.main(argv) == 0
    text = out.read_text()
    assert "| 10-turn chat | messages | claude-sonnet-5 |" in text
    assert "## Strict server" in text
    assert "1 cells" in capsys.readouterr().out
