"""Run every benchmark in one go (``make bench``); each writes its table to benchmarks/results/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    "bench_local_cache.py",
    "bench_provider_cache.py",
    "bench_gateway.py",
    "bench_planner.py",
    "bench_accountant.py",
    "bench_ledger.py",
]

if __name__ == "__main__":
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script)], check=True)
