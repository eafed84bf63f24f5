"""``promptcache emulate``: serve the provider emulator until Ctrl-C."""

from __future__ import annotations

import argparse
import sys

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``emulate`` options to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (0 = any free port)")
    parser.add_argument(
        "--latency",
        action="store_true",
        help="simulate time to first token growing with uncached prompt tokens",
    )
    parser.add_argument(
        "--no-bodies", action="store_true", help="do not keep request bodies in /_emulator/calls"
    )


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; return the process exit code."""
    from promptcache.testing._clock import SystemClock
    from promptcache.testing._server import Emulator
    from promptcache.testing._types import LatencyModel

    emu = Emulator(
        host=args.host,
        port=args.port,
        clock=SystemClock(),
        latency=LatencyModel() if args.latency else None,
        record_bodies=not args.no_bodies,
    )
    try:
        emu.start()
    except OSError as exc:
        print(f"promptcache emulate: cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    print(f"promptcache emulator listening on {emu.base_url}", flush=True)
    print(f"  OpenAI:    base_url={emu.openai_base_url}", flush=True)
    print(f"  Anthropic: base_url={emu.anthropic_base_url}", flush=True)
    print(f"  ground truth: GET {emu.base_url}/_emulator/calls   (Ctrl-C to stop)", flush=True)
    try:
        emu.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        emu.close()
    return 0
