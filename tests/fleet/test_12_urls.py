"""Issue 12 item 5: production Redis URLs — ACL users, TLS, Sentinel, Cluster.

URL parsing is unit-tested; each form is then tested against a real redis-server started
here (TLS with a throwaway CA made with ``cryptography``; a real ``redis-server --sentinel``;
a three-node Redis Cluster made with ``redis-cli --cluster create``).
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import subprocess
import time
from pathlib import Path

import openai
import pytest
import redis

import promptcache
from promptcache import ConfigError, StoreWarning
from promptcache._store import SafeStore, open_store
from promptcache._store._breaker import Resilience
from promptcache._store._redis import RedisStore, parse_redis_url
from promptcache.testing import Emulator
from tests.fleet.conftest import RedisServer, free_port, needs_redis

# --- parsing (no server) -----------------------------------------------------------------------


def test_plain_urls_go_to_redis_py_without_promptcache_parameters() -> None:
    t = parse_redis_url("rediss://alice:pw@cache.internal:6380/2?timeout=0.5&ssl_cert_reqs=none")
    assert t.kind == "url"
    assert t.url == "rediss://alice:pw@cache.internal:6380/2?ssl_cert_reqs=none"
    assert t.resilience == Resilience(timeout=0.5)
    assert parse_redis_url("unix:///run/redis.sock?db=1").url == "unix:///run/redis.sock?db=1"


def test_sentinel_urls_name_the_sentinels_the_service_and_the_db() -> None:
    t = parse_redis_url(
        "redis+sentinel://app:p%40ss@10.0.0.1:26379,10.0.0.2,[::1]:26380/mymaster/3"
        "?sentinel_password=sp&cooldown=2"
    )
    assert (t.kind, t.service, t.db, t.ssl) == ("sentinel", "mymaster", 3, False)
    assert t.hosts == (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380))
    assert (t.username, t.password) == ("app", "p@ss")
    assert t.options == {"sentinel_password": "sp"} and t.resilience.cooldown == 2
    assert parse_redis_url("rediss+sentinel://s1/cache").ssl
    assert parse_redis_url("redis+sentinel://s1/cache").db == 0


def test_cluster_urls_list_seed_nodes() -> None:
    t = parse_redis_url("redis+cluster://:pw@node1:7000,node2:7001")
    assert (t.kind, t.hosts, t.password, t.username) == (
        "cluster",
        (("node1", 7000), ("node2", 7001)),
        "pw",
        None,
    )
    assert parse_redis_url("rediss+cluster://node1").hosts == (("node1", 6379),)


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://s1:26379",  # no service
        "redis+sentinel://s1:26379/mymaster/x",
        "redis+sentinel://s1:26379/a/1/2",
        "redis+cluster://n1:7000/3",  # a cluster has db 0 only
        "redis+sentinel://s1:port/m",
        "redis+cluster://:pw@/0",
        "mongodb://x",
    ],
)
def test_malformed_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_redis_url(url)


def test_locations_never_show_passwords() -> None:
    for url in (
        "redis://user:s3cret@127.0.0.1:1/0",
        "redis+sentinel://user:s3cret@127.0.0.1:1,127.0.0.1:2/m",
    ):
        store = open_store(url, Path("/nonexistent"))  # connects lazily
        assert "s3cret" not in repr(store) and "***" in repr(store)
        store.close()
    for url in ("redis+sentinel://u:s3cret@h:x/m", "redis+cluster://:s3cret@h:x"):
        with pytest.raises(ConfigError) as err:
            parse_redis_url(url)
        assert "s3cret" not in str(err.value)


# --- real servers ------------------------------------------------------------------------------


def _round_trip(url: str, tmp_path: Path, emu: Emulator, **options: str) -> None:
    """Two "machines" on ``url``: the second is answered from the first one's entry."""
    for name in ("a", "b"):
        with promptcache.PromptCache(tmp_path / name, store=url, **options) as pc:  # type: ignore[arg-type]
            bare = openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-1", max_retries=0)
            pc.wrap(bare).chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": f"via {url}"}]
            )
            bare.close()
    assert len(emu.calls) == 1


