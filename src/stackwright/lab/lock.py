"""One `lab` command at a time per lab: an flock beside the lab's directory, waited for (bounded).

with lab_lock(layout):          # /var/lib/stackwright/lab/locks/<lab-id>.lock
    ...                         # up / down / reboot
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from stackwright.lab.layout import STATE_ROOT, LabLayout
from stackwright.lab.system import HostCommandError
from stackwright.polling import poll

LOCK_WAIT = 600.0


@contextmanager
def file_lock(path: Path, what: str, timeout: float = LOCK_WAIT) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:

        def locked() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        if not poll(locked, within_s=timeout, every_s=0.2):
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise HostCommandError(
                f"gave up after {timeout:.0f} s waiting for {what} (held by PID {holder}, {path})"
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def lab_lock(layout: LabLayout, timeout: float = LOCK_WAIT) -> AbstractContextManager[None]:
    return file_lock(
        STATE_ROOT / "locks" / f"{layout.lab_id}.lock", f"another `lab` command on {layout.lab_id}", timeout
    )
