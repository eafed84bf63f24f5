"""Print the README's benchmark tables from benchmarks/results/ (keeps README and results in step).

Usage: python benchmarks/readme_tables.py  (paste the output into README.md "What we measured")
"""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _rows(name: str) -> list[list[str]]:
    """The body rows of the first table in a results file."""
    rows: list[list[str]] = []
    for line in (RESULTS / name).read_text().splitlines():
        if not line.startswith("| "):
            if rows:
                break
            continue
        if not line.startswith(("| ---", "| workload", "| API")):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def local_cache() -> str:
    out = [
        "| API | prompt | bare SDK | wrapped miss | wrapped hit | miss / bare | hit / bare |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in _rows("local_cache.md"):
        if len(c) >= 9 and c[2].isdigit():
            out.append(f"| {c[0]} | {c[1]} | {c[3]} ms | {c[4]} ms | {c[5]} ms | {c[6]} | {c[7]} |")
    return "\n".join(out)


def provider_cache(
    models: tuple[str, ...] = ("claude-sonnet-4-5", "gpt-5.5", "gpt-6.1-sol"),
) -> str:
    out = [
        "| workload | model | bare SDK | safe (default) | auto | optimum |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in _rows("provider_cache.md"):
        if len(c) >= 7 and c[1] in models:
            cells = [re.sub(r"\s*\(.*\)", "", v) for v in (c[2], c[4], c[5], c[6])]
            out.append(f"| {c[0]} | {c[1]} | " + " | ".join(cells) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    print(local_cache())
    print()
    print(provider_cache())
