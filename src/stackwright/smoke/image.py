"""The test guest of `verify --smoke` and `verify --tempest`, built on this machine from Debian
packages (no cirros download).

A guest is three files:

- `vmlinuz`: the Debian cloud kernel (`linux-image-cloud-amd64` → `linux-image-<abi>-cloud-amd64`);
- `initrd.img`: a gzipped cpio with `busybox-static`, dropbear (`dropbear-bin` and the libraries it
  links), the virtio, disk and cdrom modules and an `/init` that loads the modules, runs
  `udhcpc -i eth0`, fetches the metadata service's `uuid`, hostname and SSH public key, starts
  dropbear (root logs in with that key only: what Tempest's validation does) and prints fixed
  lines on the consoles (ttyS0 and the screen, see `MARK`);
- `disk.raw`: the image servers boot: a whole disk (an MBR with SYSLINUX's boot code, one active
  FAT partition holding SYSLINUX, `vmlinuz`, `initrd.img` and the kernel command line). A whole
  disk, not a kernel and ramdisk booted directly (`kernel_id`/`ramdisk_id`): Nova's live migration
  fetches an instance's kernel on the destination through its image safety check, which takes a
  bzImage's boot signature for a broken MBR and refuses it ("Image does not pass safety check").

The .debs come through this machine's own apt configuration (`apt-get download`), are unpacked
with `dpkg-deb -x`, and the result is cached under `/var/cache/stackwright/guest/<key>/`, keyed by
the package versions and this recipe: built into a temporary directory, then renamed, so a
half-built guest is never used and a warm cache never rebuilds.

Console lines (each on its own line, parse with `smoke.console`):

    STACKWRIGHT-SMOKE start <kernel release>
    STACKWRIGHT-SMOKE dhcp-retry <n>        (a DHCP round of ~60 s found no server; up to 5)
    STACKWRIGHT-SMOKE lease <ip>            (or: lease-failed)
    STACKWRIGHT-SMOKE uuid <uuid>           (or: uuid-failed after <n> tries: <wget's error>)
    STACKWRIGHT-SMOKE done
    STACKWRIGHT-SMOKE disk <dev> <serial> wrote <token> read <token>   (serial, tokens: or none)
    STACKWRIGHT-SMOKE disk-gone <dev>

After `done` the guest watches for 30 minutes (every 2 s) for disks besides the boot disk `vda`,
there at boot or attached later (`vdb`...: Cinder volumes; Nova gives the first 20 characters of
the volume id as the disk's serial). On each it writes `stackwright-disk <serial> <uuid> <token>`
(zero-padded to 4 KiB, a fresh random token) at offset 0, flushes, drops the page cache, reads the
block back with O_DIRECT and prints the `disk` line (`wrote none`: the write failed; `read none`:
no marker read back). A disk that disappears (detached) prints `disk-gone` and is checked again
when it comes back. Then the guest sleeps (the server stays ACTIVE and its console log readable).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from stackwright.yamlsource import UserError

DEFAULT_CACHE = Path("/var/cache/stackwright/guest")
KERNEL_META = "linux-image-cloud-amd64"
BUSYBOX = "busybox-static"
# dropbear and the shared libraries it links (with the dynamic loader, from libc6).
SSH_PACKAGES: tuple[str, ...] = (
    "dropbear-bin",
    "libc6",
    "libcrypt1",
    "libtomcrypt1",
    "libtommath1",
    "libgmp10",
    "zlib1g",
)
# path in the guest -> glob in the unpacked packages (Debian 12 ships them under lib/, 13 under usr/lib/)
SSH_FILES: dict[str, str] = {
    "usr/sbin/dropbear": "usr/sbin/dropbear",
    "lib64/ld-linux-x86-64.so.2": "**/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "lib/x86_64-linux-gnu/libc.so.6": "**/x86_64-linux-gnu/libc.so.6",
    "lib/x86_64-linux-gnu/libcrypt.so.1": "**/x86_64-linux-gnu/libcrypt.so.1",
    "lib/x86_64-linux-gnu/libtomcrypt.so.1": "**/x86_64-linux-gnu/libtomcrypt.so.1",
    "lib/x86_64-linux-gnu/libtommath.so.1": "**/x86_64-linux-gnu/libtommath.so.1",
    "lib/x86_64-linux-gnu/libz.so.1": "**/x86_64-linux-gnu/libz.so.1",
    "lib/x86_64-linux-gnu/libgmp.so.10": "**/x86_64-linux-gnu/libgmp.so.10",
}
MARK = "STACKWRIGHT-SMOKE"
# The boot loader of the whole disk: SYSLINUX's MBR code, and SYSLINUX installed into the FAT
# partition with mtools, so building needs no loop mount and no kernel file system support.
BOOT_PACKAGES: tuple[str, ...] = ("syslinux", "syslinux-common", "mtools")
MBR_CODE = "usr/lib/syslinux/mbr/mbr.bin"
SECTOR = 512
PARTITION_START = 1 << 20  # bytes; 1 MiB-aligned like every current partitioning tool
BOOT_SLACK = 2 << 20  # FAT tables, ldlinux.sys/.c32 and the config beside the kernel and initrd
# The serial console (the console log the smoke test reads) and the screen (the VNC console).
COMMAND_LINE = "console=tty0 console=ttyS0 panic=-1"
KEEP_BUILDS = 3  # older cache entries (earlier kernel updates) are removed beyond this many
APT_TIMEOUT = 600.0
TOOL_TIMEOUT = 120.0

# Load order; the init runs the list twice, so a module whose dependency came later still loads.
# The virtio_pci helpers exist only in some kernels (5.14+); missing ones are skipped.
MODULES: tuple[str, ...] = (
    "virtio",
    "virtio_ring",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
    # disks and the config drive (a cdrom on the SATA or IDE bus, iso9660)
    "virtio_blk",
    "scsi_common",
    "scsi_mod",
    "virtio_scsi",
    "libata",
    "libahci",
    "ahci",
    "ata_piix",
    "ata_generic",
    "cdrom",
    "sr_mod",
    "isofs",
)
REQUIRED_MODULES = frozenset({"virtio_pci", "virtio_net"})

METADATA_URL = "http://169.254.169.254/openstack/latest/meta_data.json"
KEY_URL = "http://169.254.169.254/latest/meta-data/public-keys/0/openssh-key"
METADATA_TRIES = 20
METADATA_WAIT_S = 3
METADATA_TIMEOUT_S = 10
# busybox sed: the "uuid" and "hostname" values of the one-line meta_data.json
UUID_SED = r's/.*"uuid": *"\([0-9a-fA-F-]*\)".*/\1/p'
HOSTNAME_SED = r's/.*"hostname": *"\([A-Za-z0-9.-]*\)".*/\1/p'
DHCP_ROUNDS = 5  # each: udhcpc -t 20 -T 3, about 60 s; tolerates a port that is bound late
# After `done`: new disks are looked for every DISK_EVERY_S for DISK_WATCH_S, then no more.
DISK_EVERY_S = 2
DISK_WATCH_S = 30 * 60
DISK_BLOCK = 4096  # the marker's sector: a whole logical block on 512- and 4096-byte disks
DISK_MAGIC = "stackwright-disk"
# busybox sed: the token of a marker line `stackwright-disk <serial> <uuid> <token>`
DISK_SED = r"s/^" + DISK_MAGIC + r" [^ ]* [^ ]* \([0-9a-f-]*\)$/\1/p"

INIT_TEMPLATE = """\
#!/bin/busybox sh
# stackwright test guest: virtio-net, DHCP, metadata (uuid, hostname, SSH key), dropbear, fixed
# lines on the serial console and on the screen.
/bin/busybox mkdir -p /proc /sys /dev /run /tmp /sbin /usr/bin /usr/sbin /mnt
/bin/busybox --install -s
export PATH=/usr/bin:/bin:/usr/sbin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
echo 1 > /proc/sys/kernel/printk
say() {{ echo "{mark} $*"; echo "{mark} $*" > /dev/tty0 2>/dev/null; }}
say start "$(uname -r)"
for pass in 1 2; do
  for mod in {modules}; do
    insmod "/lib/modules/$mod.ko" 2>/dev/null
  done
