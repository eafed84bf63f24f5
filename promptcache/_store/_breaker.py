"""Failure handling for network stores: short timeouts, retries where safe, a circuit breaker.

A shared store is an optimisation: when it is slow or gone, calls must go on at full speed
without it. Three layers, each for one kind of trouble:

- **Timeouts** (:attr:`Resilience.timeout`, applied by the backend to connect and read): a
  Redis that accepts connections and never answers costs at most that long per attempt.
- **Retries** (tenacity, exponential backoff with jitter) only for idempotent operations
  (a read, writing the same bytes under the same key, a delete) and only for errors where a
  second attempt can succeed at once (a refused or reset connection, e.g. a stale pooled
  socket after a Redis restart or fail-over). A timeout is not retried: against a hung
  server the second attempt would only cost another timeout. Non-idempotent operations
  (counters, appends: the fleet ledger's) are never retried.
- **A circuit breaker** (:class:`CircuitBreaker`): after :attr:`Resilience.failures`
  consecutive failures the store is skipped (every call fails at once, a miss); after
  :attr:`Resilience.cooldown` seconds one call probes the store, and a success closes the
  circuit again. A failed probe doubles the cool-down, up to :attr:`Resilience.max_cooldown`.

One :class:`~promptcache.StoreWarning` per outage: the first failure warns (so a user hears at
once that the store is not working), the rest are logged on the ``promptcache`` logger; after
the circuit closed again, the next failure warns again.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

import tenacity

from promptcache._errors import ConfigError, StoreError

__all__ = ["DEFAULT_RESILIENCE", "CircuitBreaker", "Resilience", "StoreDown", "describe"]

T = TypeVar("T")
log = logging.getLogger("promptcache")


def describe(exc: BaseException) -> str:
    """``"TimeoutError: Timeout reading from socket"``: readable in one warning line."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class StoreDown(StoreError):
    """A store failure the circuit breaker has accounted for.

    ``warn`` is true for the one failure per outage the user should hear about (the first);
    the others are quiet misses (logged on the ``promptcache`` logger).
    """

    def __init__(self, message: str, *, warn: bool) -> None:
        super().__init__(message)
        self.warn = warn


@dataclass(frozen=True, slots=True)
class Resilience:
    """How a network store handles failures (see the module docstring).

    Set per store in its URL's query string: ``?timeout=0.25&attempts=2&failures=3&cooldown=5``
    (these names are read by promptcache and removed before the URL reaches redis-py).
    """

    #: Seconds to connect and to wait for each answer (redis-py's ``socket_connect_timeout``
    #: and ``socket_timeout``). A Redis on the same network answers in about a millisecond.
    timeout: float = 0.25
    #: Attempts per idempotent operation, the first included (so 2 = one retry).
    attempts: int = 2
    #: Consecutive failures that open the circuit.
    failures: int = 3
    #: Seconds the circuit stays open before one call probes the store.
    cooldown: float = 5.0
    #: Upper bound of the cool-down, which doubles after each failed probe.
    max_cooldown: float = 60.0

    def __post_init__(self) -> None:
        for name in ("timeout", "cooldown", "max_cooldown"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"store {name} must be a positive number of seconds: {value!r}")
        for name in ("attempts", "failures"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"store {name} must be a positive integer: {value!r}")

    @classmethod
    def from_query(cls, params: dict[str, str]) -> Resilience:
        """Build from URL query parameters (``timeout``, ``attempts``, ``failures``, …)."""
        out: dict[str, float | int] = {}
        for name, kind in (
            ("timeout", float),
            ("attempts", int),
            ("failures", int),
            ("cooldown", float),
            ("max_cooldown", float),
        ):
            if name in params:
                try:
                    out[name] = kind(params[name])
                except ValueError:
                    raise ConfigError(
                        f"store URL: {name}={params[name]!r} is not a number"
                    ) from None
        return cls(**out)  # type: ignore[arg-type]


#: What a store gets unless its URL says otherwise.
DEFAULT_RESILIENCE: Final = Resilience()
#: Query parameters of a store URL that belong to promptcache, not to redis-py.
RESILIENCE_PARAMS: Final = frozenset(
    {"timeout", "attempts", "failures", "cooldown", "max_cooldown"}
)


