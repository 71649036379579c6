"""``python -m taskward.audit``: the same command as ``taskward audit``."""

from taskward.audit.cli import main

raise SystemExit(main())
