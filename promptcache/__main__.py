"""Run the command line with ``python -m promptcache``."""

from promptcache._cli import main

raise SystemExit(main())
