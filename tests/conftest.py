"""Test-wide guards: no network beyond loopback, ever."""

from __future__ import annotations

import socket
from collections.abc import Iterator
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
