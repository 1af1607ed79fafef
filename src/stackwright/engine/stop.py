"""Ctrl-C (SIGINT) or SIGTERM during apply: every host finishes the step it is in, then stops.

Stopping between steps leaves each host in a state a re-run continues from (files are whole,
markers say what still needs a restart) and lets each host release its lock. A second signal
ends the process at once; what runs on the hosts still finishes there (`Remote.run_durable`).
"""

from __future__ import annotations

import os
import signal
import sys


class StopRequest:
    def __init__(self) -> None:
        self.reason = ""  # "SIGINT" once asked to stop

    def __bool__(self) -> bool:
        return bool(self.reason)

    def install(self) -> None:
        import gevent

        for sig in (signal.SIGINT, signal.SIGTERM):
            gevent.signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        if self.reason:
            sys.stderr.write(f"\n{name} again: stopping now (steps running on hosts finish there)\n")
            os._exit(130)
        self.reason = name
        sys.stderr.write(
            f"\n{name}: every host stops after the step it is in (again to stop at once); "
            "run the same apply later to finish\n"
        )
