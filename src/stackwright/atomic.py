"""Files on this machine are written whole or not at all, and the previous version is kept."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, text: str, *, mode: int, keep_previous: bool) -> None:
    """Write beside the target, fsync, then rename; the old version survives as `.prev`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if keep_previous and path.exists():
            # A hard link keeps the old version without a moment where `path` is missing.
            previous = path.with_name(path.name + ".prev")
            previous.unlink(missing_ok=True)
            os.link(path, previous)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
