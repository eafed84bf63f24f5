"""``promptcache report``: what was spent and saved, from the persisted ledger.

Reads the ledger of ``--dir`` (default ``$PROMPTCACHE_DIR``, else the user cache directory)
and prints a table — requests, local hits, input tokens split into uncached / cache read /
cache write, read share, output, dollars paid, saved by provider caching (net of write
premiums) and avoided by local hits — grouped ``--by`` model, provider, tag, function or day,
then a small chart of daily spend against savings. ``--json`` prints the same numbers for
machines (Decimals as strings, unknown as ``null``).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from promptcache._accounting import Ledger, Summary
from promptcache._accounting._pricing import price_data_version
from promptcache._errors import ConfigError

if TYPE_CHECKING:
    from promptcache._accounting import FleetView

__all__ = ["configure", "parse_when", "render", "run"]

_BY = ("model", "provider", "tag", "function", "day", "api")
_REL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``report`` options to its subparser."""
    parser.add_argument("--dir", help="PromptCache directory (default: $PROMPTCACHE_DIR)")
    parser.add_argument(
        "--store", help="a Redis store URL: report the whole fleet's ledger, summed per minute"
    )
    parser.add_argument(
        "--since", help="only calls since: 7d, 12h, 30m, 'today' or an ISO date/datetime (UTC)"
    )
    parser.add_argument("--until", help="only calls before this time (same forms as --since)")
    parser.add_argument("--by", choices=_BY, default="model", help="group rows (default: model)")
    parser.add_argument("--model", help="only this model")
    parser.add_argument("--tag", help="only calls made under this tag")
    parser.add_argument("--function", help="only calls made from this tracked function")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--no-chart", action="store_true", help="omit the daily chart")


def parse_when(text: str, now: float | None = None) -> float:
    """Parse ``7d``/``12h``/``30m``/``2w``, ``today``, or an ISO date/datetime (UTC if naive)."""
    now = time.time() if now is None else now
    if (m := _REL.match(text)) is not None:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    if text.strip().lower() == "today":
        d = datetime.fromtimestamp(now, UTC)
        return d.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"cannot read time {text!r}: use 7d, 12h, 30m, today or 2026-11-01[T12:00]"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


# ------------------------------------------------------------------ formatting


def _money(value: Decimal | None, known: Decimal | None = None) -> str:
    if value is None:
        # Never print 0 for unknown: show what is known, marked as a lower bound.
        return "?" if known is None else f"{_money(known)}+?"
    sign = "-" if value < 0 else ""
    v = abs(value)
    text = f"{v:,.2f}" if v >= 100 else f"{v:,.4f}"
    return f"{sign}${text}"


def _tokens(n: int) -> str:
    if n >= 10_000_000:
        return f"{n / 1e6:,.0f}M"
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 10_000:
        return f"{n / 1e3:.0f}k"
    if n >= 1_000:
        return f"{n / 1e3:.1f}k"
    return str(n)


def _share(s: Summary) -> str:
    return "-" if s.read_share is None else f"{s.read_share:.0%}"


_COLUMNS = (
    ("requests", ">"),
    ("local hits", ">"),
    ("input", ">"),
    ("uncached", ">"),
    ("cache read", ">"),
    ("cache write", ">"),
    ("read %", ">"),
    ("output", ">"),
    ("paid", ">"),
    ("saved by cache", ">"),
    ("avoided (local)", ">"),
)


def _cells(s: Summary) -> list[str]:
    return [
        str(s.requests),
        str(s.local_hits),
        _tokens(s.input_tokens),
        _tokens(s.uncached_input_tokens),
        _tokens(s.cache_read_tokens),
        _tokens(s.cache_write_tokens),
        _share(s),
        _tokens(s.output_tokens),
        _money(s.cost, s.cost_known),
        _money(s.saved_by_provider_cache),
        _money(s.avoided_by_local_hits),
    ]


