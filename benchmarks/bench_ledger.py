"""The ledger's cost per recorded call, and what a SIGKILL at full call rate loses.

Two figures, for this checkout ("after") and for an older checkout given with ``--before``
(e.g. a ``git worktree`` of the commit before the journal; without it, the figures measured on
commit a61b5f7 below are shown):

* **µs per record**: mean wall time of ``Ledger.append`` over many calls, median of 5 runs:
  the call alone (the background fold held off), and the calls plus folding them into SQLite
  (what a saturated process pays in all); the same for
  ``LedgerAccountant.record_local_hit`` (the local-hit path's whole accounting).
* **records lost per SIGKILL**: a child records local hits at full rate and writes one byte to
  a pipe after each; it is SIGKILLed after a random 0.3–1.3 s; the ledger is reopened and
  compared with the count the child reported. Repeated ``--kills`` times.

    .venv/bin/python benchmarks/bench_ledger.py [--before ../base] [--kills 5]

Prints a markdown table and writes it to ``benchmarks/results/ledger.md``. Takes < 1 min.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Measured with this script (--before) on commit a61b5f7, the in-memory buffer flushed every
# second or 256 records: (append µs alone, with fold, record_local_hit µs with fold, mean
# records lost per kill, kills, share of the calls made that were lost).
BEFORE = (0.65, 8.16, 10.28, 1567.0, 5, 0.031)

_TIMING = textwrap.dedent(
    """
    import gc, json, statistics, sys, tempfile, time
    from promptcache._accounting import LedgerAccountant
    from promptcache._api import Api, RequestInfo
    try:
        from promptcache._accounting._ledger import Record
    except ImportError:  # a --before checkout from when the ledger was promptcache._ledger
        from promptcache._ledger import Record

    N = int(sys.argv[1])
    rec = Record(1.8e9, "openai.chat", "openai", "gpt-6.1-sol", "app.ask", ("web",), "t-1a2b",
                 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15300000000, 29000000000)
    info = RequestInfo(Api.OPENAI_CHAT, "https://api.openai.com/v1", "gpt-6.1-sol", "t", False)
    meta = {"v": 1, "api": "openai.chat", "provider": "openai", "model": "gpt-6.1-sol",
            "usage": None, "cost": "0.0153", "cost_without_provider_cache": "0.029"}

    def per_call(fn, ledger, *, fold):
        # Median µs per call; with fold, the time to fold the calls into SQLite counts too
        # (else the background fold is held off while the calls run).
        # the lock folding holds: ``_io`` in the journal ledger, ``_lock`` before it
        lock = getattr(ledger, "_io", None) or ledger._lock
        runs = []
        for _ in range(5):
            ledger.flush()
            gc.collect()
            if not fold:
                lock.acquire()
            t0 = time.perf_counter_ns()
            for _ in range(N):
                fn()
            if fold:
                ledger.flush()
            runs.append((time.perf_counter_ns() - t0) / N / 1000)
            if not fold:
                lock.release()
        return statistics.median(runs)

    with tempfile.TemporaryDirectory() as d:
        acc = LedgerAccountant(d)
        ledger = acc.ledger
        append = per_call(lambda: ledger.append(rec), ledger, fold=False)
        total = per_call(lambda: ledger.append(rec), ledger, fold=True)
        hit = per_call(lambda: acc.record_local_hit(info, meta), ledger, fold=True)
        acc.close()
    print(json.dumps([append, total, hit]))
    """
)

_KILLED = textwrap.dedent(
    """
    import os, sys
    from promptcache._accounting import LedgerAccountant
    from promptcache._api import Api, RequestInfo
    acc = LedgerAccountant(sys.argv[1])
    info = RequestInfo(Api.OPENAI_CHAT, "https://api.openai.com/v1", "gpt-6.1-sol", "t", False)
    meta = {"v": 1, "model": "gpt-6.1-sol", "provider": "openai", "cost": "0.0153",
            "cost_without_provider_cache": "0.029"}
    while True:
        acc.record_local_hit(info, meta)
        os.write(1, b".")
    """
)

_COUNT = textwrap.dedent(
    """
    import sys
    try:
        from promptcache._accounting._ledger import Ledger
    except ImportError:  # a --before checkout from when the ledger was promptcache._ledger
        from promptcache._ledger import Ledger
    ledger = Ledger(sys.argv[1])
    print(ledger.summary().requests)
    ledger.close()
    """
)


def _env(root: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(root))


def timing(root: Path, n: int) -> tuple[float, float, float]:
    """µs per ``append`` (alone; with its fold), per ``record_local_hit`` (with its fold)."""
    out = subprocess.run(
        [sys.executable, "-c", _TIMING, str(n)],
        env=_env(root), cwd=root, capture_output=True, text=True, check=True,
    )  # fmt: skip
    append, total, hit = json.loads(out.stdout)
    return float(append), float(total), float(hit)


def lost_per_kill(root: Path, kills: int, rng: random.Random) -> tuple[list[int], int]:
    """Records lost by each of ``kills`` SIGKILLs of a child recording at full rate, and the
    number of calls the children made in all."""
    losses = []
    made = 0
    for _ in range(kills):
        with tempfile.TemporaryDirectory() as d:
            proc = subprocess.Popen(
                [sys.executable, "-c", _KILLED, d],
                stdout=subprocess.PIPE, env=_env(root), cwd=root,
            )  # fmt: skip
            assert proc.stdout is not None
            fd = proc.stdout.fileno()
            reported = len(os.read(fd, 65536))  # the child is up and recording
            stop = time.monotonic() + 0.3 + rng.random()
            while time.monotonic() < stop:
                reported += len(os.read(fd, 65536))
            os.kill(proc.pid, signal.SIGKILL)
            while chunk := os.read(fd, 65536):
                reported += len(chunk)
            proc.wait()
            proc.stdout.close()
            out = subprocess.run(
                [sys.executable, "-c", _COUNT, d],
                env=_env(root), cwd=root, capture_output=True, text=True, check=True,
            )  # fmt: skip
            losses.append(reported - int(out.stdout))
            made += reported
    return losses, made


def main() -> None:
    """Print the table and write it to benchmarks/results/ledger.md."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, help="checkout of the code to compare with")
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--n", type=int, default=100_000, help="calls per timing run")
    args = ap.parse_args()
    rng = random.Random(1)
    after_t = timing(ROOT, args.n)
    after_l, after_made = lost_per_kill(ROOT, args.kills, rng)
    if args.before is not None:
        before_t = timing(args.before.resolve(), args.n)
        before_l, before_made = lost_per_kill(args.before.resolve(), args.kills, rng)
        b_lost, b_kills = sum(before_l) / len(before_l), len(before_l)
        b_share = sum(before_l) / before_made
        source = f"the checkout `{args.before}`, measured in the same run"
    else:
        before_t = BEFORE[:3]
        b_lost, b_kills, b_share = BEFORE[3], int(BEFORE[4]), BEFORE[5]
        source = "commit a61b5f7 (figures kept in the script)"
    lines = [
        "# Ledger: cost per recorded call and records lost per SIGKILL",
        "",
        "Command: `.venv/bin/python benchmarks/bench_ledger.py --before <checkout>`. "
        f"'before' = {source}: records buffered in memory, flushed every second or 256 "
        "records. 'after' = one `os.write` of a JSON line to a per-process journal per "
        "record, folded into SQLite in the background. µs: median of 5 runs × "
        f"{args.n:,} calls; losses: a child recording local hits at full rate, SIGKILLed "
        "after 0.3–1.3 s, ledger reopened and compared with what the child reported "
        "(-1: the record was persisted, the kill came before the child could report it).",
        "",
        "| figure | before | after |",
        "|---|---|---|",
        f"| `Ledger.append` µs per record, the call alone | {before_t[0]:.2f} | {after_t[0]:.2f} |",
        f"| `Ledger.append` µs per record, folding into SQLite included | {before_t[1]:.2f} | "
        f"{after_t[1]:.2f} |",
        f"| `record_local_hit` µs per call, folding included | {before_t[2]:.2f} | "
        f"{after_t[2]:.2f} |",
        f"| records lost per SIGKILL (mean over {b_kills} / {len(after_l)} kills) | "
        f"{b_lost:,.0f} ({b_share:.1%} of the calls made) | {sum(after_l) / len(after_l):.1f} "
        f"(each: {after_l}; {sum(after_l) / after_made:.4%}) |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    (ROOT / "benchmarks" / "results" / "ledger.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
