"""Rendered files: a template per file, named after the file it produces (kolla-style)."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from stackwright.context import HostContext
from stackwright.steps import File

if TYPE_CHECKING:
    from stackwright.releases.base import Release

# API and RPC worker processes per service: the lab's hosts (and the seed's) have 2 cores,
# and Debian's defaults (8-16 uwsgi processes x 32 threads) do not fit (DESIGN §5b).
API_PROCESSES = 2


def rendered(
    release: Release,
    host: HostContext,
    pw: Mapping[str, str],
    path: str,
    *,
    template: str | None = None,
    group: str | None = None,
    root_only: bool = False,
    mode: int = 0o644,
    format: Literal["ini", "text"] = "ini",
    **extra: Any,
) -> File:
    """`path` from `template` (default: its basename + .j2).

    `group`: the file holds passwords its service reads: root:<group> 0640.
    `root_only`: it holds passwords only root reads: root:root 0600.
    """
    content = release.render(
        template or posixpath.basename(path) + ".j2", host, pw, api_processes=API_PROCESSES, **extra
    )
    if group is not None:
        return File(path, content, mode=0o640, group=group, secret=True, format=format)
    if root_only:
        return File(path, content, mode=0o600, secret=True, format=format)
    return File(path, content, mode=mode, format=format)
