"""Run P copies of a worker command; forward SIGTERM/SIGINT to them and wait for all.

python -m systems._launch 2 -- taskward worker --app ...
"""

import signal
import subprocess
import sys

procs = int(sys.argv[1])
argv = sys.argv[sys.argv.index("--") + 1 :]
children = [subprocess.Popen(argv) for _ in range(procs)]


def forward(sig, _frame):
    for child in children:
        if child.poll() is None:
            child.send_signal(sig)


signal.signal(signal.SIGTERM, forward)
signal.signal(signal.SIGINT, forward)
sys.exit(max(child.wait() for child in children))