@needs_redis
def test_an_acl_user_with_a_password(tmp_path: Path, emulator: Emulator) -> None:
    # The least a promptcache user needs, as docs/fleet.md recommends it.
    acl = ["--user", "default", "off", "--user", "cache", "on", ">pw-for-cache",
           "~promptcache*", "+get", "+set", "+del", "+unlink", "+scan", "+strlen",
           "+ping"]  # fmt: skip
    server = RedisServer(tmp_path, args=acl, ping={"username": "cache", "password": "pw-for-cache"})
    server.start()
    try:
        url = f"redis://cache:pw-for-cache@127.0.0.1:{server.port}/0"
        _round_trip(url, tmp_path, emulator)
        store = RedisStore.from_url(url)
        assert store.stats().entries == 1
        assert store.clear() == 1
        store.close()
        wrong = SafeStore(RedisStore.from_url(f"redis://cache:nope@127.0.0.1:{server.port}/0"))
        with pytest.warns(StoreWarning, match="AuthenticationError|invalid username-password"):
            assert wrong.get("k") is None
        wrong.close()
    finally:
        server.stop()


def _tls_files(directory: Path) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@needs_redis
def test_rediss_tls(tmp_path: Path, emulator: Emulator) -> None:
    ca, cert, key = _tls_files(tmp_path)
    port = free_port()
    args = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
            "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
            "--tls-auth-clients", "no"]  # fmt: skip
    server = RedisServer(
        tmp_path, args=args, port=port, ping={"ssl": True, "ssl_ca_certs": str(ca)}
    )
    try:
        server.start()
    except (redis.ConnectionError, OSError):
        pytest.skip("this redis-server has no TLS built in")
    try:
        _round_trip(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}", tmp_path, emulator)
        # Plain text to a TLS port, or TLS without trusting the CA: a warned miss.
        untrusted = SafeStore(RedisStore.from_url(f"rediss://127.0.0.1:{port}/0"))
        with pytest.warns(StoreWarning, match="certificate|SSL"):
            assert untrusted.get("k") is None
        untrusted.close()
    finally:
        server.stop()


@needs_redis
def test_sentinel_finds_the_master(tmp_path: Path, emulator: Emulator) -> None:
    master = RedisServer(tmp_path).start()
    sentinel_port = free_port()
    sentinel = RedisServer(
        tmp_path,
        port=sentinel_port,
        config=(
            f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\nsentinel resolve-hostnames no\n"
        ),
        args=["--sentinel"],
    )
    try:
        sentinel.start()
        # A redis-py connection option in the query reaches the master's connections.
        url = f"redis+sentinel://127.0.0.1:{sentinel_port}/mymaster/0?socket_keepalive=true"
        _round_trip(url, tmp_path, emulator)
        store = RedisStore.from_url(url)
        kwargs = store.client.connection_pool.connection_kwargs
        assert kwargs["socket_keepalive"] is True and kwargs["socket_timeout"] == 0.25
        store.close()
        direct = redis.Redis(host="127.0.0.1", port=master.port)
        assert any(k.startswith(b"promptcache:") for k in direct.scan_iter())
        direct.close()
    finally:
        sentinel.stop()
        master.stop()


def _cluster_port() -> int:
    # A cluster node also listens on its port + 10000 (the cluster bus): both must be free.
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port


@needs_redis
def test_cluster(tmp_path: Path, emulator: Emulator) -> None:
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.skip("redis-cli is not installed")
    nodes = []
    try:
        for i in range(3):
            d = tmp_path / f"node{i}"
            d.mkdir()
            args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            nodes.append(RedisServer(d, args=args, port=_cluster_port()).start())
        subprocess.run(
            [cli, "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes],
             "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        probe = redis.Redis(host="127.0.0.1", port=nodes[0].port)
        deadline = time.monotonic() + 15
        while probe.cluster("INFO").get("cluster_state") != "ok":
            assert time.monotonic() < deadline, "the cluster did not come up"
            time.sleep(0.05)
        probe.close()
        url = f"redis+cluster://127.0.0.1:{nodes[0].port}"
        _round_trip(url, tmp_path, emulator)
        store = RedisStore.from_url(url)
        for i in range(20):  # keys in many slots, on every node
            store.set(f"k{i}", b"v", ttl=60)
        assert store.delete_prefix("k1") == 11  # k1, k10..k19
        assert store.stats().entries == 9 + 1  # + the round trip's response
        assert store.clear() == 10
        store.close()
    finally:
        for n in nodes:
            n.stop()


def test_timeouts_reach_redis_py_and_its_own_retries_are_off() -> None:
    store = RedisStore.from_url("redis://127.0.0.1:1/0?timeout=0.1&failures=5")
    kwargs = store.client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.1
    assert kwargs["retry"].get_retries() == 0
    assert store.breaker.policy == Resilience(timeout=0.1, failures=5)
    store.close()
    # redis-py's own parameter, when given, wins over promptcache's default.
    own = RedisStore.from_url("redis://127.0.0.1:1/0?socket_timeout=1.5")
    assert own.client.connection_pool.connection_kwargs["socket_timeout"] == 1.5
    own.close()
