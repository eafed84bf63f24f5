"""Real redis-server processes on loopback for the fleet tests (issue 12).

``redis_url`` is the module-scoped server of tests/core/test_store_redis.py, reused; the
:class:`RedisServer` helper starts servers the tests may kill, restart, or configure (ACL,
TLS, Sentinel).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.core.test_store_redis import redis_url

__all__ = ["REDIS", "RedisServer", "free_port", "redis_url"]

REDIS = shutil.which("redis-server")
if REDIS is None and os.environ.get("CI"):
    raise RuntimeError("CI must provide redis-server for the fleet tests")
needs_redis = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server (or sentinel) process; ``start``/``kill``/``restart`` on one port."""

    def __init__(
        self,
        workdir: Path,
        *,
        args: Sequence[str] = (),
        port: int | None = None,
        ping: dict[str, Any] | None = None,
        config: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.args = list(args)
        self.ping = ping or {}
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        assert REDIS is not None
        cmd = [REDIS]
        if self.config is not None:
            conf = self.workdir / f"redis-{self.port}.conf"
            conf.write_text(self.config)
            cmd.append(str(conf))
        cmd += ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir), *self.args]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        client = redis.Redis(host="127.0.0.1", port=self.port, **self.ping)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    return
                except (redis.ConnectionError, OSError):
                    assert self.proc is not None
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise
                    time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture()
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, which the test may kill and restart."""
    if REDIS is None:
        pytest.skip("redis-server is not installed")
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = RedisServer(workdir).start()
    try:
        yield server
    finally:
        server.stop()