done
n=0
while [ ! -e /sys/class/net/eth0 ] && [ "$n" -lt 20 ]; do sleep 1; n=$((n + 1)); done
[ -e /sys/class/net/eth0 ] || say no-eth0 $(ls /sys/class/net)
ip link set lo up
ip link set eth0 up
lease=""
round=0
while [ "$round" -lt {dhcp_rounds} ]; do
  round=$((round + 1))
  rm -f /run/lease
  udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 20 -T 3
  if [ -s /run/lease ]; then lease=$(cat /run/lease); break; fi
  say dhcp-retry "$round"
done
if [ -n "$lease" ]; then
  say lease "$lease"
  uuid=""
  try=0
  while [ "$try" -lt {md_tries} ]; do
    try=$((try + 1))
    rm -f /tmp/meta_data.json
    # This busybox's wget has no -T (it crashes on it): bound it with timeout instead.
    if timeout {md_timeout} wget -q -O /tmp/meta_data.json {md_url} 2>/tmp/wget.err; then
      uuid=$(sed -n '{uuid_sed}' /tmp/meta_data.json | head -n 1)
      [ -n "$uuid" ] && break
      echo "no uuid in meta_data.json" > /tmp/wget.err
    fi
    [ -s /tmp/wget.err ] || echo "no answer within {md_timeout} s" > /tmp/wget.err
    sleep {md_wait}
  done
  if [ -n "$uuid" ]; then
    name=$(sed -n '{hostname_sed}' /tmp/meta_data.json | head -n 1)
    # the first label, as cloud-init sets it (metadata says <name>.<nova's dhcp_domain>)
    [ -n "$name" ] && hostname "${{name%%.*}}"
    say uuid "$uuid"
    # The key of the keypair the server was booted with, if any: root logs in with it only.
    if timeout {md_timeout} wget -q -O /root/.ssh/authorized_keys {key_url} 2>/dev/null \\
        && [ -s /root/.ssh/authorized_keys ]; then
      chmod 600 /root/.ssh/authorized_keys
      say ssh-key
    fi
  else say uuid-failed after "$try" tries: $(head -n 1 /tmp/wget.err); fi
