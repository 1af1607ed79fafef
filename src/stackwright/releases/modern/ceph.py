"""A storage node: a Ceph monitor, a manager and its OSDs from Debian's packages, bootstrapped the
manual way (no containers, no ceph-volume: bluestore takes the device or file whole); and the
client side every Ceph user gets (ceph.conf, its keyring).

The monitors' store is made from a monmap of every storage node and the keys of the passwords file,
so each node bootstraps alone and they meet in quorum. The first monitor then waits for every OSD
and creates the pools and the OpenStack services' cephx users (ceph.py); CEPH_READY tells the
controller it may start cinder-volume.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING

from stackwright.ceph import CLIENTS, POOLS, CephCluster, Client, Osd, cluster
from stackwright.context import HostContext
from stackwright.releases.modern.files import rendered
from stackwright.releases.modern.guards import SECRETS_DIR, applied_when_unchanged
from stackwright.sinks import cephx_key
from stackwright.steps import Command, Directory, File, Milestone, Service, Step, Wait

if TYPE_CHECKING:
    from stackwright.releases.base import Release

CEPH_CONF = "/etc/ceph/ceph.conf"
ADMIN_KEYRING = "/etc/ceph/ceph.client.admin.keyring"
# The monitors' first keys (mon. and client.admin), root's: mkfs reads a copy the ceph user owns in a
# private directory, removed right after (the ceph user never keeps the admin key).
MON_KEYRING = f"{SECRETS_DIR}/ceph-mon.keyring"
# Debian 13's ceph-mgr 18.2.7 runs each manager module in a Python sub-interpreter, and mgr_util (which
# every module imports) imports bcrypt, a PyO3 (Rust) extension that refuses sub-interpreters: every
# module fails (MGR_MODULE_DEPENDENCY; ceph tracker 64213, fixed upstream after 18.2.7). The manager's
# own directory comes first on its modules' path, so this file (no package owns it) stands in for
# bcrypt there: only the dashboard's and restful's password hashing calls it, and neither runs.
MGR_BCRYPT = "/usr/share/ceph/mgr/bcrypt.py"
MGR_BCRYPT_TEXT = """\
# Managed by stackwright: bcrypt inside ceph-mgr (see the storage role, releases/modern/ceph.py).
# Python's real bcrypt (PyO3) cannot load in the manager's sub-interpreters; nothing deployed hashes.


def _unavailable(*args: object, **kwargs: object) -> bytes:
    raise NotImplementedError("bcrypt is unavailable inside ceph-mgr's sub-interpreters")


gensalt = hashpw = checkpw = _unavailable
"""
# restful imports python3-cryptography (PyO3 too) and cannot load either: off (it is an opt-in REST API).
MGR_OFF = ("restful",)
CLIENTS_KEYRING = f"{SECRETS_DIR}/ceph-clients.keyring"
POOLS_SCRIPT = "/usr/local/lib/stackwright/ceph-pools.sh"
OSD_DROPIN = "/etc/systemd/system/ceph-osd@.service.d/stackwright.conf"
CEPH_READY = "ceph-ready"
# Bounded waits: a monitor quorum forms within seconds of the last monitor starting; an OSD's
# mkfs and first start take under a minute even on a busy lab host.
QUORUM_TIMEOUT_S = 600.0
OSDS_TIMEOUT_S = 900.0
# Every `ceph` call of a step gives up rather than hang on a monitor that does not answer.
CEPH = "ceph --connect-timeout 20"


def packages(host: HostContext) -> tuple[str, ...]:
    return ("ceph-mon", "ceph-mgr", "ceph-osd", "ceph-common")


def client_packages() -> tuple[str, ...]:
    """What a node that talks to Ceph needs: ceph.conf's directory and the `ceph`/`rbd` tools, and
    librados/librbd's Python bindings (cinder-volume's and glance's RBD drivers, nova's images)."""
    return ("ceph-common", "python3-rados", "python3-rbd")


def keyring_text(entries: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...]) -> str:
    """A Ceph keyring: [name] key = ..., caps <kind> = "...". Caps come from ceph.py's constants,
    keys from the passwords file (allowlists.CEPHX_KEY: base64 only), so nothing needs quoting
    beyond the caps' double quotes."""
    lines: list[str] = []
    for name, key, caps in entries:
        lines += [f"[{name}]", f"\tkey = {cephx_key(key, name)}"]
        lines += [f'\tcaps {kind} = "{value}"' for kind, value in caps]
    return "\n".join(lines) + "\n"


def client_keyring_path(client: Client) -> str:
    return f"/etc/ceph/ceph.{client.name}.keyring"


