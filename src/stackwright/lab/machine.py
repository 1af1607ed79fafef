"""What `lab up` changes on this machine outside the labs' own directories, remembered so that the
`lab down` of the last lab puts it back.

    /var/lib/stackwright/lab/machine.json
    {"inotify_max_user_instances": {"before": 128, "set": 384},
     "ssh_include": {"config_existed": true}}

Only the first change of each kind is remembered (a second lab raising the limit further keeps
the value from before the first); a value someone else changed since is left alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stackwright.atomic import atomic_write
from stackwright.lab.layout import SSH_DIR, STATE_ROOT

MACHINE_STATE = STATE_ROOT / "machine.json"
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_PER_HOST = 16  # a booted host's systemd, journald, logind, networkd, dbus use about 8
SSH_CONFIG = SSH_DIR / "config"
LAB_SSH_DIR = SSH_DIR / "stackwright-lab"
INCLUDE_LINE = f"Include {LAB_SSH_DIR}/*.conf"


def _load(state: Path) -> dict[str, Any]:
    try:
        data = json.loads(state.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember(state: Path, key: str, value: Any) -> None:
    data = _load(state)
    if key not in data:
        data[key] = value
        atomic_write(state, json.dumps(data, indent=2) + "\n", mode=0o600)


def ensure_inotify_instances(
    hosts: int, *, sysctl: Path = INOTIFY_INSTANCES, state: Path = MACHINE_STATE
) -> int | None:
    """Every host's services run as this machine's root, so they share root's inotify instances
    (Debian's default: 128). Past ~16 hosts systemd inside later hosts cannot watch its units and
    sshd never starts. Raise the limit to what `hosts` need; returns the new value if it changed."""
    needed = max(128, hosts * INOTIFY_PER_HOST)
    current = int(sysctl.read_text())
    if current >= needed:
        return None
    _remember(state, "inotify_max_user_instances", {"before": current})
    data = _load(state)
    data["inotify_max_user_instances"]["set"] = needed
    atomic_write(state, json.dumps(data, indent=2) + "\n", mode=0o600)
    sysctl.write_text(f"{needed}\n")
    return needed


def ensure_ssh_include(*, config: Path = SSH_CONFIG, state: Path = MACHINE_STATE) -> None:
    """`Include .../stackwright-lab/*.conf` at the top of root's ssh config, so `ssh compute1`
    works (it must come before any Host block, or it only applies inside that block)."""
    text = config.read_text() if config.exists() else ""
    if INCLUDE_LINE in text.splitlines():
        return
    _remember(state, "ssh_include", {"config_existed": config.exists()})
    config.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(config, f"{INCLUDE_LINE}\n{text}", mode=0o600)


def other_labs(except_dir: Path, *, root: Path = STATE_ROOT) -> list[Path]:
    return [p.parent for p in root.glob("*/state.json") if p.parent != except_dir]


def restore(
    *,
    sysctl: Path = INOTIFY_INSTANCES,
    config: Path = SSH_CONFIG,
    lab_ssh_dir: Path = LAB_SSH_DIR,
    state: Path = MACHINE_STATE,
) -> list[str]:
    """Put back what `lab up` changed (call when no lab is left); returns what it did."""
    data = _load(state)
    done: list[str] = []
    inotify = data.pop("inotify_max_user_instances", None) or {}
    # only a value still ours: one someone set since stays
    if "before" in inotify and sysctl.exists() and int(sysctl.read_text()) == inotify.get("set"):
        sysctl.write_text(f"{inotify['before']}\n")
        done.append(f"fs.inotify.max_user_instances back to {inotify['before']}")
    include = data.get("ssh_include")
    if isinstance(include, dict) and not any(lab_ssh_dir.glob("*.conf")):
        del data["ssh_include"]
        if config.exists():
            lines = config.read_text().splitlines(keepends=True)
            kept = [line for line in lines if line.rstrip("\n") != INCLUDE_LINE]
            if not include.get("config_existed") and not "".join(kept).strip():
                config.unlink()
            elif kept != lines:
                atomic_write(config, "".join(kept), mode=0o600)
            done.append(f"the Include line removed from {config}")
        if lab_ssh_dir.is_dir() and not any(lab_ssh_dir.iterdir()):
            lab_ssh_dir.rmdir()
    if data:
        atomic_write(state, json.dumps(data, indent=2) + "\n", mode=0o600)  # what is still to restore
    else:
        state.unlink(missing_ok=True)
    return done
