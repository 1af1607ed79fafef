"""Preflight: before changing a host, check it is the host the inventory describes.

One round trip per host gathers: Debian codename, IPv4 addresses per interface,
the clock, container or not, the OVS kernel datapath, and a real KVM probe
(`kvm_probe.py`). From them come pass/fail lines and the `HostFacts` the plan
needs (`virt_type` under `auto`, `ovs_datapath`, `containerized`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import resources

from stackwright.context import HostFacts
from stackwright.engine.remote import Remote
from stackwright.inventory import Inventory
from stackwright.release_table import ALL
from stackwright.releases.base import Release

CLOCK_FAIL_S = 30.0  # tokens and RabbitMQ heartbeats fail well before this
CLOCK_WARN_S = 2.0
DISK_MIN_MB = 256  # free space every filesystem apply writes to needs (files, dpkg's database)
# The package of each project whose version says which OpenStack release a host runs.
OPENSTACK_PACKAGES: dict[str, str] = {
    "nova-common": "nova",
    "neutron-common": "neutron",
    "keystone": "keystone",
    "glance-common": "glance",
    "placement-common": "placement",
    "cinder-common": "cinder",
}


@dataclass(frozen=True)
class CheckLine:
    id: str
    ok: bool
    message: str
    warning: bool = False


@dataclass
class Preflight:
    host: str
    lines: list[CheckLine] = field(default_factory=list)
    facts: HostFacts = field(default_factory=HostFacts)

    @property
    def ok(self) -> bool:
        return all(line.ok or line.warning for line in self.lines)

    def failures(self) -> list[CheckLine]:
        return [line for line in self.lines if not line.ok and not line.warning]


def _probe_script() -> str:
    probe = resources.files("stackwright.checks").joinpath("kvm_probe.py").read_text()
    return f""". /etc/os-release 2>/dev/null; echo "codename=${{VERSION_CODENAME:-unknown}}"
ip -o -4 addr show 2>/dev/null | while read -r _ ifname _ cidr _; do echo "addr=$ifname $cidr"; done
echo "container=$(systemd-detect-virt -c 2>/dev/null || echo none)"
dpkg-query -W -f='pkg=${{db:Status-Abbrev}} ${{Package}} ${{Version}}\n' \\
  {" ".join(OPENSTACK_PACKAGES)} 2>/dev/null
for br in $(ovs-vsctl --timeout=5 list-br 2>/dev/null); do
  echo "ovsbr=$br $(ovs-vsctl --timeout=5 list-ports "$br" | tr '\n' ' ')"