def _table(by: str, groups: dict[str, Summary], total: Summary) -> list[str]:
    head = [by, *(c for c, _ in _COLUMNS)]
    rows = [[k, *_cells(v)] for k, v in groups.items()]
    foot = ["total", *_cells(total)]
    widths = [max(len(r[i]) for r in [head, *rows, foot]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        out = [cells[0].ljust(widths[0])]
        out += [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(out).rstrip()

    rule = "  ".join("─" * w for w in widths)
    return [line(head), rule, *(line(r) for r in rows), rule, line(foot)]


def _chart(days: dict[str, Summary], width: int = 32) -> list[str]:
    """Daily paid vs saved (provider cache + local hits), one pair of bars per day."""
    shown = list(days.items())[-14:]
    if not shown:
        return []

    def saved(s: Summary) -> Decimal:
        return s.saved if s.saved is not None else Decimal(0)

    top = max([max(s.cost_known, saved(s)) for _, s in shown] + [Decimal(0)])
    lines = ["Daily spend vs savings (█ paid, ░ saved)"]
    for day, s in shown:
        for label, value, ch in (("paid", s.cost_known, "█"), ("saved", saved(s), "░")):
            n = 0 if top <= 0 or value <= 0 else max(1, round(float(value / top) * width))
            prefix = day if label == "paid" else ""
            lines.append(f"{prefix:<10}  {label:<5} {ch * n:<{width}}  {_money(value)}")
    return lines


def render(ledger: Ledger | FleetView, args: argparse.Namespace, out: TextIO) -> None:
    """Print the table (and chart) for ``args`` to ``out``."""
    since = parse_when(args.since) if args.since else None
    until = parse_when(args.until) if args.until else None
    filters: dict[str, Any] = {"model": args.model, "tag": args.tag, "function": args.function}
    total = ledger.summary(since, until, **filters)
    groups = ledger.group_by(args.by, since, until, **filters)
    if args.json:
        from promptcache._json import dumps

        payload = total.to_json() | {
            "by": args.by,
            "groups": {k: v.to_json() for k, v in groups.items()},
            "since": since,
            "until": until,
            "price_data": price_data_version(),
        }
        out.write(dumps(payload).decode() + "\n")
        return
    span = "all time"
    if since is not None:
        span = "since " + datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M UTC")
    out.write(f"promptcache ledger — {ledger.directory} — {span}\n\n")
    if total.requests == 0:
        out.write("No calls recorded yet.\n")
        return
    out.write("\n".join(_table(args.by, groups, total)) + "\n")
    notes = []
    if total.saved is not None:
        notes.append(
            f"Without any caching these calls would have cost {_money(total.cost_without_cache)};"
            f" you paid {_money(total.cost)} and saved {_money(total.saved)}."
        )
        parts = [total.saved_by_provider_cache, total.avoided_by_local_hits]
        if all(p is not None for p in parts):
            rest = total.saved - sum((p for p in parts if p is not None), Decimal(0))
            if rest:
                # The replaced calls' own provider-cache discount: hits avoided the discounted
                # price, and without provider caching they would have cost that much more.
                sign = "+" if rest > 0 else "-"
                notes.append(
                    f"  = {_money(total.saved_by_provider_cache)} by provider caching"
                    f" + {_money(total.avoided_by_local_hits)} avoided by local hits"
                    f" {sign} {_money(abs(rest))} that provider caching had saved on the calls"
                    " the local hits replaced."
                )
    if total.unknown_cost_requests:
        notes.append(
            f"{total.unknown_cost_requests} call(s) have no known cost (unpriced model, or a "
            "stream without usage: pass stream_options={'include_usage': True}); "
            "'+?' marks totals that leave them out."
        )
    if total.saved_by_provider_cache is not None and total.saved_by_provider_cache < 0:
        notes.append(
            "Provider caching cost more than it saved: cache writes were not read back enough."
        )
    # Costs are priced when a call is recorded; name the rates this promptcache prices with, so
    # a reader can tell which price data the dollar figures came from.
    notes.append(f"Prices: {price_data_version()}, applied when each call was recorded.")
    out.write("\n" + "\n".join(notes) + "\n")
    if not args.no_chart:
        days = ledger.group_by("day", since, until, **filters)
        if len(days) > 1 or args.by != "day":
            chart = _chart(days)
            if chart:
                out.write("\n" + "\n".join(chart) + "\n")


def _directory(arg: str | None) -> Path:
    if arg:
        return Path(arg).expanduser()
    env = os.environ.get("PROMPTCACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("promptcache", appauthor=False))


def run(args: argparse.Namespace) -> int:
    """Run ``promptcache report``; returns the exit status."""
    directory = _directory(args.dir)
    try:
        if args.since:
            parse_when(args.since)
        if args.until:
            parse_when(args.until)
    except ValueError as exc:
        print(f"promptcache report: {exc}", file=sys.stderr)
        return 2
    if args.store:
        return _run_fleet(directory, args)
    if not _has_ledger(directory):
        # Reading must not create a ledger (or a directory) where there is none.
        if not args.json:
            print(f"promptcache ledger — {directory}\n\nNo calls recorded yet.")
            return 0
        from promptcache._json import dumps

        empty = Summary().to_json() | {
            "by": args.by,
            "groups": {},
            "since": None,
            "until": None,
            "price_data": price_data_version(),
        }
        print(dumps(empty).decode())
        return 0
    # A broken ledger (corrupt, unreadable) warns and reports what it still knows; only a
    # ledger written by a newer promptcache is an error.
    ledger = Ledger(directory, rollup_after_days=None)
    try:
        render(ledger, args, sys.stdout)
    except ConfigError as exc:
        print(f"promptcache report: {exc}", file=sys.stderr)
        return 1
    finally:
        ledger.close()
    return 0


def _run_fleet(directory: Path, args: argparse.Namespace) -> int:
    from promptcache._accounting import open_fleet
    from promptcache._errors import StoreError

    try:
        view = open_fleet(directory, args.store)
    except ConfigError as exc:
        print(f"promptcache report: {exc}", file=sys.stderr)
        return 1
    try:
        render(view, args, sys.stdout)
    except (ConfigError, StoreError) as exc:
        print(f"promptcache report: {exc}", file=sys.stderr)
        return 1
    finally:
        view.store.close()
    return 0


def _has_ledger(directory: Path) -> bool:
    """Whether there is a ledger file, or journals of processes that died before making one."""
    if (directory / "ledger.sqlite3").exists():
        return True
    try:
        return any(p.suffix == ".jsonl" for p in (directory / "ledger-journal").iterdir())
    except OSError:
        return False
