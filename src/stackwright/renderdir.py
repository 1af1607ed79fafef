"""`render --out DIR`: every host's files under DIR/<host>/<real path>."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from stackwright.atomic import atomic_write
from stackwright.steps import ClusterPlan
from stackwright.yamlsource import UserError


def write_rendered(plan: ClusterPlan, hosts: Iterable[str], out_dir: Path) -> int:
    """Write files with their planned mode, but never readable by others when they hold secrets."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is a file — give a directory")
    count = 0
    for host in hosts:
        root = out_dir / host
        for file in plan.hosts[host].files().values():
            target = root / file.path.lstrip("/")
            mode = 0o600 if file.secret else file.mode & 0o755
            atomic_write(target, file.content, mode=mode, keep_previous=True)
            count += 1
    return count