else
  say lease-failed
fi
# Host keys made at first login (-R); key logins only (-s).
dropbear -R -s -p 22 && say sshd
say done
# A disk besides the boot disk (a Cinder volume, attached now or later): a fresh token written to
# its first 4 KiB, the page cache dropped, read back past the cache, both on the console.
check_disk() {{
  dev=/dev/$1
  serial=$(tr -cd 'A-Za-z0-9._-' 2>/dev/null < "/sys/block/$1/serial")
  token=$(cat /proc/sys/kernel/random/uuid)
  n=0
  while [ ! -b "$dev" ] && [ "$n" -lt 10 ]; do sleep 1; n=$((n + 1)); done
  echo "{disk_magic} ${{serial:-none}} ${{uuid:-none}} $token" \\
    | dd of="$dev" bs={disk_block} count=1 conv=notrunc,sync,fsync 2>/dev/null || token=none
  sync
  echo 3 > /proc/sys/vm/drop_caches
  got=$(dd if="$dev" bs={disk_block} count=1 iflag=direct 2>/dev/null | tr -d '\\000' | head -n 1)
  [ -n "$got" ] || got=$(dd if="$dev" bs={disk_block} count=1 2>/dev/null | tr -d '\\000' | head -n 1)
  got=$(echo "$got" | sed -n '{disk_sed}')
  say disk "$1" "${{serial:-none}}" wrote "$token" read "${{got:-none}}"
}}
seen=" "
tick=0
while [ "$tick" -lt {disk_ticks} ]; do
  for dir in /sys/block/vd[b-z]; do
    name=${{dir##*/}}
    [ -e "$dir" ] || continue
    case "$seen" in *" $name "*) continue ;; esac
    seen="$seen$name "
    check_disk "$name"
  done
  # a detached disk is forgotten: attached again, it is checked again
  left=" "
  for name in $seen; do
    if [ -e "/sys/block/$name" ]; then left="$left$name "; else say disk-gone "$name"; fi
  done
  seen=$left
  sleep {disk_every}
  tick=$((tick + 1))
done
while true; do sleep 3600; done
"""

# Tempest's commands that this busybox answers differently, or not at all (validation over SSH).
SHIMS: dict[str, str] = {
    "usr/bin/sudo": """\
#!/bin/sh
# root already: run the command (sudo -i and other options are ignored)
while [ $# -gt 0 ]; do case "$1" in -*) shift ;; *) break ;; esac; done
exec "$@"
""",
    "usr/bin/curl": """\
#!/bin/sh
# curl [-s] [-f] [-X METHOD] [-d DATA] URL, with busybox's wget
data=""; url=""
while [ $# -gt 0 ]; do
  case "$1" in
    -d|--data) data="$2"; shift 2 ;;
    -X|-m|-o|--max-time) shift 2 ;;
    -*) shift ;;
    *) url="$1"; shift ;;
  esac
