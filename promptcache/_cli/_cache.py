"""``promptcache cache``: inspect (``stats``) or empty (``clear``) the local response cache."""

from __future__ import annotations

import argparse
import sys
import warnings

from promptcache._json import dumps

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``stats`` and ``clear`` subcommands and their options."""
    sub = parser.add_subparsers(dest="cache_command", metavar="ACTION")
    sub.required = True
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir",
        metavar="DIR",
        help="promptcache directory (default: $PROMPTCACHE_DIR, else the user cache dir)",
    )
    common.add_argument(
        "--store",
        metavar="URL",
        help="store URL, e.g. redis://host:6379/0 (default: $PROMPTCACHE_STORE, else DIR)",
    )
    stats = sub.add_parser(
        "stats", parents=[common], help="show entries, size and location of the cache"
    )
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    clear = sub.add_parser("clear", parents=[common], help="remove cached responses")
    clear.add_argument(
        "--prefix",
        metavar="PREFIX",
        help="only remove keys starting with PREFIX, e.g. 'v1|openai|' (keys are readable text)",
    )


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def run(args: argparse.Namespace) -> int:
    """Run ``promptcache cache stats|clear``; return the exit status.

    What the store reports on the way (a corrupt database moved aside and rebuilt) is printed
    to stderr as a note; the command itself goes on.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return _run(args)
        finally:
            for w in caught:
                text = str(w.message).removeprefix("promptcache: ")
                print(f"promptcache cache: note: {text}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from promptcache._store import open_store, resolve_directory

    if args.dir is not None and not Path(args.dir).expanduser().is_dir() and not args.store:
        # Inspecting or clearing must not create a cache where a typo pointed.
        print(f"promptcache cache: no cache directory at {args.dir}", file=sys.stderr)
        return 1
    try:
        directory = resolve_directory(args.dir)
        store = open_store(args.store, directory)
    except Exception as exc:  # a bad URL, an unreadable directory: say so, exit non-zero
        print(f"promptcache cache: cannot open the store: {exc}", file=sys.stderr)
        return 1
    try:
        if args.cache_command == "stats":
            st = store.stats()
            if args.json:
                out = {
                    "entries": st.entries,
                    "size_bytes": st.size_bytes,
                    "location": st.location,
                    "backend": st.backend,
                    "directory": str(directory),
                }
                print(dumps(out).decode())
            else:
                print(f"entries:   {st.entries}")
                print(f"size:      {_size(st.size_bytes)} ({st.size_bytes} bytes)")
                print(f"location:  {st.location}")
                print(f"backend:   {st.backend}")
            return 0
        if args.prefix:
            delete_prefix = getattr(store, "delete_prefix", None)
            if delete_prefix is None:
                print(
                    f"promptcache cache: {type(store).__name__} cannot clear by prefix",
                    file=sys.stderr,
                )
                return 1
            removed = int(delete_prefix(args.prefix))
        else:
            removed = store.clear()
        print(
            f"removed {removed} entr{'y' if removed == 1 else 'ies'} from {store.stats().location}"
        )
        return 0
    except Exception as exc:
        print(f"promptcache cache: the store failed: {exc!r}", file=sys.stderr)
        return 1
    finally:
        store.close()
