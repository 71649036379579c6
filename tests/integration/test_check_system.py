""".ci/check-system, which ``make test`` runs first: one line naming what is missing, exit 1."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "check-system"


def test_a_missing_package_is_named_in_one_line_with_its_install_command() -> None:
    # No PATH: redis-server has no fixed place to be found at, so Redis is always missing;
    # the others may be found where Debian puts them (as in .ci/run).
    done = subprocess.run(
        ["/bin/bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/nonexistent"},
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith("make test needs system packages that are missing: ")
    assert "redis-server redis-tools" in line
    assert "apt-get install -y --no-install-recommends " in line
    assert "bash .ci/run" in line
    named = line.split("missing: ", 1)[1].split(".", 1)[0].split()
    assert line.rstrip(")").endswith("then runs make test")
    assert f"--no-install-recommends {' '.join(named)} (or run" in line
