"""Item 5: a bad directory gets a clear answer.

A directory the user named (the ``directory`` argument or ``$PROMPTCACHE_DIR``) that cannot be
used is a ``ConfigError`` from ``PromptCache()`` naming the path and the fix; the default
directory unusable is one ``StoreWarning`` and calls go on, uncached. Unwritable directories
are tested in a child process that root's permission overrides are taken from (store_kit).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import openai
import pytest

import promptcache
from promptcache.testing import Emulator
from tests.core.test_wrap_kit import RecordingAccountant
from tests.trust.store_kit import ask, openai_client, run_python

_CHILD = r"""
import json, os, sys, warnings
import promptcache

directory = sys.argv[1] or None
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
        promptcache.PromptCache(directory).close()
        outcome = "ok"
    except promptcache.ConfigError as exc:
        outcome = "ConfigError: " + str(exc)
    except BaseException as exc:
        outcome = f"{type(exc).__name__}: {exc}"
print(json.dumps({
    "outcome": outcome,
    "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
}))
"""


def _unwritable(tmp_path: Path) -> Path:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    return ro


@pytest.mark.process
def test_named_unwritable_directory_is_a_config_error(tmp_path: Path) -> None:
    ro = _unwritable(tmp_path)
    for directory, env in [
        (str(ro), {}),  # exists, not writable
        (str(ro / "sub"), {}),  # cannot be created
        ("", {"PROMPTCACHE_DIR": str(ro)}),  # named by the environment
    ]:
        got = run_python(_CHILD, directory, env=env, unprivileged=True)
        named = directory or str(ro)
        assert got["outcome"].startswith("ConfigError: "), (directory, env, got)
        assert repr(named) in got["outcome"]
        assert "writable" in got["outcome"] and "PROMPTCACHE_DIR" in got["outcome"]
        assert got["warnings"] == []
    assert list(ro.iterdir()) == []


@pytest.mark.process
def test_unwritable_default_directory_is_one_warning(tmp_path: Path) -> None:
    ro = _unwritable(tmp_path)
    got = run_python(_CHILD, "", env={"XDG_CACHE_HOME": str(ro)}, unprivileged=True)
    assert got["outcome"] == "ok", got
    store_warnings = [w for w in got["warnings"] if w.startswith("StoreWarning: ")]
    assert len(store_warnings) == 1, got["warnings"]
    assert str(ro / "promptcache") in store_warnings[0]


def test_empty_string_is_not_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(promptcache.ConfigError, match="directory=''"):
        promptcache.PromptCache("")
    assert list(tmp_path.iterdir()) == []


def test_directory_under_a_file_is_a_config_error(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(promptcache.ConfigError, match="not a directory") as caught:
        promptcache.PromptCache(a_file / "cache")
    assert str(a_file / "cache") in str(caught.value)


def test_path_too_long_is_a_config_error(tmp_path: Path) -> None:
    # A name longer than the file system takes (ENAMETOOLONG)...
    with pytest.raises(promptcache.ConfigError, match="too long"):
        promptcache.PromptCache(tmp_path / ("x" * 300))
    # ...and a path every part of which is fine but too long for SQLite to open a database in.
    deep = tmp_path.joinpath(*["d" * 100] * 5)
    with pytest.raises(promptcache.ConfigError, match="too long") as caught:
        promptcache.PromptCache(deep)
    assert str(deep) in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # nothing half-made


def _use(directory: Path) -> None:
    """Open a PromptCache on ``directory`` and wrap a client (which needs the salt)."""
    with (
        promptcache.PromptCache(directory) as pc,
        openai.OpenAI(api_key="test-key", base_url="http://127.0.0.1:9/v1") as bare,
    ):
        pc.wrap(bare)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_salt_of_another_user_is_a_config_error(tmp_path: Path) -> None:
    d = tmp_path / "pc"
    _use(d)
    os.chown(d / "salt", 65534, 65534)
    with pytest.raises(promptcache.ConfigError, match="another user") as caught:
        _use(d)
    assert str(d / "salt") in str(caught.value)


def test_salt_of_ours_is_made_private_again(tmp_path: Path) -> None:
    d = tmp_path / "pc"
    _use(d)
    (d / "salt").chmod(0o644)
    _use(d)
    assert (d / "salt").stat().st_mode & 0o777 == 0o600


def _unusable_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the platform's cache directory under a file; return the default it yields."""
    a_file = tmp_path / "file"
    a_file.write_text("x")
    monkeypatch.delenv("PROMPTCACHE_DIR", raising=False)
    monkeypatch.delenv("PROMPTCACHE_STORE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(a_file))
    return a_file / "promptcache"


def test_unusable_default_directory_warns_once_and_calls_go_on_uncached(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = _unusable_default(tmp_path, monkeypatch)
    runs: list[int] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # The ledger is the ledger's business (it degrades on its own): a recording one here.
        pc = promptcache.PromptCache(accountant=RecordingAccountant())
        client = pc.wrap(openai_client(emulator))
        first = ask(client, "hello")
        assert ask(client, "hello") == first
        memo_calls = len(emulator.calls)

        @pc.cached
        def double(x: int) -> int:
            runs.append(x)
            return 2 * x

        assert double(2) == double(2) == 4
        pc.close()
        client.close()
    assert memo_calls == 2  # no local cache: both calls reached the provider
    assert runs == [2, 2]
    store_warnings = [w for w in caught if issubclass(w.category, promptcache.StoreWarning)]
    assert len(store_warnings) == 1, [str(w.message) for w in caught]
    assert str(default) in str(store_warnings[0].message)
    assert pc.directory == default


_LEDGER_CHILD = r"""
import json, os, sys, warnings
import openai, promptcache
from promptcache.testing import Emulator

with warnings.catch_warnings(record=True) as caught, Emulator() as emu:
    warnings.simplefilter("always")
    try:
        pc = promptcache.PromptCache()
        with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as bare:
            client = pc.wrap(bare)
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hello"}]
            )
            requests = pc.ledger.summary().requests
        pc.close()
        outcome = f"ok {requests}"
    except BaseException as exc:
        outcome = f"{type(exc).__name__}: {exc}"
print(json.dumps({"outcome": outcome, "warnings": [str(w.message) for w in caught]}))
"""


@pytest.mark.process
def test_unusable_default_directory_with_the_real_ledger(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    # A child process: a ledger thread failing here must not fail the whole test session.
    got = run_python(_LEDGER_CHILD, env={"XDG_CACHE_HOME": str(a_file)})
    assert got["outcome"].startswith("ok "), got
