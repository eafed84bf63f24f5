"""Test-wide guards: no network beyond loopback, ever."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and not (
        host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")
    ):
        raise RuntimeError(f"tests must not reach the network (tried {address!r})")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Guarding the socket layer (not any SDK) keeps every test offline: a real provider host
    # would be refused here before a byte leaves the machine.
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    yield


@pytest.fixture()
def pc_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A private PROMPTCACHE_DIR for one test."""
    d = tmp_path / "pc"
    monkeypatch.setenv("PROMPTCACHE_DIR", str(d))
    return d


@pytest.fixture()
def emulator() -> Iterator[Any]:
    """A started ``promptcache.testing.Emulator`` on loopback with a ``FakeClock``.

    ``emulator.clock.advance(seconds)`` expires cache entries; ``emulator.calls`` is the
    ground truth of what was served and billed.
    """
    from promptcache.testing import Emulator, FakeClock

    with Emulator(clock=FakeClock(start=1_800_000_000.0)) as emu:
        yield emu


# The SDK-compatibility selection (`make compat` runs it as `pytest --compat` against the lowest
# and the newest openai/anthropic releases we allow). These are the modules that drive the real
# SDKs through what promptcache touches of them: the wrapped client classes and their
# `with_options`/`with_raw_response`/`with_streaming_response`/beta surfaces, the fast path
# (which subclasses the SDKs' resource classes and builds their response and Stream types
# itself), the transport and SSE tee under SDK streams, usage decoding from SDK objects (the
# accountant), the headers the SDKs send, and the emulator answers parsed into SDK types.
# Left out: store, planner, doctor, fleet and emulator-rule tests, which work on JSON and would
# only repeat the main run; and the async-abandon QA test (12 s of event-loop shutdown checks).
COMPAT_SELECTION = (
    "accounting/",
    "core/test_fastpath.py",
    "core/test_fastpath_probes.py",
    "core/test_qa_close.py",
    "core/test_qa_tuples.py",
    "core/test_singleflight.py",
    "core/test_stream.py",
    "core/test_transport.py",
    "core/test_typing.py",
    "core/test_wrap.py",
    "core/test_wrap_cached.py",
    "core/test_wrap_policy.py",
    "emulator/test_production_urls.py",
    "emulator/test_sdk_shapes.py",
    "emulator/test_sdk_wrappers.py",
    "emulator/test_structured_and_tools.py",
    "trust/test_1_headers_in_key.py",
    "trust/test_2_live_client_state.py",
)
_TESTS = Path(__file__).parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--compat",
        action="store_true",
        help="run only the SDK-compatibility selection (COMPAT_SELECTION in tests/conftest.py)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # A renamed or moved module would otherwise drop out of the selection without a word.
    missing = [e for e in COMPAT_SELECTION if not (_TESTS / e).exists()]
    if config.getoption("compat") and missing:
        raise pytest.UsageError(f"COMPAT_SELECTION names what is not under tests/: {missing}")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # Skipping unselected files and folders here (rather than deselecting by marker) keeps them
    # and their conftests from being imported at all: `--compat` needs no more than the
    # selection does (no redis, say) and costs only the selection's own collection time.
    if not config.getoption("compat") or collection_path == _TESTS:
        return None
    rel = collection_path.relative_to(_TESTS).as_posix() + ("/" if collection_path.is_dir() else "")
    # Kept: a selected file or anything in a selected folder, and the folders on the way there.
    if any(rel.startswith(entry) or entry.startswith(rel) for entry in COMPAT_SELECTION):
        return None
    return True