def client_keyring(client: Client, pw: Mapping[str, str], group: str) -> File:
    """A service's own keyring: root:<service> 0640 (the key alone, its caps live in the monitors)."""
    text = keyring_text(((client.name, pw[client.key_name], ()),))
    return File(client_keyring_path(client), text, mode=0o640, group=group, secret=True)


def client_by_name(name: str) -> Client:
    return next(c for c in CLIENTS if c.name == name)


def ceph_conf(host: HostContext, release: Release, pw: Mapping[str, str], ceph: CephCluster) -> File:
    # INI: the inventory's overrides reach it (the lab's mon_data_avail_warn, README: Block storage)
    return rendered(release, host, pw, CEPH_CONF, ceph=ceph)


def client(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    """ceph.conf on a node that uses the cluster (its keyrings come with the service using them)."""
    ceph = cluster(host.inventory, pw)
    if ceph is None:
        return []
    return [Directory("/etc/ceph"), ceph_conf(host, release, pw, ceph)]


def steps(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    ceph = cluster(host.inventory, pw)
    assert ceph is not None  # this host has the storage role
    found: list[Step] = [
        Directory("/etc/ceph"),
        ceph_conf(host, release, pw, ceph),
        File(ADMIN_KEYRING, admin_keyring(pw), mode=0o600, secret=True),
        *monitor(host, pw, ceph),
        *manager(host),
        File(OSD_DROPIN, OSD_DROPIN_TEXT),
        *(step for osd in ceph.osds_of(host.name) for step in object_store(osd)),
    ]
    if host.name == ceph.first_monitor:
        found += pools_and_clients(host, release, pw, ceph)
    return found


ADMIN_CAPS = (("mds", "allow *"), ("mgr", "allow *"), ("mon", "allow *"), ("osd", "allow *"))


def admin_keyring(pw: Mapping[str, str]) -> str:
    return keyring_text((("client.admin", pw["ceph_admin_key"], ADMIN_CAPS),))


def monitor(host: HostContext, pw: Mapping[str, str], ceph: CephCluster) -> list[Step]:
    data = f"/var/lib/ceph/mon/ceph-{host.name}"
    keys = keyring_text(
        (
            ("mon.", pw["ceph_mon_key"], (("mon", "allow *"),)),
            ("client.admin", pw["ceph_admin_key"], ADMIN_CAPS),
        )
    )
    addv = " ".join(f"--addv {shlex.quote(m.name)} {shlex.quote(m.addrvec)}" for m in ceph.monitors)
    mkfs = (
        "set -e\n"
        "work=$(mktemp -d)\n"
        "trap 'rm -rf \"$work\"' EXIT\n"
        f'monmaptool --create --fsid {ceph.fsid} {addv} "$work/monmap" >/dev/null\n'
        f'install -m 0600 {MON_KEYRING} "$work/keyring"\n'
        'chown -R ceph:ceph "$work"\n'
        # no `done` yet: whatever an interrupted mkfs left (the monitor never ran on it) goes
        f"rm -rf {data}\n"
        f"install -d -o ceph -g ceph -m 0750 {data}\n"
        f'ceph-mon --mkfs -i {host.name} --monmap "$work/monmap" --keyring "$work/keyring"'
        " --setuser ceph --setgroup ceph\n"
        f"touch {data}/done && chown ceph:ceph {data}/done"
    )
    return [
        File(MON_KEYRING, keys, mode=0o600, secret=True),
        Command(
            f"Ceph monitor {host.name}: its store from the monmap of every storage node",
            ("sh", "-c", mkfs),
            unless=f"test -e {data}/done",
        ),
        Service(f"ceph-mon@{host.name}", restart_when=(CEPH_CONF,)),
        Wait("Ceph monitors in quorum", f"{CEPH} quorum_status >/dev/null", timeout_s=QUORUM_TIMEOUT_S),
    ]


def modules_off() -> Command:
    names = ", ".join(repr(m) for m in MGR_OFF)
    enabled = (
        f'{CEPH} mgr module ls --format json | python3 -c "import json,sys; '
        f"on=set(json.load(sys.stdin).get('enabled_modules', [])); sys.exit(bool(on & {{{names}}}))\""
    )
    return Command(
        f"Ceph manager modules off: {', '.join(MGR_OFF)} (cannot load on Debian 13)",
        ("sh", "-c", "set -e\n" + "".join(f"{CEPH} mgr module disable {m}\n" for m in MGR_OFF)),
        unless=enabled,
    )


def manager(host: HostContext) -> list[Step]:
    data = f"/var/lib/ceph/mgr/ceph-{host.name}"
    return [
        File(MGR_BCRYPT, MGR_BCRYPT_TEXT),
        modules_off(),
        Directory(data, mode=0o750, owner="ceph", group="ceph"),
        Command(
            f"Ceph manager {host.name}: its key",
            (
                "sh",
                "-c",
                f"set -e\n{CEPH} auth get-or-create mgr.{host.name} mon 'allow profile mgr' osd 'allow *'"
                f" mds 'allow *' -o {data}/keyring.new\n"
                f"chown ceph:ceph {data}/keyring.new && chmod 0600 {data}/keyring.new\n"
                f"mv {data}/keyring.new {data}/keyring",
            ),
            unless=f"test -s {data}/keyring",
        ),
        Service(f"ceph-mgr@{host.name}", restart_when=(CEPH_CONF, MGR_BCRYPT)),
    ]


# The OSD runs as ceph: a block device is root:disk again after a reboot (udev), so the unit takes
# its `block` target back before each start ('+': that one command runs as root).
OSD_DROPIN_TEXT = (
    "# Managed by stackwright: the OSD's device or file belongs to the ceph user.\n"
    "[Service]\n"
    "ExecStartPre=+/bin/sh -c 'chown ceph:ceph \"$(readlink -f /var/lib/ceph/osd/ceph-%i/block)\"'\n"
)


def object_store(osd: Osd) -> list[Step]:
    data = f"/var/lib/ceph/osd/ceph-{osd.id}"
    device = shlex.quote(osd.device)
    script = (
        "set -e\n"
        f"if ! test -b {device} && ! test -f {device}; then\n"
        f"  echo '{osd.device} is neither a block device nor a file — fix osd_devices' >&2; exit 1\n"
        "fi\n"
        # `osd new` with the same uuid and id answers the id again: a rerun after a failed mkfs is fine
        f"{CEPH} osd new {osd.uuid} {osd.id} >/dev/null\n"
        f"install -d -o ceph -g ceph -m 0750 {data}\n"
        f"ln -sfn {device} {data}/block\n"
        f"chown ceph:ceph {device}\n"
        f"{CEPH} auth get-or-create osd.{osd.id} mon 'allow profile osd' mgr 'allow profile osd'"
        f" osd 'allow *' -o {data}/keyring\n"
        f"chown ceph:ceph {data}/keyring && chmod 0600 {data}/keyring\n"
        f"ceph-osd -i {osd.id} --mkfs --osd-uuid {osd.uuid} --setuser ceph --setgroup ceph"
    )
    return [
        Command(
            f"Ceph OSD {osd.id}: bluestore on {osd.device} (its content is lost)",
            ("sh", "-c", script),
            unless=f"test -e {data}/mkfs_done",
        ),
        Service(f"ceph-osd@{osd.id}", restart_when=(CEPH_CONF, OSD_DROPIN)),
    ]


def pools_script(ceph: CephCluster) -> str:
    lines = ["#!/bin/sh", "# Managed by stackwright: the pools of the OpenStack services.", "set -e"]
    for pool in POOLS:
        lines += [
            f"{CEPH} osd pool ls | grep -qx {pool.name} || {CEPH} osd pool create {pool.name}",
            f"{CEPH} osd pool set {pool.name} size {ceph.pool_size} --yes-i-really-mean-it",
            f"{CEPH} osd pool set {pool.name} min_size {ceph.pool_min_size}",
            f"{CEPH} osd pool application enable {pool.name} rbd >/dev/null",
            f"rbd pool init {pool.name}",
        ]
    lines.append(f"{CEPH} auth import -i {CLIENTS_KEYRING}")
    return "\n".join(lines) + "\n"


def all_osds_up(count: int) -> str:
    return (
        f"{CEPH} osd stat --format json | python3 -c "
        f"\"import json,sys; s=json.load(sys.stdin); sys.exit(s['num_up_osds'] < {count})\""
    )


def pools_and_clients(
    host: HostContext, release: Release, pw: Mapping[str, str], ceph: CephCluster
) -> list[Step]:
    clients = keyring_text(
        tuple((c.name, pw[c.key_name], (("mgr", c.mgr), ("mon", c.mon), ("osd", c.osd))) for c in CLIENTS)
    )
    return [
        Wait(
            f"all {len(ceph.osds)} OSDs of the cluster up",
            all_osds_up(len(ceph.osds)),
            timeout_s=OSDS_TIMEOUT_S,
        ),
        Directory("/usr/local/lib/stackwright"),
        File(POOLS_SCRIPT, pools_script(ceph), mode=0o700),
        File(CLIENTS_KEYRING, clients, mode=0o600, secret=True),
        applied_when_unchanged(
            "Ceph pools (volumes, images, vms) and the cephx users of Cinder and Glance",
            "ceph-pools",
            (POOLS_SCRIPT, CLIENTS_KEYRING),
            f"sh {POOLS_SCRIPT}",
        ),
        Milestone(CEPH_READY),
    ]
