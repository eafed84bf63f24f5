"""Print the README's benchmark tables from benchmarks/results/ (keeps README and results in step).

Usage: python benchmarks/readme_tables.py  (paste the output into README.md "What we measured")
"""

from __future__ import annotations

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
        if not line.startswith(("| ---", "| workload", "| API", "|---")):
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


def _section_rows(name: str, heading: str) -> list[list[str]]:
    """The body rows of the first table after ``heading`` in a results file."""
    text = (RESULTS / name).read_text()
    start = text.find(heading)
    rows: list[list[str]] = []
    if start < 0:
        return rows
    for line in text[start:].splitlines()[1:]:
        if not line.startswith("| "):
            if rows:
                break
            continue
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows[2:] if rows and rows[0][0] in ("API", "workload") else rows


def provider_cache(
    targets: tuple[tuple[str, str], ...] = (
        # gpt-5.5 (and the other models) stay in the full table only, as the README says.
        ("messages", "claude-sonnet-5"),
        ("chat", "gpt-6.1-sol"),
        ("responses", "gpt-6.1-sol"),
    ),
) -> str:
    """Selected rows of the provider-cache table, with auto/optimum per variant."""
    out = [
        "| workload | API | model | bare SDK | safe (default) | auto | optimum "
        "| auto / optimum (default · stream · gateway · gateway+stream) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in _rows("provider_cache.md"):
        if len(c) >= 9 and (c[1], c[2]) in targets:
            out.append(f"| {c[0]} | {c[1]} | {c[2]} | {c[3]} | {c[5]} | {c[6]} | {c[7]} | {c[8]} |")
    return "\n".join(out)


def provider_cache_summary() -> str:
    """The per-API summary of the provider-cache benchmark."""
    out = [
        "| API | variant | auto >= 0.95 of optimum | auto mean | auto min "
        "| safe cells with unread writes |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    out += ["| " + " | ".join(c) + " |" for c in _section_rows("provider_cache.md", "## Summary")]
    return "\n".join(out)


if __name__ == "__main__":
    print(local_cache())
    print()
    print(provider_cache())
    print()
    print(provider_cache_summary())
