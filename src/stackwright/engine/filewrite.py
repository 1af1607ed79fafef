"""Writing a file on a host: atomically (temp file beside it, owner and mode set, then `mv`), the
previous version kept under BACKUPS, and a pending-restart marker for every service that reads
it placed before the rename (a run killed in between still restarts them next time)."""

from __future__ import annotations

import base64
import difflib
import shlex

from stackwright.engine.remote import STATE_DIR
from stackwright.steps import File

BACKUPS = f"{STATE_DIR}/backups"
PENDING = f"{STATE_DIR}/pending-restart"
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
true{pending_markers(services)}
mv -f {tmp} {path}
"""


def unified_diff(path: str, old: str, new: str, *, new_file: bool) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile="/dev/null" if new_file else f"{path} (on host)",
        tofile=f"{path} (planned)",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