done
if [ -n "$data" ]; then exec wget -q -O - --post-data="$data" "$url"; fi
exec wget -q -O - "$url"
""",
    "usr/bin/lsblk": """\
#!/bin/sh
# lsblk [-l] [-b] [--nodeps]: the whole disks in util-linux's columns, sizes in bytes (Tempest
# counts the rows whose TYPE column says disk: remote_client.get_disks). Options are ignored.
row() { printf '%-6s %-7s %2s %14s %2s %-4s %s\\n' "$@"; }
row NAME MAJ:MIN RM SIZE RO TYPE MOUNTPOINTS
for dir in /sys/block/*; do
  name="${dir##*/}"
  case "$name" in loop*|ram*|zram*) continue ;; esac
  type=disk
  case "$name" in sr*) type=rom ;; esac
  row "$name" "$(cat "$dir/dev")" "$(cat "$dir/removable")" "$(( $(cat "$dir/size") * 512 ))" \\
    "$(cat "$dir/ro")" "$type" ""
done
""",
    "usr/bin/blkid": """\
#!/bin/sh
# blkid -L LABEL -o device (also -t LABEL=x): the disk whose ISO 9660 volume id or FAT label is
# LABEL (a config drive: "config-2"). Debian's static busybox has no blkid.
label=""
while [ $# -gt 0 ]; do
  case "$1" in
    -L) label="$2"; shift 2 ;;
    -t) label="${2#LABEL=}"; label="${label#\\"}"; label="${label%\\"}"; shift 2 ;;
    -o) shift 2 ;;
    *) shift ;;
  esac
done
[ -n "$label" ] || { echo "blkid: only -L LABEL is supported here" >&2; exit 2; }
at() {  # the bytes at offset $2, length $3 of disk $1, trailing blanks dropped
  dd if="$1" bs=1 skip="$2" count="$3" 2>/dev/null | tr -d '\\000' | sed 's/ *$//'
}
for dev in /dev/sr[0-9]* /dev/vd[a-z] /dev/sd[a-z]; do
  [ -b "$dev" ] || continue
  if [ "$(at "$dev" 32808 32)" = "$label" ] || [ "$(at "$dev" 43 11)" = "$label" ] \\
      || [ "$(at "$dev" 71 11)" = "$label" ]; then
    echo "$dev"
    exit 0
  fi
done
exit 2
""",
}

GUEST_ETC: dict[str, str] = {
    "etc/passwd": "root:*:0:0:root:/root:/bin/sh\n",
    "etc/group": "root:x:0:\n",
    "etc/shells": "/bin/sh\n",
    "etc/hostname": "stackwright-guest\n",
}

UDHCPC_SCRIPT = """\
#!/bin/sh
# udhcpc hook: address, MTU, classless static routes (option 121) or the default router.
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip link set "$interface" up
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-$subnet}" dev "$interface"
    have_default=""
    set -- $staticroutes
    while [ "$#" -ge 2 ]; do
      if [ "$2" = 0.0.0.0 ]; then ip route replace "$1" dev "$interface"
      else ip route replace "$1" via "$2" dev "$interface"; fi
      [ "$1" = 0.0.0.0/0 ] && have_default=1
      shift 2
    done
    if [ -z "$have_default" ] && [ -n "$router" ]; then
      set -- $router
      ip route replace default via "$1" dev "$interface"
    fi
    echo "$ip" > /run/lease
    ;;
