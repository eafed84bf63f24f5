"""The ``promptcache`` command's entry point (``[project.scripts]``); it lives in ``_cli/``."""

from __future__ import annotations

from promptcache._cli import main

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
