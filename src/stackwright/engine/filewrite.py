"""Writing a file on a host: atomically (temp file beside it, owner and mode set, then `mv`), the
previous version kept under BACKUPS (for a file holding secrets, the last SECRET_BACKUPS only),
and a pending-restart marker for every service that reads it placed before the rename (a run
killed in between still restarts them next time)."""

from __future__ import annotations

import base64
import difflib
import shlex
from collections import Counter

from stackwright.engine.remote import STATE_DIR
from stackwright.steps import File

BACKUPS = f"{STATE_DIR}/backups"
PENDING = f"{STATE_DIR}/pending-restart"
SECRET_BACKUPS = 3  # old passwords should not pile up on the host
UNIT_DIRS = ("/etc/systemd/system/", "/lib/systemd/system/")


def owner_hint(step: File) -> str:
    return f"the owner {step.owner}:{step.group} must exist on the host (its package installs it)"


def pending_markers(services: list[str]) -> str:
    if not services:
        return ""
    touches = " ".join(shlex.quote(f"{PENDING}/{s}") for s in services)
    return f" && mkdir -p {PENDING} && touch {touches}"


def write_script(step: File, services: list[str]) -> str:
    path = shlex.quote(step.path)
    tmp = shlex.quote(f"{step.path}.stackwright-new")
    backup = shlex.quote(f"{BACKUPS}{step.path}")
    payload = base64.b64encode(step.content.encode()).decode()
    return f"""set -e
umask 077
mkdir -p "$(dirname {path})"
base64 -d > {tmp} <<'STACKWRIGHT_EOF'
{payload}
STACKWRIGHT_EOF
chown {step.owner}:{step.group} {tmp}
chmod {step.mode:04o} {tmp}
if [ -e {path} ]; then
  mkdir -p "$(dirname {backup})"
  cp -p {path} {backup}.$(date +%Y%m%dT%H%M%S)
fi
{prune_backups(backup) if step.secret else ""}true{pending_markers(services)}
mv -f {tmp} {path}
"""


def prune_backups(backup: str, keep: int = SECRET_BACKUPS) -> str:
    """Shell that removes all but the newest `keep` of `backup.<timestamp>` (the glob sorts them
    oldest first); `backup` is already shell-quoted."""
    return f"""set -- {backup}.*
while [ $# -gt {keep} ]; do rm -f -- "$1"; shift; done
"""


def secret_changes(old: str, new: str) -> str:
    """How much a secret file changes, without its content: "secret file changes: 2 lines (+1 -1)".
    Lines counted as a multiset (what is in one file and not the other), not aligned by a diff:
    a package's default file of thousands of lines made difflib the engine's largest CPU cost."""
    before, after = Counter(old.splitlines()), Counter(new.splitlines())
    added, removed = sum((after - before).values()), sum((before - after).values())
    return f"secret file changes: {added + removed} lines (+{added} -{removed}), not shown"


def unified_diff(path: str, old: str, new: str, *, new_file: bool) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile="/dev/null" if new_file else f"{path} (on host)",
        tofile=f"{path} (planned)",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