class CircuitBreaker:
    """Run store operations with retries and a circuit breaker (thread-safe).

    ``unavailable`` are the exception types that mean "the store is not there" (connection
    refused or reset, timeouts); ``retryable`` the subset worth an immediate second attempt
    (never timeouts: the caller leaves its timeout types out, builtin ``TimeoutError`` is
    never retried).
    Other exceptions (a server that answers with an error) pass through unchanged and do not
    count. ``on_recover`` runs once each time the circuit closes after an outage. ``clock``
    and ``sleep`` are injected for tests.
    """

    def __init__(
        self,
        policy: Resilience = DEFAULT_RESILIENCE,
        *,
        name: str,
        unavailable: tuple[type[BaseException], ...],
        retryable: tuple[type[BaseException], ...],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_recover: Callable[[], None] | None = None,
    ) -> None:
        self.policy = policy
        self.on_recover = on_recover
        self.name = name
        self.unavailable = unavailable
        self.retryable = retryable
        self._clock = clock
        self._lock = threading.Lock()
        _live.add(self)
        self._failures = 0  # consecutive
        self._open_until: float | None = None
        self._cooldown = policy.cooldown
        self._probing = False
        self._warned = False  # one warning per outage
        #: Counters for diagnostics and tests.
        self.opened = 0
        self.skipped = 0
        self.retries = 0

        self._sleep = sleep
        self._retrying: tenacity.Retrying | None = None
        if policy.attempts > 1:

            def count_retry(state: tenacity.RetryCallState) -> None:
                self.retries += 1

            self._retrying = tenacity.Retrying(
                # Attempts after the first one, which ran outside tenacity (see _attempt).
                stop=tenacity.stop_after_attempt(policy.attempts - 1),
                # 40 ms, 80 ms, … up to 250 ms, plus up to 20 ms of jitter (machines out of
                # step).
                wait=tenacity.wait_exponential(multiplier=0.02, min=0.04, max=0.25)
                + tenacity.wait_random(0, 0.02),
                retry=tenacity.retry_if_exception(self._worth_retrying),
                before_sleep=count_retry,
                sleep=sleep,
                reraise=True,
            )

    def _worth_retrying(self, exc: BaseException) -> bool:
        # A timeout is the hung-server case: a second attempt would cost another timeout.
        return isinstance(exc, self.retryable) and not isinstance(exc, TimeoutError)

    def _attempt(self, fn: Callable[[], T], idempotent: bool) -> T:
        try:
            # The first attempt runs bare: tenacity costs ~40 µs a call, a Redis GET ~100 µs.
            return fn()
        except self.retryable as exc:
            if not idempotent or self._retrying is None or not self._worth_retrying(exc):
                raise
        self.retries += 1
        self._sleep(0.02 + random.uniform(0, 0.02))
        return self._retrying(fn)

    @property
    def is_open(self) -> bool:
        """Whether calls are being skipped right now (a probe may still be due)."""
        return self._open_until is not None

    def call(self, fn: Callable[[], T], *, idempotent: bool) -> T:
        """Run ``fn`` (retried when ``idempotent``); raise :class:`StoreDown` when unavailable."""
        probe = False
        if self._open_until is not None:
            with self._lock:
                until = self._open_until
                if until is not None:
                    if self._probing or self._clock() < until:
                        self.skipped += 1
                        raise StoreDown(f"{self.name} is skipped (circuit open)", warn=False)
                    self._probing = probe = True
        try:
            result = self._attempt(fn, idempotent)
        except self.unavailable as exc:
            raise self._failed(exc, probe) from exc
        except BaseException:
            if probe:
                with self._lock:
                    self._probing = False
            raise
        if self._failures or probe:
            self._succeeded(probe)
        return result

    def _succeeded(self, probe: bool) -> None:
        with self._lock:
            was_open = self._open_until is not None
            self._failures = 0
            self._open_until = None
            self._cooldown = self.policy.cooldown
            if probe:
                self._probing = False
            if was_open:
                self._warned = False  # the outage is over: the next one is news again
        if was_open:
            log.info("promptcache: the cache store %s answers again; using it", self.name)
            if self.on_recover is not None:
                try:
                    self.on_recover()
                except Exception as exc:  # best effort: the next call will tell
                    log.info("promptcache: after %s came back: %s", self.name, describe(exc))

    def _failed(self, exc: BaseException, probe: bool) -> StoreDown:
        with self._lock:
            self._failures += 1
            if probe:
                self._probing = False
                self._cooldown = min(self._cooldown * 2, self.policy.max_cooldown)
                self._open_until = self._clock() + self._cooldown
            elif self._open_until is None and self._failures >= self.policy.failures:
                self._open_until = self._clock() + self._cooldown
                self.opened += 1
                log.info(
                    "promptcache: the cache store %s failed %d times in a row (%s); skipping it "
                    "for %g s",
                    self.name,
                    self._failures,
                    describe(exc),
                    self._cooldown,
                )
            warn = not self._warned
            self._warned = True
        if not warn:
            log.info("promptcache: the cache store %s failed (%s)", self.name, describe(exc))
        return StoreDown(
            f"promptcache: the cache store {self.name} failed ({describe(exc)}); calls go on "
            f"without it (as misses), and after {self.policy.failures} failures in a row it is "
            f"skipped for {self.policy.cooldown:g} s at a time until it answers again",
            warn=warn,
        )


_live: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()


def _after_fork() -> None:
    # A parent thread may have held a breaker's lock at fork time: the child gets fresh ones.
    for breaker in list(_live):
        breaker._lock = threading.Lock()
        breaker._probing = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
