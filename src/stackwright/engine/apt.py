"""apt on a host: install without recommends with services held, upgrade, and recovery from an
interrupted run.

Every script here runs through `Remote.run_durable`, so a lost connection or a killed apply
does not stop dpkg halfway; a host left half-configured anyway (power loss, SIGKILL on the
host) is repaired by `dpkg --configure -a` before the next apt run.
"""

from __future__ import annotations

import re
import shlex

from stackwright.context import DEFERRED_DAEMON_RELOAD, SERVICES_HELD_ENV
from stackwright.engine import facts
from stackwright.engine.remote import STATE_DIR, Remote, RemoteError, Result

POLICY = "/usr/sbin/policy-rc.d"
# The administrator's own policy-rc.d while ours is in place; on disk, so a reboot cannot lose it.
SAVED_POLICY = f"{STATE_DIR}/policy-rc.d.saved"
OURS = "# stackwright: services held while packages install"
LOCK_WAIT_S = 600  # apt waits this long for another apt/dpkg (unattended-upgrades) to finish

APT_GET = (
    f"apt-get -q -y -o DPkg::Lock::Timeout={LOCK_WAIT_S} "
    "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
)


def hold_services(body: str) -> str:
    """`body` with Debian's postinst scripts kept from starting services (policy-rc.d exit 101):
    they start once their configuration is written (DESIGN §5: an unconfigured nova-compute
    hangs 90 s). The administrator's own policy-rc.d is put back afterwards, and a policy-rc.d
    left by an interrupted run of ours is never mistaken for theirs.

    With services held nothing starts from a unit file before the end, so the maintainer scripts'
    `systemctl daemon-reload`s (one per package with units: ~40 on a compute node, each running
    every systemd generator again) are left as a marker by node preparation's systemctl stand-in
    and done once here, at the end (also after an interrupted run's leftover marker)."""
    return f"""set -e
export DEBIAN_FRONTEND=noninteractive {SERVICES_HELD_ENV}=1
mkdir -p {STATE_DIR}
if [ -e {POLICY} ] && ! grep -qxF {shlex.quote(OURS)} {POLICY} && [ ! -e {SAVED_POLICY} ]; then
  cp -p {POLICY} {SAVED_POLICY}
fi
restore() {{
  if [ -e {DEFERRED_DAEMON_RELOAD} ]; then
    systemctl daemon-reload || echo "systemctl daemon-reload failed" >&2
    rm -f {DEFERRED_DAEMON_RELOAD}
  fi
  if [ -e {SAVED_POLICY} ]; then mv -f {SAVED_POLICY} {POLICY}; else rm -f {POLICY}; fi
}}
trap restore EXIT
printf '#!/bin/sh\\n%s\\nexit 101\\n' {shlex.quote(OURS)} > {POLICY}
chmod 0755 {POLICY}
{body}
"""


# apt's DPkg::Post-Invoke commands, one per line (the list's own empty value first), run as apt
# runs them after dpkg.
POST_INVOKE_HOOKS = """\
apt-config dump --format '%v%n' DPkg::Post-Invoke | while IFS= read -r hook; do
  [ -z "$hook" ] || sh -c "$hook" || echo "DPkg::Post-Invoke hook failed: $hook" >&2
done"""


def repair_script() -> str:
    """Finish what an interrupted dpkg left (unpacked but unconfigured packages), services held;
    then apt's DPkg::Post-Invoke hooks, which the interrupted apt never reached (a node's
    byte-compile pass is one: apt_node.py). A hook that fails is reported, as apt reports it;
    the repair itself is done by then."""
    return hold_services(f"dpkg --configure -a --force-confdef --force-confold\n{POST_INVOKE_HOOKS}")


def needs_repair_query() -> facts.Query[bool]:
    """dpkg was interrupted: `dpkg --audit` lists packages, or its journal holds updates."""
    script = (
        'if dpkg --audit 2>/dev/null | grep -q . || [ -n "$(ls -A /var/lib/dpkg/updates)" ]; '
        "then echo interrupted; fi"
    )
    return facts.Query("check dpkg's state", script, lambda _, out: out.strip() == "interrupted")


def repair(remote: Remote) -> None:
    """Finish what an interrupted dpkg left (`needs_repair_query` said so)."""
    result = remote.run_durable(repair_script(), timeout=3600)
    if not result.ok:
        raise RemoteError(
            remote.name,
            "dpkg --configure -a (an earlier run was interrupted)",
            result,
            "run `dpkg --configure -a` on the host and read its error",
        )


def install_script(names: list[str]) -> str:
    """apt-get without recommends (DESIGN §5: recommends pulled 933 packages), services held."""
    pkgs = " ".join(map(shlex.quote, names))
    return hold_services(f"{APT_GET} install --no-install-recommends {pkgs}")


def install(remote: Remote, names: list[str]) -> Result:
    result = remote.run_durable(install_script(names), timeout=3600)
    if not result.ok:
        raise RemoteError(
            remote.name,
            f"apt-get install {' '.join(names)}",
            result,
            "check the host's apt sources, that `apt-get update` works there, and its free disk space",
        )
    return result


def list_state_query(stamp: str, fresh_s: int, count_upgradable: bool) -> facts.Query[tuple[bool, int]]:
    """(the package lists are older than `fresh_s` by our own stamp — apt keeps the mirror's
    timestamps on the lists, so their mtime says nothing —, how many packages the current lists
    would upgrade when asked: a simulation, without apt's lock, so it never waits for another apt)."""
    script = f"find {stamp} -newermt '-{fresh_s} seconds' 2>/dev/null | grep -q . && echo fresh || echo stale"
    if count_upgradable:
        script += f"\n{APT_GET} -s -o Debug::NoLocking=1 full-upgrade 2>/dev/null | grep -c '^Inst ' || true"

    def parse(_: Remote, stdout: str) -> tuple[bool, int]:
        lines = stdout.split()
        stale = not lines or lines[0] != "fresh"
        upgradable = int(lines[1]) if len(lines) > 1 and lines[1].isdigit() else 0
        return stale, upgradable

    return facts.Query("check the package lists", script, parse)


REBOOT_REQUIRED = facts.Query(
    "check whether a reboot is required",
    "[ -e /var/run/reboot-required ] && echo required; true",
    lambda _, out: out.strip() == "required",
)


def update(remote: Remote, stamp: str) -> None:
    remote.check_durable(
        "apt-get update",
        f"set -e\nDEBIAN_FRONTEND=noninteractive {APT_GET} update\nmkdir -p {STATE_DIR}\ntouch {stamp}",
        hint="the host needs its Debian mirror (or the lab's apt proxy)",
    )


def full_upgrade(remote: Remote) -> list[str]:
    """Upgrade every package (services restart as Debian's scripts say); the packages set up."""
    result = remote.check_durable(
        "apt-get full-upgrade",
        f"DEBIAN_FRONTEND=noninteractive {APT_GET} full-upgrade",
        hint="read apt's error above; `apt-get full-upgrade` on the host shows the same",
    )
    return upgraded_packages(result.stdout)


def upgraded_packages(apt_output: str) -> list[str]:
    """`name version` of every package apt's output says it set up ("Setting up nova-compute
    (2:31.0.0-6+sw1) ..." → "nova-compute 2:31.0.0-6+sw1")."""
    return [
        f"{m[1]} {m[2]}"
        for m in re.finditer(r"^Setting up (\S+?)(?::\w+)? \((\S+)\)", apt_output, re.MULTILINE)
    ]
