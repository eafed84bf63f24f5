"""The lead-owned subcommands: `promptcache demo` and `promptcache doctor`."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from promptcache._accounting._pricing import price_data_version
from promptcache.cli import main


def test_demo_runs_offline_and_ends_with_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--no-latency", "--dir", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "16 (8 served by the local cache)" in out
    # The report closes the demo, priced from the persisted ledger.
    assert out.index("promptcache report:") < out.rindex("claude-sonnet-4-6")
    assert "Without any caching these calls would have cost $" in out
    # Both the demo's own summary and the report name the price data behind their dollars.
    version = price_data_version()
    assert f"  prices              {version}\n" in out
    assert f"Prices: {version}, applied when each call was recorded." in out


def test_doctor_reports_a_healthy_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "pc"
    assert main(["doctor", "--dir", str(d)]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_doctor_flags_a_world_readable_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "open"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    assert main(["doctor", "--dir", str(d)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  permissions" in out
    assert f"chmod 700 {d}" in out
