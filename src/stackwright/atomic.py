"""Files on this machine are written whole or not at all: one helper for every write.

    atomic_write(path, text, mode=0o600, keep_previous=True)      a file of ours
    with atomic_writer(path, mode=0o644) as f: f.write(block)     streamed (the apt proxy's cache)
    atomic_write_beneath(root, "etc/hostname", text, mode=0o644)  inside a container's root

A temporary file is created beside the target with O_EXCL (never an existing file or a link
planted under a fixed name), filled, fsynced, given its mode, then renamed over the target; the
previous version can be kept as `<name>.prev` (a hard link, so the target never goes missing).
Beneath a container's root no symbolic link is followed, not even in the directories on the way:
whoever is root inside could otherwise point a path at this machine's own files.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

TMP_PREFIX = ".part-"  # what a write cut short leaves behind (the apt proxy sweeps old ones)
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def atomic_write(path: Path, data: str | bytes, *, mode: int, keep_previous: bool = False) -> None:
    with atomic_writer(path, mode=mode, keep_previous=keep_previous) as handle:
        handle.write(data.encode() if isinstance(data, str) else data)


@contextlib.contextmanager
def atomic_writer(
    path: Path, *, mode: int, keep_previous: bool = False, sync: bool = True
) -> Iterator[BinaryIO]:
    """A binary file that replaces `path` when the block ends without an exception. `sync=False`
    skips the fsync, for caches whose loss in a crash costs only a download."""
    path.parent.mkdir(parents=True, exist_ok=True)
    directory = os.open(path.parent, _DIR)
    try:
        with _replacing(directory, path.name, mode, keep_previous, sync) as handle:
            yield handle
    finally:
        os.close(directory)


def atomic_write_beneath(
    root: Path, relative: str, data: str | bytes, *, mode: int, dir_mode: int = 0o755
) -> None:
    """Write `root/relative` (directories made with `dir_mode` as needed) without following any
    link below `root`; a link on the way is an error (OSError naming the path)."""
    *parents, name = _parts(relative)
    directory = _open_beneath(root, parents, create=dir_mode)
    try:
        with _replacing(directory, name, mode, keep_previous=False, sync=True) as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
    finally:
        os.close(directory)


def sparse_file_beneath(root: Path, relative: str, size: int, *, dir_mode: int = 0o755) -> bool:
    """Make `root/relative` an empty sparse file of `size` bytes (0600) unless it exists; no link
    below `root` is followed. True when it was made."""
    *parents, name = _parts(relative)
    directory = _open_beneath(root, parents, create=dir_mode)
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=directory)  # fmt: skip
    except FileExistsError:
        return False
    finally:
        os.close(directory)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)
    return True


def read_beneath(root: Path, relative: str) -> bytes | None:
    """The content of `root/relative`, None if it is missing; links below `root` are not followed."""
    *parents, name = _parts(relative)
    try:
        directory = _open_beneath(root, parents, create=None)
    except FileNotFoundError:
        return None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
    except FileNotFoundError:
        return None
    finally:
        os.close(directory)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def _parts(relative: str) -> list[str]:
    parts = [p for p in PurePosixPath(relative).parts if p != "/"]
    if not parts or any(p in (".", "..") for p in parts):
        raise ValueError(f"{relative!r} is not a plain path below a root")
    return parts


def remove_beneath(root: Path, relative_dir: str, pattern: str) -> list[str]:
    """Remove the entries of `root/relative_dir` whose names match `pattern` (fnmatch); no link
    below `root` is followed. Returns the names removed."""
    import fnmatch

    try:
        directory = _open_beneath(root, _parts(relative_dir), create=None)
    except FileNotFoundError:
        return []
    try:
        names = sorted(n for n in os.listdir(directory) if fnmatch.fnmatchcase(n, pattern))
        for name in names:
            os.unlink(name, dir_fd=directory)
        return names
    finally:
        os.close(directory)


def _open_beneath(root: Path, parents: list[str], *, create: int | None) -> int:
    """A descriptor of `root/parents...`, each step opened without following a link; missing
    directories are made with mode `create` (None: FileNotFoundError)."""
    directory = os.open(root, _DIR)
    try:
        for part in parents:
            if create is not None:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, create, dir_fd=directory)
            try:
                inner = os.open(part, _DIR | os.O_NOFOLLOW, dir_fd=directory)
            except OSError as exc:
                if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                raise OSError(
                    exc.errno, f"{root}: {part} on the way is a symbolic link or a file, not a directory"
                ) from None
            os.close(directory)
            directory = inner
    except BaseException:
        os.close(directory)
        raise
    return directory


@contextlib.contextmanager
def _replacing(directory: int, name: str, mode: int, keep_previous: bool, sync: bool) -> Iterator[BinaryIO]:
    tmp = f"{TMP_PREFIX}{secrets.token_hex(6)}-{name}"
    fd = os.open(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=directory
    )
    try:
        os.fchmod(fd, mode)  # exact, whatever the umask
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        if keep_previous and _is_file(directory, name):
            previous = name + ".prev"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(previous, dir_fd=directory)
            os.link(name, previous, src_dir_fd=directory, dst_dir_fd=directory, follow_symlinks=False)
        os.replace(tmp, name, src_dir_fd=directory, dst_dir_fd=directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=directory)
        raise


def _is_file(directory: int, name: str) -> bool:
    try:
        return os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode & 0o170000 == 0o100000
    except FileNotFoundError:
        return False
