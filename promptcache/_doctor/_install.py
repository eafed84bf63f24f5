"""Installation checks of ``promptcache doctor``: SDKs, prices, the cache directory and store."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Check", "diagnose", "print_checks"]


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _sdk_checks() -> list[Check]:
    out: list[Check] = []
    found_any = False
    for dist, minimum, extra in (("openai", "3.51", "openai"), ("anthropic", "2.10", "anthropic")):
        v = _version(dist)
        if v is None:
            out.append(
                Check(dist, True, "not installed", f"pip install 'promptcache[{extra}]' to use it")
            )
            continue
        found_any = True
        major_minor = tuple(int(p) for p in v.split(".")[:2] if p.isdigit())
        wanted = tuple(int(p) for p in minimum.split("."))
        ok = major_minor >= wanted
        out.append(Check(dist, ok, v, "" if ok else f"upgrade to >= {minimum}"))
    if not found_any:
        out.append(
            Check(
                "sdk",
                False,
                "neither openai nor anthropic is installed",
                "pip install 'promptcache[all]'",
            )
        )
    return out


def _prices_check() -> Check:
    v = _version("genai-prices")
    if v is None:
        return Check("genai-prices", False, "missing: costs unknown", "pip install genai-prices")
    return Check("genai-prices", True, v)


def _tokenizer_check() -> Check:
    if importlib.util.find_spec("tiktoken") is None:
        return Check("tokenizer", True, "tiktoken not installed: calibrated estimate in use")
    return Check("tokenizer", True, "tiktoken installed (used when its vocabulary is present)")


def _directory_checks(directory: str | None) -> list[Check]:
    from promptcache._store import open_store, resolve_directory

    try:
        path = resolve_directory(directory)
    except OSError as exc:
        return [Check("directory", False, f"cannot create: {exc}", "set PROMPTCACHE_DIR")]
    out = [Check("directory", True, str(path))]
    mode = stat.S_IMODE(path.stat().st_mode)
    private = mode & 0o077 == 0
    out.append(
        Check(
            "permissions",
            private,
            oct(mode),
            "" if private else f"chmod 700 {path} (cache entries may hold model output)",
        )
    )
    try:
        store = open_store(os.environ.get("PROMPTCACHE_STORE"), path)
        try:
            probe_key = "promptcache-doctor-probe"
            store.set(probe_key, b"ok", ttl=60)
            ok = store.get(probe_key) == b"ok"
            store.delete(probe_key)
            stats = store.stats()
        finally:
            store.close()
        out.append(
            Check("store", ok, f"{stats.backend}: {stats.entries} entries, {stats.size_bytes} B")
        )
    except Exception as exc:  # doctor reports every failure instead of raising it
        out.append(Check("store", False, f"{type(exc).__name__}: {exc}", "see the error above"))
    return out


def diagnose(directory: str | None = None) -> list[Check]:
    """Run every check and return the results (nothing is raised)."""
    checks = [
        Check("python", sys.version_info >= (3, 11), sys.version.split()[0]),
        Check("promptcache", True, _version("promptcache") or "source tree"),
    ]
    steps: list[Callable[[], list[Check]]] = [
        _sdk_checks,
        lambda: [_prices_check()],
        lambda: [_tokenizer_check()],
        lambda: _directory_checks(directory),
    ]
    for step in steps:
        checks.extend(step())
    return checks


def print_checks(checks: list[Check]) -> int:
    """Print the checks; return how many failed."""
    width = max(len(c.name) for c in checks)
    for c in checks:
        mark = "ok " if c.ok else "FAIL"
        line = f"{mark}  {c.name.ljust(width)}  {c.detail}"
        if c.fix:
            line += f"  -> {c.fix}"
        print(line)
    failed = [c for c in checks if not c.ok]
    print(f"\n{len(checks) - len(failed)} ok, {len(failed)} failed")
    return len(failed)
