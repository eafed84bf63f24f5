"""The fleet backend: one Redis (or Valkey) server shared by every machine, with native TTLs.

URLs (parsed by :func:`parse_redis_url`):

- ``redis://[user:password@]host:port/db``, ``rediss://…`` (TLS; redis-py's ``ssl_*`` query
  parameters such as ``ssl_ca_certs`` apply), ``unix:///path/redis.sock?db=0`` — redis-py's
  own forms, passed to ``redis.Redis.from_url``;
- ``redis+sentinel://[user:password@]host:26379[,host2:26379…]/service[/db]`` (and
  ``rediss+sentinel://`` for TLS to the master) — redis-py has no URL for Sentinel, so this
  is promptcache's: the master of ``service``, found through ``redis.sentinel.Sentinel``;
  the credentials are the master's (``?sentinel_password=`` for the sentinels' own);
- ``redis+cluster://[user:password@]host:port`` (``rediss+cluster://``) — a Redis Cluster
  through ``redis.cluster.RedisCluster``, any node as the seed.

Query parameters ``timeout``, ``attempts``, ``failures``, ``cooldown``, ``max_cooldown`` are
promptcache's failure handling (:class:`~promptcache._store._breaker.Resilience`); every other
one goes to redis-py. Every call goes through a circuit breaker with short timeouts, so a dead
or hung Redis costs a run a fraction of a second, not seconds per call.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from promptcache._errors import ConfigError, MissingDependencyError, StoreError
from promptcache._store._base import StoreStats
from promptcache._store._breaker import (
    DEFAULT_RESILIENCE,
    RESILIENCE_PARAMS,
    CircuitBreaker,
    Resilience,
    StoreDown,
)
from promptcache._store._secret import SECRET_KEY, SECRET_LEN, keyspace_id

if TYPE_CHECKING:
    import redis

__all__ = ["KEY_PREFIX", "RedisStore", "RedisTarget", "parse_redis_url"]

T = TypeVar("T")

#: Every key promptcache writes starts with this, so ``clear`` never touches anyone else's data.
#: Entries are under ``promptcache:<keyspace id>:``, the id naming the key secret in use.
KEY_PREFIX: Final = "promptcache:"
_GLOB = re.compile(r"([*?\[\]\\])")
_SCHEMES: Final = frozenset(
    {
        "redis",
        "rediss",
        "unix",
        "redis+sentinel",
        "rediss+sentinel",
        "redis+cluster",
        "rediss+cluster",
    }
)


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hosts}"))


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """What a store URL asks for, before any connection (pure: unit-tested without a server).

    ``kind`` is ``"url"`` (redis-py parses ``url`` itself), ``"sentinel"`` or ``"cluster"``;
    ``url`` is the URL without promptcache's parameters; ``hosts`` the sentinels or the
    cluster seeds; ``options`` the remaining query parameters, for redis-py.
    """

    kind: str
    url: str
    resilience: Resilience = DEFAULT_RESILIENCE
    hosts: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    ssl: bool = False
    options: dict[str, str] = field(default_factory=dict)


def _hosts(netloc: str, default_port: int, url: str) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    for item in netloc.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon or "]" in port:  # no port, or a bare IPv6 address
            host, port = item.strip(), str(default_port)
        host = host.strip("[]")
        if not host or not port.isdigit():
            raise ConfigError(f"store URL {_redacted(url)!r}: bad host {item!r}")
        out.append((host, int(port)))
    return tuple(out)


def parse_redis_url(url: str) -> RedisTarget:
    """Split a store URL into what redis-py needs (see the module docstring for the forms)."""
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _SCHEMES:
        raise ConfigError(f"not a Redis store URL: {_redacted(url)!r}")
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    resilience = Resilience.from_query({k: v for k, v in query.items() if k in RESILIENCE_PARAMS})
    options = {k: v for k, v in query.items() if k not in RESILIENCE_PARAMS}
    # Rebuilt as text: urlunsplit would turn "unix:///path" into "unix:/path".
    clean = url.partition("?")[0] + (f"?{urlencode(options)}" if options else "")
    if scheme in ("redis", "rediss", "unix"):
        return RedisTarget("url", clean, resilience, options=options)
    userinfo, at, netloc = parts.netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if colon else None
    ssl = scheme.startswith("rediss")
    path = [p for p in parts.path.split("/") if p]
    if scheme.endswith("+cluster"):
        if path and path != ["0"]:
            raise ConfigError(f"store URL {_redacted(url)!r}: a Redis Cluster has only db 0")
        hosts = _hosts(netloc, 6379, url)
        return RedisTarget(
            "cluster", clean, resilience, hosts, "", 0, username, password, ssl, options
        )
    hosts = _hosts(netloc, 26379, url)
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ConfigError(
            f"store URL {_redacted(url)!r}: a Sentinel URL names the service and optionally "
            "the db: redis+sentinel://host:26379[,host2:26379]/mymaster[/0]"
        )
    db = int(path[1]) if len(path) == 2 else 0
    return RedisTarget(
        "sentinel", clean, resilience, hosts, unquote(path[0]), db, username, password, ssl, options
    )


def _connect(target: RedisTarget) -> Any:
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError as exc:  # pragma: no cover - redis is installed in the test env
        raise MissingDependencyError(
            "the Redis store needs redis-py: pip install 'promptcache[redis]'"
        ) from exc
    t = target.resilience.timeout
    # redis-py ≥ 6 retries with backoff by default (10 times in 8.x): that multiplies a hung
    # server's cost. Retries are promptcache's (tenacity, idempotent operations only).
    common: dict[str, Any] = {
        "socket_timeout": t,
        "socket_connect_timeout": t,
        "retry": Retry(NoBackoff(), 0),
    }
    if target.kind == "url":
        # Query parameters in the URL (socket_timeout=…) win over these defaults.
        return redis.Redis.from_url(target.url, **common)
    auth: dict[str, Any] = {"username": target.username, "password": target.password}
    # The other query parameters (ssl_ca_certs=…, socket_timeout=…) apply to the connections,
    # typed the way redis-py types them in its own URLs; they win over the defaults above.
    parsers: dict[str, Callable[[str], Any]] = getattr(
        redis.connection, "URL_QUERY_ARGUMENT_PARSERS", {}
    )
    for name, value in target.options.items():
        if not name.startswith("sentinel_"):
            parser = parsers.get(name)
            common[name] = parser(value) if parser is not None else value
    if target.kind == "cluster":
        from redis.cluster import ClusterNode, RedisCluster

        nodes = [ClusterNode(h, p) for h, p in target.hosts]
        return RedisCluster(startup_nodes=nodes, ssl=target.ssl, **auth, **common)
    from redis.sentinel import Sentinel

    sentinel_kwargs: dict[str, Any] = {"socket_timeout": t, "socket_connect_timeout": t}
    if "sentinel_password" in target.options:
        sentinel_kwargs["password"] = target.options["sentinel_password"]
    if "sentinel_username" in target.options:
        sentinel_kwargs["username"] = target.options["sentinel_username"]
    sentinel = Sentinel(list(target.hosts), sentinel_kwargs=sentinel_kwargs, **common)
    return sentinel.master_for(target.service, db=target.db, ssl=target.ssl, **auth, **common)


class RedisStore:
    """A :class:`~promptcache._store.Store` on a Redis server, for fleets of machines.

    Entries expire with Redis' own TTLs; the size bound is Redis' ``maxmemory`` with an
    eviction policy such as ``allkeys-lru`` (promptcache does not enforce one here; such a
    policy may evict a secret kept in Redis too, which only starts a fresh keyspace). Keys
    are ``"promptcache:<keyspace id>:<key>"``. Values are raw bytes.

    ``secret`` is the configured key salt (``PROMPTCACHE_SECRET``), if any; without it the
    store creates a random one in Redis on first use and every machine reads it
    (:meth:`key_secret`). Every call goes through a :class:`CircuitBreaker`.
    """

    blocking = True
    #: Written behind by default: a write is a network round trip, during which a writer thread
    #: holds no GIL (redis-py clients are thread-safe, with a connection pool).
    write_behind = True

    def __init__(
        self,
        client: redis.Redis[bytes],
        *,
        location: str = "redis://",
        resilience: Resilience = DEFAULT_RESILIENCE,
        secret: bytes | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import redis as redis_module

        self._client = client
        self.location = location
        self.hits = 0
        self.misses = 0
        self._secret = secret
        self._from_store = False  # a configured secret is never written to the store
        self._bad_secret_reported = False
        self._prefix: str | None = None if secret is None else self._prefix_for(secret)
        extra: dict[str, Any] = {} if clock is None else {"clock": clock}
        self.breaker = CircuitBreaker(
            resilience,
            name=location,
            unavailable=(redis_module.ConnectionError, redis_module.TimeoutError, OSError),
            retryable=(redis_module.ConnectionError,),
            on_recover=self._republish,
            **extra,
        )

    @classmethod
    def from_url(cls, url: str, *, secret: bytes | None = None) -> RedisStore:
        """Connect lazily to a Redis URL (module docstring); ``secret``: the configured salt.

        Raises :class:`~promptcache.ConfigError` for a malformed URL and
        :class:`~promptcache.MissingDependencyError` without redis-py.
        """
        target = parse_redis_url(url)
        client = _connect(target)
        return cls(client, location=_redacted(url), resilience=target.resilience, secret=secret)

    @staticmethod
    def _prefix_for(secret: bytes) -> str:
        return f"{KEY_PREFIX}{keyspace_id(secret)}:"

    @property
    def client(self) -> redis.Redis[bytes]:
        """The redis-py client (a ``Redis``, a Sentinel master or a ``RedisCluster``)."""
        return self._client

    def call(self, fn: Callable[[], T], *, idempotent: bool) -> T:
        """Run a Redis operation through this store's timeouts, retries and circuit breaker.

        For features built on the store (locks, counters): pass ``idempotent=False`` for
        anything a second attempt could apply twice (``INCR``, ``RPUSH``). Raises
        :class:`~promptcache._store._breaker.StoreDown` when the store is unavailable.
        """
        return self.breaker.call(fn, idempotent=idempotent)

    def _call(self, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        return self.breaker.call(fn, idempotent=idempotent)

    def full_key(self, key: str) -> str:
        """Return the Redis key for ``key`` in this store's keyspace (reads the secret once)."""
        return self._key(key)

    # --- the shared secret -------------------------------------------------------------------

    def key_secret(self) -> bytes:
        """Return the fleet's key salt: the configured one, else the one kept in Redis.

        The first machine to ask creates it (``SET NX`` of 32 random bytes, so two machines
        starting at once agree); every later call reads it back. Cached after the first read.
        """
        if self._secret is None:
            candidate = secrets.token_bytes(SECRET_LEN)

            def read_or_create() -> bytes | None:
                # SET NX then GET is idempotent: a retry reads whatever won.
                self._client.set(SECRET_KEY, candidate, nx=True)
                value = self._client.get(SECRET_KEY)
                return None if value is None else bytes(value)

            value = self._call(read_or_create)
            if value is None or len(value) != SECRET_LEN:
                message = (
                    f"the key secret in {self.location} ({SECRET_KEY!r}) is not {SECRET_LEN} "
                    "bytes: delete that key (a new one starts a fresh keyspace)"
                )
                if self._bad_secret_reported:  # said once; every call would say it again
                    raise StoreDown(message, warn=False)
                self._bad_secret_reported = True
                raise StoreError(message)
            self._secret = value
            self._from_store = True
            self._prefix = self._prefix_for(value)
        return self._secret

    def _republish(self) -> None:
        # A Redis restarted without persistence lost the secret: put ours back (first writer
        # wins), so that machines starting now join the keyspace the running ones use.
        if self._from_store and self._secret is not None:
            self._client.set(SECRET_KEY, self._secret, nx=True)

    def _key(self, key: str) -> str:
        prefix = self._prefix
        if prefix is None:
            self.key_secret()
            prefix = self._prefix
            assert prefix is not None
        return prefix + key

    # --- the Store protocol ------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """Return the bytes under ``key``, or ``None``."""
        full = self._key(key)
        value = self._call(lambda: self._client.get(full))
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        return bytes(value)

    def set(self, key: str, value: bytes, *, ttl: float | None) -> None:
        """Store bytes under ``key`` for ``ttl`` seconds (``None`` or ``inf``: no expiry)."""
        self.set_many([(key, value, ttl)])

    def set_many(self, items: Sequence[tuple[str, bytes, float | None]]) -> None:
        """Store several entries in one round trip (the write-behind thread's batches)."""
        for _, value, _ in items:
            if type(value) is not bytes:
                raise TypeError(f"RedisStore stores bytes only, not {type(value).__name__}")
        commands = [(self._key(k), v, ttl) for k, v, ttl in items]

        def write() -> None:
            # Writing the same bytes under the same keys again is harmless: idempotent.
            pipe = self._client.pipeline(transaction=False)
            for full, value, ttl in commands:
                if ttl is None or ttl == math.inf:
                    pipe.set(full, value)
                elif ttl <= 0:
                    pipe.delete(full)
                else:
                    pipe.set(full, value, px=max(1, round(ttl * 1000)))
            pipe.execute()

        self._call(write)

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        full = self._key(key)
        self._call(lambda: self._client.delete(full))

    def _delete_matching(self, pattern: str) -> int:
        def run() -> int:
            removed = 0
            batch: list[bytes] = []
            for k in self._client.scan_iter(match=pattern, count=1000):
                batch.append(k)
                if len(batch) >= 1000:
                    removed += int(self._client.unlink(*batch))
                    batch.clear()
            if batch:
                removed += int(self._client.unlink(*batch))
            return removed

        return self._call(run)

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key (of this keyspace) starting with ``prefix``; return how many."""
        return self._delete_matching(_GLOB.sub(r"\\\1", self._key(prefix)) + "*")

    def clear(self) -> int:
        """Remove every promptcache entry, in every keyspace (other keys are left alone)."""
        return self._delete_matching(_GLOB.sub(r"\\\1", KEY_PREFIX) + "*")

    def stats(self) -> StoreStats:
        """Count promptcache's entries and their value bytes (a SCAN: meant for the CLI)."""

        def run() -> tuple[int, int]:
            entries = size = 0
            pattern = _GLOB.sub(r"\\\1", KEY_PREFIX) + "*"
            keys = list(self._client.scan_iter(match=pattern, count=1000))
            for start in range(0, len(keys), 1000):
                pipe = self._client.pipeline(transaction=False)
                for k in keys[start : start + 1000]:
                    pipe.strlen(k)
                lengths = pipe.execute()
                entries += sum(1 for n in lengths if n)
                size += sum(int(n) for n in lengths)
            return entries, size

        entries, size = self._call(run)
        return StoreStats(entries, size, self.hits, self.misses, self.location, "redis")

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __repr__(self) -> str:
        return f"RedisStore({self.location!r})"
