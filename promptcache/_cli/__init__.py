"""The ``promptcache`` command line: demo, report, doctor, cache, emulate.

Each subcommand is a module of this package (``emulate`` stays with the emulator, in
``promptcache.testing``) exposing two functions, ``configure(parser)`` and ``run(args) -> int``;
``main`` only wires them together and imports them on demand, so ``promptcache --help`` stays
fast. ``promptcache.cli`` re-exports ``main``: it is the installed script's entry point.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

# subcommand -> (module providing configure/run, one-line help)
_COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("promptcache._cli._demo", "run the offline demo against the built-in emulator"),
    "report": ("promptcache._cli._report", "show tokens, dollars paid and saved from the ledger"),
    "doctor": ("promptcache._cli._doctor", "check the installation and the cache directory"),
    "cache": ("promptcache._cli._cache", "inspect or clear the local response cache"),
    "emulate": ("promptcache.testing._cli", "serve the offline provider emulator over HTTP"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``promptcache`` command."""
    parser = argparse.ArgumentParser(prog="promptcache", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    chosen = (list(argv) if argv is not None else sys.argv[1:])[:1]
    for name, (module_name, help_text) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen subcommand's module is imported; the others just list their help.
        if chosen == [name]:
            importlib.import_module(module_name).configure(p)
    args = parser.parse_args(argv)
    module = importlib.import_module(_COMMANDS[args.command][0])
    result: int = module.run(args)
    return result