done
if [ -d /sys/module/openvswitch ] || modinfo openvswitch >/dev/null 2>&1; then echo ovs=system; \
else echo ovs=netdev; fi
if command -v python3 >/dev/null; then
probe=$(mktemp)
cat > "$probe" <<'KVM_PROBE'
{probe}
KVM_PROBE
kvm=$(timeout 10 python3 "$probe" 2>&1 | tail -n 1)
rm -f "$probe"
echo "kvm=${{kvm:-no the probe hung or crashed}}"
else echo "kvm=no python3 is missing, cannot probe KVM"; fi
df -Pk / /etc /var /var/lib /var/cache/apt/archives /tmp 2>/dev/null | awk 'NR>1{{print "disk="$6" "$4}}'
echo "time=$(date +%s.%N)"
"""


def gather(remote: Remote) -> tuple[dict[str, list[str]], float, str]:
    """{"codename": ["bookworm"], "addr": ["eth0 10.10.10.53/24", ...], ...}, the clock skew (s),
    and, when the probe did not complete, why (exit code and the end of its stderr)."""
    before = time.time()
    result = remote.run("sh -s", stdin=_probe_script(), timeout=60)
    after = time.time()
    values: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values.setdefault(key, []).append(value.strip())
    tail = " ".join(result.stderr.split()[-30:]) or "no output"
    failure = (
        f"exit {result.rc}, {tail} — check sshd and the shell on the host "
        "(`journalctl -u ssh`), then run again"
    )
    skew = 0.0
    try:
        host_time = float(values["time"][0])
    except (KeyError, IndexError, ValueError):
        values.pop("time", None)
        return values, skew, failure
    # In sync, the host's reading falls inside our round trip; outside it, that is the skew.
    if host_time < before:
        skew = host_time - before
    elif host_time > after:
        skew = host_time - after
    return values, skew, ""


def preflight_host(remote: Remote, inventory: Inventory, release: Release) -> Preflight:
    values, skew, failure = gather(remote)
    node = inventory.nodes[remote.name]
    report = Preflight(remote.name)
    add = report.lines.append
    if "time" not in values:
        # The probe did not run to its end: judging the host from a partial answer would blame
        # its release or addresses for what is a broken SSH session.
        add(CheckLine("ssh-command", False, f"commands over SSH do not run on {remote.name}: {failure}"))
        return report

    codename = (values.get("codename") or ["unknown"])[0]
    add(
        CheckLine(
            "debian-release",
            codename == release.debian,
            f"Debian {codename}"
            + (
                ""
                if codename == release.debian
                else f", but release {release.name} needs Debian "
                f"{release.debian} — use a {release.debian} host or another release"
            ),
        )
    )

    add(installed_openstack_line(values.get("pkg", []), release))

    have: dict[str, set[str]] = {}
    for entry in values.get("addr", []):
        ifname, _, cidr = entry.partition(" ")
        have.setdefault(ifname.split("@")[0], set()).add(cidr)
    # An address a converged host moved onto the OVS bridge holding its NIC (br-ex, br-phy).
    bridges_holding = {
        port: bridge for bridge, *ports in (v.split() for v in values.get("ovsbr", [])) for port in ports
    }
    nets = dict(inventory.networks.items())
    for net, address in node.addresses().items():
        ifname = node.interface(net)
        want = f"{address}/{nets[net].cidr.prefixlen}"
        holders = [i for i, cidrs in have.items() if want in cidrs]
        ok = ifname in holders or bridges_holding.get(ifname) in holders
        where = f" (found on {', '.join(holders)})" if holders and not ok else ""
        add(
            CheckLine(
                f"address-{net}",
                ok,
                f"{want} on {ifname}"
                if ok
                else f"{want} is not on {ifname}{where} — configure it, or fix "
                f"nodes.{remote.name}.{net}/interfaces",
            )
        )

    add(
        CheckLine(
            "clock",
            abs(skew) <= CLOCK_FAIL_S,
            f"clock {skew:+.1f} s from this machine"
            + ("" if abs(skew) <= CLOCK_FAIL_S else " — sync it (chrony) before deploying"),
            warning=CLOCK_WARN_S < abs(skew) <= CLOCK_FAIL_S,
        )
    )

    add(_disk_line(remote.name, values.get("disk", [])))

    container = (values.get("container") or ["none"])[0]
    containerized = container not in ("none", "")
    ovs = (values.get("ovs") or ["system"])[0]
    kvm = (values.get("kvm") or ["no the probe did not run"])[0]
    kvm_ok = kvm.startswith("ok")
    reason = kvm.partition(" ")[2]
    chosen = inventory.virt_type_of(remote.name)
    if chosen == "auto":
        virt_type = "kvm" if kvm_ok else "qemu"
        why = f"KVM runs guests here ({reason})" if kvm_ok else f"KVM cannot run guests here: {reason}"
        add(CheckLine("virt-type", True, f"virt_type auto → {virt_type}: {why}"))
    elif chosen == "kvm":
        virt_type = "kvm"
        add(
            CheckLine(
                "virt-type",
                kvm_ok or not node.has("compute"),
                "virt_type kvm: KVM runs guests here"
                if kvm_ok
                else f"virt_type kvm, but KVM cannot run guests here: {reason} — set virt_type: qemu "
                "(or auto) for this node, or enable hardware virtualization",
            )
        )
    else:
        virt_type = "qemu"
        add(CheckLine("virt-type", True, "virt_type qemu (software emulation, as configured)"))
    report.facts = HostFacts(virt_type=virt_type, ovs_datapath=ovs, containerized=containerized)
    if ovs == "netdev":
        add(
            CheckLine(
                "ovs-datapath", True, "no openvswitch kernel module: OVS uses the userspace (netdev) datapath"
            )
        )
    return report


def _disk_line(host: str, entries: list[str]) -> CheckLine:
    """`entries`: "MOUNTPOINT FREE_KB" for each filesystem apply writes to (/, /var, apt's cache...)."""
    free: dict[str, int] = {}
    for entry in entries:
        mount, _, kb = entry.rpartition(" ")
        if kb.isdigit():
            free[mount] = int(kb) // 1024
    if not free:
        return CheckLine("disk", True, "free space unknown (no df)", warning=True)
    full = {mount: mb for mount, mb in free.items() if mb < DISK_MIN_MB}
    if full:
        where = ", ".join(f"{mount} has {mb} MB free" for mount, mb in sorted(full.items()))
        return CheckLine(
            "disk",
            False,
            f"{where} — free space on {host} (apply needs at least {DISK_MIN_MB} MB on each; "
            "a new node's packages take about 1.5 GB under /var)",
        )
    tightest = min(free, key=lambda m: free[m])
    return CheckLine("disk", True, f"{free[tightest]} MB free on {tightest} (the fullest)")


def installed_openstack_line(entries: list[str], release: Release) -> CheckLine:
    """`entries`: "STATUS PACKAGE VERSION" from dpkg-query, e.g. "ii nova-common 2:26.2.0-1".

    A host that runs another release's OpenStack is refused before anything changes: stackwright
    never jumps between releases in place (upstream upgrades one release, or SLURP to SLURP, at a
    time, each with its own data migrations)."""
    found: dict[str, str] = {}
    for entry in entries:
        status, package, version = [*entry.split(), "", "", ""][:3]
        # dpkg's second status letter: n (not installed) and c (config files only) do not count
        if package in OPENSTACK_PACKAGES and len(status) >= 2 and status[1] not in "nc":
            found[OPENSTACK_PACKAGES[package]] = version
    wanted = release.traits.components
    for project, version in found.items():
        upstream = version.split(":", 1)[-1].split("-", 1)[0]
        major = upstream.split(".", 1)[0]
        if project in wanted and major.isdigit() and int(major) != wanted[project]:
            other = next((t for t in ALL.values() if t.components.get(project) == int(major)), None)
            runs = f"OpenStack {other.name.capitalize()}" if other else "another OpenStack release"
            return CheckLine(
                "openstack-release",
                False,
                f"{project} {upstream} ({runs}) is installed, but release {release.name} installs "
                f"{project} {wanted[project]} — stackwright does not move a host between releases in "
                f"place: deploy {release.name} on a fresh Debian {release.debian} host, or keep "
                f"release {other.name if other else 'the one it runs'} in the inventory",
            )
    if not found:
        return CheckLine("openstack-release", True, "no OpenStack installed yet")
    return CheckLine(
        "openstack-release",
        True,
        f"OpenStack {release.name.capitalize()} installed ("
        + ", ".join(f"{p} {v.split(':', 1)[-1].split('-', 1)[0]}" for p, v in sorted(found.items()))
        + ")",
    )
