"""The network configuration operation: networkd files applied last, with a rollback armed on the
host that restores the previous files unless we prove the host still answers (like `netplan try`)."""

from __future__ import annotations

import shlex
import socket

from stackwright.engine import facts
from stackwright.engine.filewrite import unified_diff, write_script
from stackwright.engine.hostrun import HostRun, Outcome
from stackwright.engine.remote import LOST, STATE_DIR, RemoteError, Result
from stackwright.polling import poll
from stackwright.steps import File, NetworkConfig, Step

ROLLBACK_DIR = f"{STATE_DIR}/net-rollback"
ROLLBACK_UNIT = "stackwright-net-rollback"
ROLLBACK_AFTER_S = 90  # > the script's 30 s timeout + PROBE_WAIT_S, so a late answer is not mistaken
PROBE_WAIT_S = 20.0


def network_config(run: HostRun, step: Step) -> Outcome:
    """Write networkd files with a rollback armed on the host, reload, then prove the host
    still answers on its management address from here; disarm only then. If it does not,
    the host restores the previous files itself after ROLLBACK_AFTER_S."""
    assert isinstance(step, NetworkConfig)
    current = facts.files(run.remote, [f.path for f in step.files])
    changed = [f for f in step.files if _differs(current[f.path], f)]
    if not changed:
        return Outcome(step, False, "unchanged")
    diff = "".join(
        unified_diff(
            f.path,
            "" if current[f.path] is None else run.remote.get(f.path).decode(errors="replace"),
            f.content,
            new_file=current[f.path] is None,
        )
        for f in changed
    )
    if run.dry_run:
        return Outcome(step, True, f"would change {len(changed)} files", diff=diff)
    rollback = ["#!/bin/sh"]
    save = [f"rm -rf {ROLLBACK_DIR}", f"mkdir -p {ROLLBACK_DIR}"]
    for index, f in enumerate(changed):
        saved = f"{ROLLBACK_DIR}/{index}.orig"
        if current[f.path] is None:
            rollback.append(f"rm -f {shlex.quote(f.path)}")
        else:
            save.append(f"cp -p {shlex.quote(f.path)} {saved}")
            rollback.append(f"cp -p {saved} {shlex.quote(f.path)}")
    # reload alone leaves an address on a NIC whose file no longer has it (it moved to a bridge)
    names = " ".join(sorted({shlex.quote(n) for f in step.files for n in _matched_names(f.content)}))
    reconfigure = (
        f'for i in {names}; do ip link show "$i" >/dev/null 2>&1 && networkctl reconfigure "$i"; done; true'
    )
    rollback += ["networkctl reload", reconfigure]
    script = "\n".join(
        [
            "set -e",
            *save,
            f"cat > {ROLLBACK_DIR}/rollback.sh <<'STACKWRIGHT_EOF'",
            *rollback,
            "STACKWRIGHT_EOF",
            f"systemctl stop {ROLLBACK_UNIT}.timer {ROLLBACK_UNIT}.service 2>/dev/null || true",
            f"systemd-run --quiet --unit={ROLLBACK_UNIT} --on-active={ROLLBACK_AFTER_S} "
            f"/bin/sh {ROLLBACK_DIR}/rollback.sh",
        ]
        + [write_script(f, []).removeprefix("set -e\n") for f in changed]
        + [
            "systemctl enable -q systemd-networkd",
            "systemctl is-active -q systemd-networkd || systemctl start systemd-networkd",
            "networkctl reload",
            reconfigure,
            "",
        ]
    )
    result = run.remote.run("sh -s", stdin=script, timeout=30)
    # The change may cut our connection before the script can answer (or cut it altogether).
    lost_contact = result.rc in (124, LOST)
    if not result.ok and not lost_contact:
        raise RemoteError(
            run.remote.name,
            "write network configuration",
            result,
            f"the host restores the previous files within {ROLLBACK_AFTER_S} s",
        )
    if not _answers(step.probe_address, PROBE_WAIT_S):
        raise RemoteError(
            run.remote.name,
            "network configuration",
            Result(1, "", f"{step.probe_address} stopped answering after the change"),
            f"the host rolls back to the previous files within {ROLLBACK_AFTER_S} s; check the interface "
            "names and addresses in the inventory",
        )
    if lost_contact:
        run.remote.reconnect(within_s=30)
    cancelled = run.remote.run(
        f"systemctl is-active -q {ROLLBACK_UNIT}.timer && systemctl stop {ROLLBACK_UNIT}.timer"
        f" && rm -rf {ROLLBACK_DIR}"
    )
    if not cancelled.ok:
        raise RemoteError(
            run.remote.name,
            "network configuration",
            Result(1, "", "the host had already rolled the change back"),
            f"look at `journalctl -u {ROLLBACK_UNIT}` on the host; apply again once it answers",
        )
    run.changed_files.update(f.path for f in changed)
    return Outcome(step, True, f"applied {len(changed)} files; host still answers", diff=diff)


def _matched_names(networkd_text: str) -> list[str]:
    """Interface names from the `Name=` lines of a .network file's [Match] section."""
    return [n for line in networkd_text.splitlines() if line.startswith("Name=") for n in line[5:].split()]


def _differs(fact: facts.FileFact | None, step: File) -> bool:
    return (
        fact is None
        or fact.sha256 != facts.sha256(step.content)
        or ((fact.mode, fact.owner, fact.group) != (step.mode, step.owner, step.group))
    )


def _answers(address: str, within_s: float) -> bool:
    """A fresh TCP connection gets an SSH banner (a new path, not the connection we hold)."""

    def banner() -> bool:
        try:
            with socket.create_connection((address, 22), timeout=2) as sock:
                sock.settimeout(2)
                return sock.recv(8).startswith(b"SSH-")
        except OSError:
            return False

    return poll(banner, within_s=within_s, every_s=0.5)
