"""`stackwright ...` in a child process, as a user runs it; every output is kept for the secret scan
at the end of the session (tests/lab/test_resilience.py)."""

from __future__ import annotations

import subprocess
import sys
import time

SESSION_START = time.time()
OUTPUTS: list[str] = []  # stdout and stderr of every stackwright command the lab tests ran


def cli_argv(*args: str) -> list[str]:
    """The command line of `stackwright ARGS` run by this interpreter (for Popen, a pty, ...)."""
    return [sys.executable, "-c", "from stackwright.cli import main; main()", *args]


def stackwright(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    argv = cli_argv(*args)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    OUTPUTS.extend((proc.stdout, proc.stderr))
    return proc
