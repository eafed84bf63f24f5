"""Every ```python block in the README and docs/ runs, and every example script runs.

Blocks of one page run in order in one fresh interpreter (later blocks may use names from
earlier ones), offline, with a private PROMPTCACHE_DIR. A block whose first line is
``# doc: no-run`` is shown to readers but not executed (used for snippets that need a real
API key).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("**/*.md")])
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _blocks(page: Path) -> list[str]:
    return [b for b in _BLOCK.findall(page.read_text()) if not b.startswith("# doc: no-run")]


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PROMPTCACHE_DIR"] = str(tmp_path / "pc")
    # The scripts are user-facing: they must not need an API key or the network.
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        env.pop(var, None)
    return subprocess.run(
        args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False
    )


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p)], ids=lambda p: p.name)
def test_page_code_runs(page: Path, tmp_path: Path) -> None:
    script = tmp_path / f"{page.stem}_blocks.py"
    script.write_text("\n\n".join(_blocks(page)))
    out = _run([sys.executable, "-W", "error::DeprecationWarning", str(script)], tmp_path)
    assert out.returncode == 0, f"{page.name} failed:\n{out.stdout}\n{out.stderr}"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(example: Path, tmp_path: Path) -> None:
    out = _run([sys.executable, str(example)], tmp_path)
    assert out.returncode == 0, f"{example.name} failed:\n{out.stdout}\n{out.stderr}"
    assert out.stdout.strip(), f"{example.name} printed nothing"
