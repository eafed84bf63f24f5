"""Where findings reach users: warnings and log lines, pc.doctor(), the history, the CLI."""

from __future__ import annotations

import json
import logging
import stat
import time
from pathlib import Path
from typing import Any

import pytest

import promptcache
from promptcache import CacheMissWarning, ConfigError, DoctorOptions
from promptcache.cli import main
from promptcache.testing import Emulator

from .kit import SYSTEM, gpt, one, pc_for


def _timestamped(emu: Emulator, pc: promptcache.PromptCache, calls: int = 3) -> None:
    emu.reset()  # each run starts with an empty provider cache
    with gpt(emu, pc) as client:
        for i in range(calls):
            emu.clock.advance(30)
            client.chat.completions.create(
                model="gpt-4.1",
                messages=[
                    {"role": "system", "content": f"Now: 2026-12-04 10:{i:02d}\n{SYSTEM}"},
                    {"role": "user", "content": f"q{i}"},
                ],
            )


def test_a_log_line_once_per_family_and_kind(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pc = pc_for(emulator, tmp_path, "off")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "promptcache.doctor"]

    with caplog.at_level(logging.WARNING, logger="promptcache.doctor"):
        _timestamped(emulator, pc, calls=5)
        # Examined behind the calls (issue 13: off the miss path), within a batch period,
        # without anyone asking for findings.
        deadline = time.monotonic() + 10
        while not lines() and time.monotonic() < deadline:
            time.sleep(0.02)
    assert len(lines()) == 1 and "prefix_changed" in lines()[0] and "timestamp" in lines()[0]
    assert one(pc.doctor(), "prefix_changed").count == 4
    pc.close()


def test_warnings_are_opt_in_and_once(emulator: Emulator, tmp_path: Path) -> None:
    pc = pc_for(emulator, tmp_path, "off", doctor=DoctorOptions(warnings=True))
    with pytest.warns(CacheMissWarning, match="prefix_changed") as record:
        _timestamped(emulator, pc, calls=4)
    assert len([w for w in record if issubclass(w.category, CacheMissWarning)]) == 1
    assert issubclass(CacheMissWarning, promptcache.PromptCacheWarning)
    pc.close()


def test_history_is_private_versioned_json_and_adds_up_across_caches(
    emulator: Emulator, tmp_path: Path
) -> None:
    for _ in range(2):  # two PromptCache objects (as two processes would) on one directory
        pc = pc_for(emulator, tmp_path, "off")
        _timestamped(emulator, pc)
        pc.close()
    path = tmp_path / "doctor.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["v"] == 1
    (item,) = doc["findings"]
    assert item["kind"] == "prefix_changed" and item["count"] == 4
    # Nothing of the prompt but the short excerpts.
    assert SYSTEM[:200] not in path.read_text()
    assert len(item["evidence"]["before"]) <= 80


def test_excerpts_hashed_or_off(emulator: Emulator, tmp_path: Path) -> None:
    pc = pc_for(emulator, tmp_path / "h", "off", doctor=DoctorOptions(excerpts="hash"))
    _timestamped(emulator, pc)
    ev = one(pc.doctor(), "prefix_changed").evidence
    assert ev.before is not None and ev.before.startswith("xxh3:") and ev.before != ev.after
    assert ev.volatile == "timestamp" and ev.char_offset is not None
    pc.close()
    pc = pc_for(emulator, tmp_path / "o", "off", doctor=DoctorOptions(excerpts="off"))
    _timestamped(emulator, pc)
    ev = one(pc.doctor(), "prefix_changed").evidence
    assert ev.before is None and ev.after is None and ev.volatile == "timestamp"
    pc.close()
    assert "Now: 2026" not in (tmp_path / "h" / "doctor.json").read_text()
    assert "Now: 2026" not in (tmp_path / "o" / "doctor.json").read_text()


def test_disabled_doctor_and_no_history(emulator: Emulator, tmp_path: Path) -> None:
    pc = pc_for(emulator, tmp_path / "a", "off", doctor=DoctorOptions(enabled=False))
    _timestamped(emulator, pc)
    assert pc.doctor() == []
    pc.close()
    pc = pc_for(emulator, tmp_path / "b", "off", doctor=DoctorOptions(history=False))
    _timestamped(emulator, pc)
    assert len(pc.doctor()) == 1
    pc.close()
    assert not (tmp_path / "a" / "doctor.json").exists()
    assert not (tmp_path / "b" / "doctor.json").exists()


@pytest.mark.parametrize("kw", [{"excerpts": "all"}, {"excerpt_chars": 500}, {"excerpt_chars": -1}])
def test_bad_options_are_config_errors(kw: Any) -> None:
    with pytest.raises(ConfigError):
        DoctorOptions(**kw)


def test_cli_table_json_and_since(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pc = pc_for(emulator, tmp_path, "off")
    _timestamped(emulator, pc)
    pc.close()
    assert main(["doctor", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out  # the installation checks are still there
    assert "prefix_changed" in out and "message 0 @char" in out and "timestamp" in out
    assert "before: 'Now: 2026-12-04 10:01" in out
    assert main(["doctor", "--dir", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [f["kind"] for f in doc["findings"]] == ["prefix_changed"]
    assert {c["name"] for c in doc["checks"]} >= {"python", "directory", "store"}
    # The emulator's clock is in 2027: findings are "in the future" for --since 1h; a date
    # after them leaves none.
    assert main(["doctor", "--dir", str(tmp_path), "--since", "2030-01-01"]) == 0
    assert "No provider cache misses explained since 2030-01-01." in capsys.readouterr().out
    assert main(["doctor", "--dir", str(tmp_path), "--since", "1h", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["findings"]) == 1
    with pytest.raises(SystemExit):
        main(["doctor", "--dir", str(tmp_path), "--since", "yesterday"])


def test_a_broken_history_never_breaks_the_app(emulator: Emulator, tmp_path: Path) -> None:
    (tmp_path / "doctor.json").write_bytes(b"{not json")
    pc = pc_for(emulator, tmp_path, "off")
    _timestamped(emulator, pc)
    pc.close()
    doc = json.loads((tmp_path / "doctor.json").read_text())
    assert [f["kind"] for f in doc["findings"]] == ["prefix_changed"]
