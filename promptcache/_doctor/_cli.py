"""``promptcache doctor``: the installation checks, then the findings of the persisted history."""

from __future__ import annotations

import argparse

from promptcache._doctor._install import diagnose, print_checks

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the doctor's options."""
    parser.add_argument("--dir", help="cache directory (default: $PROMPTCACHE_DIR or user cache)")


def run(args: argparse.Namespace) -> int:
    """Print the checks; exit 1 if any failed."""
    failed = print_checks(diagnose(getattr(args, "dir", None)))
    return 1 if failed else 0