esac
exit 0
"""

# Bump when the cpio layout or the build steps change (the scripts are hashed anyway).
RECIPE_VERSION = 4


@dataclass(frozen=True)
class GuestImage:
    kernel: Path
    initramfs: Path
    disk: Path
    versions: dict[str, str] = field(default_factory=dict)
    command_line: str = COMMAND_LINE

    @property
    def key(self) -> str:
        return self.kernel.parent.name


def init_script(modules: Iterable[str]) -> str:
    return INIT_TEMPLATE.format(
        mark=MARK,
        modules=" ".join(modules),
        dhcp_rounds=DHCP_ROUNDS,
        md_tries=METADATA_TRIES,
        md_wait=METADATA_WAIT_S,
        md_timeout=METADATA_TIMEOUT_S,
        md_url=METADATA_URL,
        uuid_sed=UUID_SED,
        hostname_sed=HOSTNAME_SED,
        key_url=KEY_URL,
        disk_magic=DISK_MAGIC,
        disk_sed=DISK_SED,
        disk_block=DISK_BLOCK,
        disk_every=DISK_EVERY_S,
        disk_ticks=DISK_WATCH_S // DISK_EVERY_S,
    )


def recipe_hash() -> str:
    text = "\n".join(
        [str(RECIPE_VERSION), init_script(MODULES), UDHCPC_SCRIPT, json.dumps([SHIMS, GUEST_ETC, SSH_FILES])]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------
# apt


def _run(
    argv: list[str],
    *,
    cwd: Path | None = None,
    timeout: float = TOOL_TIMEOUT,
    extra_env: dict[str, str] | None = None,
) -> str:
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=_apt_env() | (extra_env or {}),
        )
    except FileNotFoundError:
        raise UserError(f"{argv[0]} is not installed — the guest is built from Debian packages") from None
    except subprocess.TimeoutExpired:
        raise UserError(
            f"`{' '.join(argv)}` took longer than {timeout:.0f} s — check apt's network"
        ) from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise UserError(f"`{' '.join(argv)}` failed: {last}")
    return proc.stdout


def _apt_env() -> dict[str, str]:
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    env["DEBIAN_FRONTEND"] = "noninteractive"
    return env


def parse_apt_show(text: str) -> list[dict[str, str]]:
    """The stanzas of `apt-cache show` as [{field: value}] (continuation lines dropped)."""
    stanzas: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if fields:
                stanzas.append(fields)
            fields = {}
        elif not line[0].isspace():
            key, sep, value = line.partition(":")
            if sep:
                fields.setdefault(key.strip(), value.strip())
    return stanzas


def kernel_package_of(depends: str) -> str | None:
    """`linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2), ...` → the versioned kernel package."""
    for dep in depends.split(","):
        name = dep.split("|")[0].strip().split(" ")[0]
        if re.fullmatch(r"linux-image-[0-9][\w.+-]*-cloud-amd64", name):
            return name
    return None


def _candidates(*packages: str) -> dict[str, dict[str, str]]:
    """{package: fields of its candidate version}; one apt-cache call (each rebuilds apt's cache)."""
    found = {
        s["Package"]: s
        for s in parse_apt_show(_run(["apt-cache", "show", "--no-all-versions", *packages]))
        if "Package" in s and "Version" in s
    }
    for package in packages:
        if package not in found:
            raise UserError(
                f"apt knows no candidate for {package} — run `apt-get update` (Debian amd64 needed)"
            )
    return found


def resolve_versions() -> dict[str, str]:
    """{package: candidate version} for the kernel meta package, its kernel, busybox-static,
    dropbear and its libraries, and the boot loader's packages."""
    first = _candidates(KERNEL_META, BUSYBOX, *SSH_PACKAGES, *BOOT_PACKAGES)
    meta = first[KERNEL_META]
    kernel = kernel_package_of(meta.get("Depends", ""))
    if kernel is None:
        raise UserError(f"{KERNEL_META} {meta['Version']} depends on no linux-image-*-cloud-amd64 package")
    return {
        KERNEL_META: meta["Version"],
        kernel: _candidates(kernel)[kernel]["Version"],
        BUSYBOX: first[BUSYBOX]["Version"],
        **{package: first[package]["Version"] for package in (*SSH_PACKAGES, *BOOT_PACKAGES)},
    }


def cache_key(versions: dict[str, str]) -> str:
    kernel = next(p for p in versions if p != KERNEL_META and p.startswith("linux-image-"))
    raw = f"{kernel.removeprefix('linux-image-')}_{versions[kernel]}_busybox_{versions[BUSYBOX]}"
    others = "\n".join(f"{p}={versions[p]}" for p in (*SSH_PACKAGES, *BOOT_PACKAGES) if p in versions)
    extra = hashlib.sha256(others.encode()).hexdigest()[:6] if others else ""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", raw) + (f"_{extra}" if extra else "") + f"_{recipe_hash()}"


# ---------------------------------------------------------------------------------------------
# cpio (newc) — written here so the build needs no cpio tool and is byte-for-byte reproducible


@dataclass(frozen=True)
class CpioEntry:
    name: str
    mode: int  # full st_mode, e.g. 0o100755
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def cpio_newc(entries: Iterable[CpioEntry]) -> bytes:
    out = bytearray()

    def pad() -> None:
        out.extend(b"\0" * (-len(out) % 4))

    for ino, entry in enumerate([*entries, CpioEntry("TRAILER!!!", 0)], start=1):
        name = entry.name.encode() + b"\0"
        nlink = 2 if entry.mode & 0o170000 == 0o040000 else 1
        fields = (
            ino if entry.name != "TRAILER!!!" else 0,
            entry.mode,
            0,
            0,
            nlink if entry.name != "TRAILER!!!" else 1,
            0,
            len(entry.data),
            0,
            0,
            entry.rdev[0],
            entry.rdev[1],
            len(name),
            0,
        )
        out.extend(b"070701" + b"".join(b"%08X" % v for v in fields))
        out.extend(name)
        pad()
        out.extend(entry.data)
        pad()
    return bytes(out)


def _module_bytes(path: Path) -> bytes:
    if path.name.endswith(".ko"):
        return path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(path.read_bytes())
    raise UserError(f"{path.name}: compressed kernel modules of this kind are not supported")


def find_modules(kernel_root: Path) -> dict[str, Path]:
    """{module name: file} for the modules in `MODULES` present in an unpacked kernel package."""
    found: dict[str, Path] = {}
    for path in sorted(kernel_root.glob("**/lib/modules/*/kernel/**/*.ko*")):
        name = path.name.split(".ko")[0]
        if name in MODULES:
            found.setdefault(name, path)
    return found


def _builtin(kernel_root: Path, module: str) -> bool:
    configs = list(kernel_root.glob("boot/config-*"))
    option = {"virtio_pci": "CONFIG_VIRTIO_PCI", "virtio_net": "CONFIG_VIRTIO_NET"}.get(module)
    return bool(option) and any(f"\n{option}=y\n" in c.read_text(errors="replace") for c in configs)


def ssh_files(unpacked: Path) -> dict[str, bytes]:
    """{path in the guest: content} of dropbear and its libraries, from the unpacked packages."""
    found: dict[str, bytes] = {}
    for target, pattern in SSH_FILES.items():
        matches = sorted(p for p in unpacked.glob(pattern) if p.is_file())
        if not matches:
            raise UserError(
                f"the unpacked SSH packages hold no {pattern} — {', '.join(SSH_PACKAGES)} changed?"
            )
        found[target] = matches[0].read_bytes()  # a symlink (libz.so.1 -> ...) reads its target
    return found


def build_initramfs(busybox: Path, modules: dict[str, Path], ssh: dict[str, bytes] | None = None) -> bytes:
    order = [m for m in MODULES if m in modules]
    entries = [
        CpioEntry(d, 0o040755)
        for d in (
            "bin",
            "dev",
            "etc",
            "lib",
            "lib/modules",
            "proc",
            "run",
            "sbin",
            "sys",
            "tmp",
            "usr",
            "usr/bin",
            "usr/sbin",
            "lib/x86_64-linux-gnu",
            "lib64",
            "mnt",
            "etc/dropbear",
        )
    ]
    entries += [CpioEntry("root", 0o040700), CpioEntry("root/.ssh", 0o040700)]
    entries += [
        CpioEntry("dev/console", 0o020600, rdev=(5, 1)),
        CpioEntry("bin/busybox", 0o100755, busybox.read_bytes()),
        CpioEntry("init", 0o100755, init_script(order).encode()),
        CpioEntry("etc/udhcpc.script", 0o100755, UDHCPC_SCRIPT.encode()),
    ]
    entries += [CpioEntry(f"lib/modules/{m}.ko", 0o100644, _module_bytes(modules[m])) for m in order]
    entries += [CpioEntry(path, 0o100755, text.encode()) for path, text in SHIMS.items()]
    entries += [CpioEntry(path, 0o100644, text.encode()) for path, text in GUEST_ETC.items()]
    entries += [CpioEntry(path, 0o100755, data) for path, data in sorted((ssh or {}).items())]
    return gzip.compress(cpio_newc(entries), compresslevel=9, mtime=0)


# ---------------------------------------------------------------------------------------------
# the whole disk


def mbr_sector(boot_code: bytes, disk_bytes: int) -> bytes:
    """The first sector: boot code, one active partition from PARTITION_START to the end, the
    signature. Written here (16 bytes of table) rather than with sfdisk, which the machine building
    the guest need not have; the CHS fields say "use LBA" (FE FF FF) as fdisk writes them."""
    if len(boot_code) > 440:
        raise UserError(f"{MBR_CODE} is {len(boot_code)} bytes; an MBR holds 440 bytes of boot code")
    start = PARTITION_START // SECTOR
    count = disk_bytes // SECTOR - start
    fat16_lba = 0x0E
    entry = bytes([0x80, 0xFE, 0xFF, 0xFF, fat16_lba, 0xFE, 0xFF, 0xFF]) + struct.pack("<II", start, count)
    return boot_code.ljust(446, b"\0") + entry + bytes(48) + b"\x55\xaa"


def syslinux_config(command_line: str) -> str:
    head = "DEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL vmlinuz\n"
    return f"{head}  APPEND initrd=initrd.img {command_line}\n"


def build_disk(target: Path, kernel: Path, initramfs: Path, boot_root: Path, command_line: str) -> None:
    """`target`: an MBR disk booting `kernel` and `initramfs` through SYSLINUX on a FAT partition,
    with the tools of the unpacked boot packages in `boot_root`."""
    payload = kernel.stat().st_size + initramfs.stat().st_size + BOOT_SLACK
    size = PARTITION_START + -(-payload // (1 << 20)) * (1 << 20)
    with open(target, "wb") as disk:
        disk.truncate(size)
        disk.write(mbr_sector((boot_root / MBR_CODE).read_bytes(), size))
    tools = boot_root / "usr" / "bin"
    # syslinux runs mtools' commands by name: the unpacked ones first.
    env = {"PATH": f"{tools}:{os.environ.get('PATH', '/usr/bin:/bin')}", "MTOOLS_SKIP_CHECK": "1"}
    partition = f"{target}@@{PARTITION_START}"
    sectors = (size - PARTITION_START) // SECTOR
    _run(
        [str(tools / "mformat"), "-i", partition, "-T", str(sectors), "-h", "64", "-s", "32",
         "-H", str(PARTITION_START // SECTOR), "-v", "STACKWRIGHT", "::"],
        extra_env=env,
    )  # fmt: skip
    _run([str(tools / "syslinux"), "--install", "--offset", str(PARTITION_START), str(target)], extra_env=env)
    config = target.parent / "syslinux.cfg"
    config.write_text(syslinux_config(command_line))
    try:
        _run(
            [str(tools / "mcopy"), "-i", partition, str(kernel), str(initramfs), str(config), "::/"],
            extra_env=env,
        )
    finally:
        config.unlink()


# ---------------------------------------------------------------------------------------------
# the cache


def _complete(entry: Path) -> GuestImage | None:
    try:
        versions = json.loads((entry / "versions.json").read_text())
    except (OSError, ValueError):
        return None
    image = GuestImage(entry / "vmlinuz", entry / "initrd.img", entry / "disk.raw", versions)
    if all(p.is_file() for p in (image.kernel, image.initramfs, image.disk)):
        return image
    return None


def _cached_any(cache_dir: Path) -> GuestImage | None:
    """The newest complete cache entry of this recipe (when apt cannot say what is current)."""
    if not cache_dir.is_dir():
        return None
    entries = sorted(
        (p for p in cache_dir.iterdir() if p.name.endswith(f"_{recipe_hash()}")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for entry in entries:
        image = _complete(entry)
        if image is not None:
            return image
    return None


def _prune(cache_dir: Path, keep: Path) -> None:
    entries = sorted(
        (p for p in cache_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and p != keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in entries[KEEP_BUILDS - 1 :]:
        shutil.rmtree(old, ignore_errors=True)
    # Temporary build directories left by an interrupted build (older than an hour).
    for tmp in cache_dir.glob(".build-*"):
        if time.time() - tmp.stat().st_mtime > 3600:
            shutil.rmtree(tmp, ignore_errors=True)


def build_guest(
    cache_dir: Path = DEFAULT_CACHE, *, progress: Callable[[str], None] | None = None
) -> GuestImage:
    """The cached guest for the current package versions, built first if missing."""
    say = progress or (lambda _message: None)
    try:
        versions = resolve_versions()
    except UserError:
        fallback = _cached_any(cache_dir)
        if fallback is None:
            raise
        say(f"apt cannot resolve the guest packages; using the cached guest {fallback.key}")
        return fallback
    final = cache_dir / cache_key(versions)
    image = _complete(final)
    if image is not None:
        return image

    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_dir))
    except OSError as exc:
        raise UserError(f"cannot write the guest cache {cache_dir} ({exc.strerror}) — run as root") from None
    try:
        say(f"building the smoke guest {final.name}")
        debs = tmp / "debs"
        debs.mkdir()
        wanted = [f"{p}={v}" for p, v in versions.items() if p != KERNEL_META]
        _run(
            ["apt-get", "-q", "-o", "APT::Sandbox::User=root", "download", *wanted],
            cwd=debs,
            timeout=APT_TIMEOUT,
        )
        kernel_deb = next(debs.glob("linux-image-*.deb"))
        busybox_deb = next(debs.glob(f"{BUSYBOX}_*.deb"))
        kroot, broot, sroot, boot = tmp / "kernel", tmp / "busybox", tmp / "ssh", tmp / "boot"
        _run(["dpkg-deb", "-x", str(kernel_deb), str(kroot)])
        _run(["dpkg-deb", "-x", str(busybox_deb), str(broot)])
        for package in SSH_PACKAGES:
            _run(["dpkg-deb", "-x", str(next(debs.glob(f"{package}_*.deb"))), str(sroot)])
        for package in BOOT_PACKAGES:
            _run(["dpkg-deb", "-x", str(next(debs.glob(f"{package}_*.deb"))), str(boot)])

        vmlinuz = sorted(kroot.glob("boot/vmlinuz-*"))
        if not vmlinuz:
            raise UserError(f"{kernel_deb.name} holds no boot/vmlinuz-*")
        busybox = broot / "bin" / "busybox"
        if not busybox.is_file():
            raise UserError(f"{busybox_deb.name} holds no bin/busybox")
        modules = find_modules(kroot)
        missing = [m for m in sorted(REQUIRED_MODULES) if m not in modules and not _builtin(kroot, m)]
        if missing:
            raise UserError(f"{kernel_deb.name} lacks the module(s) {', '.join(missing)}")

        shutil.copyfile(vmlinuz[0], tmp / "vmlinuz")
        (tmp / "initrd.img").write_bytes(build_initramfs(busybox, modules, ssh_files(sroot)))
        build_disk(tmp / "disk.raw", tmp / "vmlinuz", tmp / "initrd.img", boot, COMMAND_LINE)
        for unpacked in (debs, kroot, broot, sroot, boot):
            shutil.rmtree(unpacked)
        recorded = {
            **versions,
            "modules": " ".join(m for m in MODULES if m in modules),
            "recipe": recipe_hash(),
        }
        (tmp / "versions.json").write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
        for path in tmp.iterdir():
            path.chmod(0o644)
        tmp.chmod(0o755)
        try:
            os.rename(tmp, final)
        except OSError:
            # Another build won the race (or a broken entry is in the way): use or replace it.
            if _complete(final) is None:
                shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _prune(cache_dir, final)
    image = _complete(final)
    if image is None:
        raise UserError(f"the guest cache entry {final} is incomplete after building — remove it and retry")
    return image
