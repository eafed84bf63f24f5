"""Run the command line with ``python -m promptcache``."""

from promptcache.cli import main

raise SystemExit(main())
