"""Bad directories get a clear error and create nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

import promptcache
from promptcache.cli import main


def test_directory_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    target = tmp_path / "not-a-dir"
    target.write_text("x")
    with pytest.raises(promptcache.ConfigError, match="not a directory"):
        promptcache.PromptCache(directory=target)
    assert target.read_text() == "x"


def test_cache_cli_does_not_create_a_mistyped_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo"
    assert main(["cache", "stats", "--dir", str(missing)]) == 1
    assert not missing.exists()
    assert "no cache directory" in capsys.readouterr().err
    assert main(["cache", "clear", "--dir", str(missing)]) == 1
    assert not missing.exists()
