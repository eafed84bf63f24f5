"""``promptcache doctor``: the installation checks, then the findings of the persisted history."""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import orjson

from promptcache._doctor import _history
from promptcache._doctor._findings import Finding
from promptcache._doctor._install import diagnose, print_checks

__all__ = ["configure", "parse_since", "run"]

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the doctor's options."""
    parser.add_argument("--dir", help="cache directory (default: $PROMPTCACHE_DIR or user cache)")
    parser.add_argument("--json", action="store_true", help="print checks and findings as JSON")
    parser.add_argument(
        "--since",
        help="only findings seen since then: a span (30m, 12h, 7d) or an ISO date/time",
    )


def parse_since(text: str, now: float) -> float:
    """Turn ``--since`` (``30m``, ``12h``, ``7d`` or an ISO date/time) into epoch seconds."""
    m = _SPAN.match(text)
    if m:
        return now - float(m.group(1)) * _UNIT[m.group(2)]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SystemExit(
            f"promptcache doctor: --since {text!r} is not 30m/12h/7d or an ISO date"
        ) from None
    return when.timestamp()


def _usd(f: Finding) -> str:
    return "?" if f.cost is None else f"${f.cost:.4f}"


def _where(f: Finding) -> str:
    ev = f.evidence
    if f.kind == "prefix_changed":
        at = ev.block or "?"
        if ev.char_offset is not None:
            at += f" @char {ev.char_offset}"
        if ev.token_offset is not None:
            at += f" (~token {ev.token_offset})"
        if ev.volatile:
            at += f", {ev.volatile}"
        return at
    if ev.fields:
        return ", ".join(ev.fields)
    if ev.gap_s is not None and ev.ttl_s is not None:
        return f"gap {ev.gap_s:.0f}s > ttl {ev.ttl_s:.0f}s"
    if ev.min_tokens is not None:
        return f"~{ev.prefix_tokens} < {ev.min_tokens} tokens"
    if ev.rate_per_min is not None:
        return f"{ev.rate_per_min:.0f}/min"
    if ev.host is not None:
        return ev.host
    if ev.writes is not None:
        return f"{ev.written_tokens} tokens unread"
    if ev.breakpoints is not None:
        return f"{ev.breakpoints} breakpoints"
    return ""


def _table(findings: list[Finding]) -> None:
    head = ("kind", "family", "model", "calls", "missed tok", "cost", "where / what")
    rows = [
        (f.kind, f.family, f.model, str(f.count), str(f.missed_tokens), _usd(f), _where(f))
        for f in findings
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print()
    for f in findings:
        print(f"- {f.kind} [{f.family}]: {f.summary}")
        ev = f.evidence
        if ev.before is not None or ev.after is not None:
            print(f"    before: {ev.before!r}")
            print(f"    after:  {ev.after!r}")
        if ev.provider_reason:
            print(f"    provider says: {ev.provider_reason}")
        print(f"    fix: {f.fix}")


def run(args: argparse.Namespace) -> int:
    """Print the checks and the explained misses; exit 1 if a check failed."""
    checks = diagnose(getattr(args, "dir", None))
    directory = next((Path(c.detail) for c in checks if c.name == "directory" and c.ok), None)
    findings = _history.load(directory) if directory is not None else []
    since = getattr(args, "since", None)
    if since:
        cutoff = parse_since(since, time.time())
        findings = [f for f in findings if f.last_seen >= cutoff]
    findings.sort(key=lambda f: (f.cost or 0, f.count), reverse=True)
    failed = sum(1 for c in checks if not c.ok)
    if getattr(args, "json", False):
        doc = {
            "checks": [asdict(c) for c in checks],
            "findings": [f.to_json() for f in findings],
        }
        print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return 1 if failed else 0
    print_checks(checks)
    print()
    if not findings:
        print("No provider cache misses explained" + (f" since {since}." if since else "."))
        return 1 if failed else 0
    total = sum((f.cost for f in findings if f.cost is not None), start=Decimal(0))
    print(
        f"Provider cache misses explained ({len(findings)} findings, "
        f"${total:.4f} lost; history in {directory}):\n"
    )
    _table(findings)
    return 1 if failed else 0
