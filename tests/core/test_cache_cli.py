from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptcache._store import DiskStore
from promptcache.cli import main


def fill(directory: Path) -> None:
    s = DiskStore(directory / "responses")
    s.set("v1|openai|https://api.openai.com/v1|t=a|ns=default:1", b"x" * 2048, ttl=None)
    s.set("v1|openai|https://api.openai.com/v1|t=a|ns=default:2", b"y" * 100, ttl=None)
    s.set("v1|anthropic|https://api.anthropic.com|t=b|ns=default:3", b"z", ttl=None)
    s.close()


def test_stats_text(pc_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(pc_dir)
    assert main(["cache", "stats"]) == 0
    out = capsys.readouterr().out
    assert "entries:   3" in out
    assert str(pc_dir / "responses") in out
    assert "backend:   disk" in out


def test_stats_json_and_dir_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "elsewhere"
    fill(d)
    assert main(["cache", "stats", "--dir", str(d), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["entries"] == 3
    assert data["size_bytes"] >= 2048 + 100 + 1
    assert data["location"] == str(d / "responses")
    assert data["directory"] == str(d)
    assert data["backend"] == "disk"


def test_clear(pc_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(pc_dir)
    assert main(["cache", "clear", "--prefix", "v1|anthropic|"]) == 0
    assert "removed 1 entry" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "removed 2 entries" in capsys.readouterr().out
    assert main(["cache", "stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 0


def test_memory_store_and_bad_store(pc_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "stats", "--store", "memory://"]) == 0
    assert "backend:   memory" in capsys.readouterr().out
    assert main(["cache", "stats", "--store", "ftp://nowhere"]) == 1
    assert "cannot open the store" in capsys.readouterr().err


def test_broken_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "responses").write_text("a file where the store should be")
    assert main(["cache", "stats", "--dir", str(tmp_path)]) == 1
    assert "cannot open the store" in capsys.readouterr().err


def test_action_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["cache"])
    assert info.value.code == 2
