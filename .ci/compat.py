"""The SDK compatibility matrix behind ``make compat`` (run by ``make test``, so by CI).

Two environments, each its own venv (``.venv-compat-<env>``, made by the Makefile):

- ``lowest``: each SDK pinned to the lower bound that pyproject.toml's ``all`` extra states, and
  httpx2 (the HTTP client under both SDKs and our transport) to the lower bound of our
  ``dependencies``, so the bounds we publish are the ones we test (read from there, never
  copied here);
- ``newest``: the same packages upgraded to the newest release the package index offers.

``python .ci/compat.py pins ENV`` prints the pip arguments that make ENV (run by the interpreter
that builds the venv); ``python .ci/compat.py run ENV`` (run by the venv's own interpreter)
prints the installed versions, runs the compatibility selection (``pytest --compat``, chosen in
tests/conftest.py) and ends with a one-line summary; it exits non-zero on any failure.
"""

from __future__ import annotations

import re
import sys
import time
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The packages whose versions make an environment: the two SDKs we wrap and the HTTP client
# they (and our transport) run on.
PINNED = ("openai", "anthropic", "httpx2")
ENVS = ("lowest", "newest")
_LOWER_BOUND = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*(?:,|$)")


def lower_bounds() -> dict[str, str]:
    """Return the lower bound of each ``PINNED`` package as pyproject.toml states it.

    The SDKs' bounds come from the ``all`` extra (which names every SDK), httpx2's from
    ``dependencies``.
    """
    with (ROOT / "pyproject.toml").open("rb") as f:
        project = tomllib.load(f)["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["all"]]
    bounds: dict[str, str] = {}
    for requirement in requirements:
        match = _LOWER_BOUND.match(requirement)
        if match and match.group(1).lower() in PINNED:
            bounds[match.group(1).lower()] = match.group(2)
    missing = [name for name in PINNED if name not in bounds]
    if missing:
        raise SystemExit(f"compat: pyproject.toml states no '>=' lower bound for {missing}")
    return {name: bounds[name] for name in PINNED}


def pins(env: str) -> list[str]:
    """Return the pip arguments (beyond the package itself) that make ``env``."""
    if env == "lowest":
        return [f"{name}=={version}" for name, version in lower_bounds().items()]
    return ["--upgrade", *PINNED]


def installed() -> dict[str, str]:
    """Return the installed version of each ``PINNED`` package."""
    return {name: metadata.version(name) for name in PINNED}


_COUNTED = ("passed", "failed", "error", "xfailed", "skipped")


class _Tally:
    """A pytest plugin that keeps the run's outcome counts for the summary line."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(_COUNTED, 0)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for key in _COUNTED:
            self.counts[key] = len(terminalreporter.stats.get(key, []))


def run(env: str) -> int:
    """Run the compatibility selection in this interpreter's environment; return the exit code."""
    import pytest

    versions = installed()
    shown = ", ".join(f"{name} {version}" for name, version in versions.items())
    print(f"compat {env}: {shown}", flush=True)
    if env == "lowest":
        # A resolver that quietly picked another release would make this run prove nothing.
        wrong = [n for n, v in lower_bounds().items() if _release(versions[n]) != _release(v)]
        if wrong:
            print(f"compat {env} FAILED: {wrong} not at pyproject.toml's lower bound", flush=True)
            return 1
    tally = _Tally()
    start = time.monotonic()
    code = pytest.main(["-q", "-p", "no:cacheprovider", "--compat", str(ROOT / "tests")], [tally])
    seconds = time.monotonic() - start
    c = tally.counts
    ok = code == 0 and c["passed"] > 0
    print(
        f"compat {env} {'ok' if ok else 'FAILED'}: {shown}: {c['passed']} passed,"
        f" {c['failed'] + c['error']} failed, {c['xfailed']} xfailed, {c['skipped']} skipped"
        f" in {seconds:.1f}s",
        flush=True,
    )
    return 0 if ok else int(code) or 1


def _release(version: str) -> tuple[int, ...]:
    # "3.51" and "3.51.0" name one release (PEP 440 pads with zeros).
    parts = [int(p) for p in version.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def main(argv: list[str]) -> int:
    """Dispatch ``pins ENV`` or ``run ENV``."""
    if len(argv) != 2 or argv[0] not in ("pins", "run") or argv[1] not in ENVS:
        print(f"usage: compat.py pins|run {'|'.join(ENVS)}", file=sys.stderr)
        return 2
    command, env = argv
    if command == "pins":
        print(" ".join(pins(env)))
        return 0
    return run(env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
