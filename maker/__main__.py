"""``python -m maker``: the same command line as ``maker``."""

from maker.cli import main

raise SystemExit(main())
