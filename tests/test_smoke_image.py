"""The smoke guest image: offline checks of its parts, and (lab) a real build booted under QEMU.

The QEMU boot uses user-mode networking with `restrict=on`: the guest gets slirp's DHCP lease
(10.0.2.15) and cannot reach anything else, so its metadata fetch must fail — and say so. Extra
raw files stand in for Cinder volumes: one attached at boot, one hot-plugged through QMP.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from stackwright.polling import poll
from stackwright.smoke import image
from stackwright.smoke.console import parse_console, volume_serial
from stackwright.smoke.image import (
    MODULES,
    CpioEntry,
    GuestImage,
    build_guest,
    cache_key,
    cpio_newc,
    init_script,
    kernel_package_of,
    mbr_sector,
    parse_apt_show,
    syslinux_config,
)
from stackwright.yamlsource import UserError

VERSIONS = {
    "linux-image-cloud-amd64": "6.1.192-2",
    "linux-image-6.1.0-56-cloud-amd64": "6.1.192-2",
    "busybox-static": "1:1.35.0-4+deb12u1+b1",
}


def read_newc(data: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    """{name: (mode, data, rdev)} from a newc archive (a reader independent of the writer)."""
    out: dict[str, tuple[int, bytes, tuple[int, int]]] = {}
    pos = 0
    while True:
        assert data[pos : pos + 6] == b"070701"
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = fields[11], fields[6]
        name = data[pos + 110 : pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos : pos + filesize]
        pos += filesize
        pos += -pos % 4
        if name == "TRAILER!!!":
            return out
        out[name] = (fields[1], body, (fields[9], fields[10]))


# --------------------------------------------------------------------------------- offline


def test_cpio_roundtrip_and_alignment() -> None:
    archive = cpio_newc(
        [
            CpioEntry("bin", 0o040755),
            CpioEntry("dev/console", 0o020600, rdev=(5, 1)),
            CpioEntry("init", 0o100755, b"#!/bin/sh\necho hi\n"),
            CpioEntry("odd", 0o100644, b"x" * 5),
        ]
    )
    assert len(archive) % 4 == 0
    entries = read_newc(archive)
    assert entries["init"] == (0o100755, b"#!/bin/sh\necho hi\n", (0, 0))
    assert entries["dev/console"][2] == (5, 1)
    assert entries["odd"][1] == b"xxxxx"
    assert list(entries) == ["bin", "dev/console", "init", "odd"]


def test_cpio_is_reproducible() -> None:
    entries = [CpioEntry("init", 0o100755, b"#!/bin/sh\n")]
    assert cpio_newc(entries) == cpio_newc(entries)


def test_parse_apt_show_stanzas_and_kernel_dependency() -> None:
    text = (
        "Package: linux-image-cloud-amd64\nVersion: 6.1.192-2\n"
        "Depends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)\n"
        "Description: meta\n continuation: not a field\n\n"
        "Package: busybox-static\nVersion: 1:1.35.0-4+deb12u1+b1\n"
    )
    stanzas = parse_apt_show(text)
    assert [s["Package"] for s in stanzas] == ["linux-image-cloud-amd64", "busybox-static"]
    assert "continuation" not in stanzas[0]
    assert kernel_package_of(stanzas[0]["Depends"]) == "linux-image-6.1.0-56-cloud-amd64"
    assert kernel_package_of("kmod, linux-base (>= 4.3~)") is None
    assert kernel_package_of("foo | linux-image-6.1.0-9-cloud-amd64") is None  # only first alternatives


def test_cache_key_is_a_safe_name_and_changes_with_versions() -> None:
    key = cache_key(VERSIONS)
    assert "/" not in key and ":" not in key
    assert key.startswith("6.1.0-56-cloud-amd64_6.1.192-2_busybox_1_1.35.0")
    assert cache_key({**VERSIONS, "busybox-static": "1:1.36.1-1"}) != key


def test_mbr_has_one_active_partition_from_1_mib_to_the_end() -> None:
    code = bytes(range(256)) + bytes(184)  # 440 bytes, like SYSLINUX's mbr.bin
    sector = mbr_sector(code, 24 << 20)
    assert len(sector) == 512 and sector[:440] == code and sector[510:] == b"\x55\xaa"
    entry = sector[446:462]
    assert entry[0] == 0x80 and entry[4] == 0x0E
    assert int.from_bytes(entry[8:12], "little") == 2048
    assert int.from_bytes(entry[12:16], "little") == (24 << 20) // 512 - 2048
    assert sector[462:510] == bytes(48)  # the other three entries empty
    with pytest.raises(UserError, match="440 bytes"):
        mbr_sector(bytes(441), 24 << 20)


def test_syslinux_config_boots_the_kernel_with_the_initramfs_and_command_line() -> None:
    config = syslinux_config(image.COMMAND_LINE)
    assert "KERNEL vmlinuz\n" in config and "TIMEOUT 0\n" in config
    assert f"APPEND initrd=initrd.img {image.COMMAND_LINE}\n" in config


def test_init_script_loads_modules_twice_in_order_and_reports_fixed_lines() -> None:
    script = init_script(MODULES)
    assert script.startswith("#!/bin/busybox sh\n")
    assert "for pass in 1 2; do" in script
    assert f"for mod in {' '.join(MODULES)}; do" in script
    for line in ("say lease ", "say uuid ", "say uuid-failed", "say lease-failed", "say done"):
        assert line in script
    assert "udhcpc -i eth0" in script
    assert image.METADATA_URL in script
    assert f'while [ "$try" -lt {image.METADATA_TRIES} ]' in script
    # disks besides vda, each with a fresh token, read back past the page cache
    for line in ("say disk ", "say disk-gone ", "/sys/block/vd[b-z]", "/proc/sys/kernel/random/uuid"):
        assert line in script
    assert "echo 3 > /proc/sys/vm/drop_caches" in script and "iflag=direct" in script


def _fake_entry(cache: Path, versions: dict[str, str]) -> Path:
    entry = cache / cache_key(versions)
    entry.mkdir(parents=True)
    for name in ("vmlinuz", "initrd.img", "disk.raw"):
        (entry / name).write_bytes(b"x")
    (entry / "versions.json").write_text(json.dumps(versions))
    return entry


def test_warm_cache_is_used_without_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = _fake_entry(tmp_path, VERSIONS)
    monkeypatch.setattr(image, "resolve_versions", lambda: dict(VERSIONS))

    def no_tools(argv: list[str], **_: object) -> str:
        raise AssertionError(f"a warm cache ran {argv}")

    monkeypatch.setattr(image, "_run", no_tools)
    guest = build_guest(tmp_path)
    assert guest.kernel == entry / "vmlinuz" and guest.key == entry.name


def test_incomplete_entry_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = _fake_entry(tmp_path, VERSIONS)
    (entry / "initrd.img").unlink()
    monkeypatch.setattr(image, "resolve_versions", lambda: dict(VERSIONS))
    calls: list[list[str]] = []

    def fail_download(argv: list[str], **_: object) -> str:
        calls.append(argv)
        raise UserError("download refused in this test")

    monkeypatch.setattr(image, "_run", fail_download)
    with pytest.raises(UserError, match="download refused"):
        build_guest(tmp_path)
    assert calls and "download" in calls[0]
    assert not list(tmp_path.glob(".build-*")), "the temporary build directory must be removed"


def test_cached_guest_used_when_apt_cannot_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = _fake_entry(tmp_path, VERSIONS)

    def unresolved() -> dict[str, str]:
        raise UserError("apt knows no candidate for linux-image-cloud-amd64")

    monkeypatch.setattr(image, "resolve_versions", unresolved)
    notes: list[str] = []
    assert build_guest(tmp_path, progress=notes.append).key == entry.name
    assert notes and "cached guest" in notes[0]
    with pytest.raises(UserError, match="no candidate"):
        build_guest(tmp_path / "empty")


# --------------------------------------------------------------------------------- lab


def _require_root_and_apt() -> None:
    reason = None
    if os.geteuid() != 0:
        reason = "building the guest image needs root (apt, /var/cache/stackwright)"
    elif shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        reason = "apt-get and dpkg-deb are needed to build the guest from Debian packages"
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: lab tests must run, but {reason}")
    pytest.skip(reason)


def _ensure_tool(tool: str, package: str) -> str:
    found = shutil.which(tool)
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    proc = subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
        capture_output=True, text=True, timeout=900, env=env, check=False,
    )  # fmt: skip
    found = shutil.which(tool)
    assert found, f"installing {package} failed: {proc.stderr[-2000:]}"
    return found


def _ensure_qemu() -> str:
    return _ensure_tool("qemu-system-x86_64", "qemu-system-x86")


@pytest.fixture(scope="module")
def guest() -> GuestImage:
    _require_root_and_apt()
    started = time.monotonic()
    built = build_guest()
    print(f"\nguest {built.key}: build_guest took {time.monotonic() - started:.1f} s")
    return built


@pytest.mark.lab
def test_guest_files(guest: GuestImage) -> None:
    disk = guest.disk.read_bytes()
    assert disk[510:512] == b"\x55\xaa" and disk[446] == 0x80, "no active partition in the MBR"
    assert len(disk) > guest.kernel.stat().st_size + guest.initramfs.stat().st_size
    assert len(disk) < 64 << 20
    for name in (b"VMLINUZ", b"INITRD  IMG", b"SYSLINUXCFG", b"LDLINUX SYS"):
        assert name in disk, f"{name!r} not in the FAT root directory"
    assert guest.kernel.read_bytes() in disk
    assert guest.kernel.stat().st_size > 1_000_000
    entries = read_newc(gzip.decompress(guest.initramfs.read_bytes()))
    assert entries["init"][0] == 0o100755
    assert entries["dev/console"][2] == (5, 1)
    for module in ("virtio", "virtio_ring", "virtio_pci", "failover", "net_failover", "virtio_net"):
        assert f"lib/modules/{module}.ko" in entries, module
    for path in (
        "usr/sbin/dropbear",
        "lib64/ld-linux-x86-64.so.2",
        "usr/bin/curl",
        "usr/bin/sudo",
        "etc/passwd",
    ):
        assert path in entries, path
    assert guest.initramfs.stat().st_size < 5_000_000
    assert guest.versions["busybox-static"] and guest.versions["linux-image-cloud-amd64"]


@pytest.mark.lab
def test_warm_cache_does_not_rebuild(guest: GuestImage, monkeypatch: pytest.MonkeyPatch) -> None:
    before = guest.initramfs.stat()
    real_run = image._run

    def no_download(argv: list[str], **kwargs: object) -> str:
        assert "download" not in argv and "dpkg-deb" not in argv[0], f"warm cache ran {argv}"
        return real_run(argv, **kwargs)  # type: ignore[arg-type]  # the real keyword arguments

    monkeypatch.setattr(image, "_run", no_download)
    started = time.monotonic()
    again = build_guest()
    print(f"\nwarm build_guest: {time.monotonic() - started:.2f} s")
    assert again == guest
    assert again.initramfs.stat().st_ino == before.st_ino
    assert again.initramfs.stat().st_mtime == before.st_mtime


@pytest.mark.lab
def test_uuid_sed_with_the_guest_busybox(guest: GuestImage, tmp_path: Path) -> None:
    entries = read_newc(gzip.decompress(guest.initramfs.read_bytes()))
    busybox = tmp_path / "busybox"
    busybox.write_bytes(entries["bin/busybox"][1])
    busybox.chmod(0o755)
    meta = tmp_path / "meta_data.json"
    meta.write_text(
        '{"uuid": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "meta": {}, "hostname": "x", '
        '"project_id": "4f1c", "devices": [], "dedicated_cpus": []}'
    )
    out = subprocess.run(
        [str(busybox), "sed", "-n", image.UUID_SED, str(meta)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


class _Console:
    """QEMU's serial console, read in a thread; bounded waits for a line."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.lines: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._lock:
                self.lines.append((time.monotonic(), raw.decode(errors="replace").rstrip("\r\n")))

    def text(self) -> str:
        with self._lock:
            return "\n".join(line for _, line in self.lines)

    def wait_for(self, needle: str, timeout: float) -> float | None:
        def seen() -> float | None:
            with self._lock:
                return next((stamp for stamp, line in self.lines if needle in line), None)

        poll(
            seen,
            within_s=timeout,
            every_s=0.2,
            done=lambda stamp: stamp is not None or self.proc.poll() is not None,
        )
        return seen()


class _Qmp:
    """QEMU's machine protocol on a unix socket: one command at a time, events skipped."""

    def __init__(self, path: Path) -> None:
        connected = poll(lambda: self._connect(path), within_s=10, every_s=0.1, done=lambda s: s is not None)
        assert connected is not None, f"no QMP socket at {path}"
        self._sock = connected
        self._lines = connected.makefile("r", encoding="utf-8")
        assert "QMP" in json.loads(self._lines.readline()), "no QMP greeting"
        self.execute("qmp_capabilities")

    @staticmethod
    def _connect(path: Path) -> socket.socket | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
        except OSError:
            sock.close()
            return None
        sock.settimeout(30)
        return sock

    def execute(self, command: str, arguments: Mapping[str, object] | None = None) -> object:
        request = {"execute": command, "arguments": arguments or {}}
        self._sock.sendall(json.dumps(request).encode() + b"\n")
        while True:
            answer = json.loads(self._lines.readline())
            if "error" in answer:
                raise AssertionError(f"QMP {command}: {answer['error']}")
            if "return" in answer:
                return answer["return"]

    def close(self) -> None:
        self._lines.close()
        self._sock.close()


@contextmanager
def boot(
    guest: GuestImage,
    netdev: str,
    cdrom: Path | None = None,
    volumes: dict[str, Path] | None = None,
    qmp: Path | None = None,
) -> Iterator[tuple[_Console, float]]:
    """The guest's disk image under QEMU (TCG), booted through its MBR and SYSLINUX as Nova boots
    it (snapshot=on: the cached image is not written), with one virtio NIC on user-mode
    networking `netdev` (and a cdrom on the IDE bus, as Nova attaches a config drive; and raw
    files as virtio disks with a serial, {serial: file}, as Nova attaches Cinder volumes; and a
    QMP socket for hot-plugging). The boot disk has bootindex 0, as Nova's first disk: SeaBIOS
    would otherwise try a blank volume first and give up."""
    qemu = _ensure_qemu()
    argv = [
        qemu, "-accel", "tcg", "-m", "256", "-nographic", "-no-reboot",
        "-drive", f"file={guest.disk},format=raw,if=none,id=root,snapshot=on",
        "-device", "virtio-blk-pci,drive=root,bootindex=0",
        "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0",
    ]  # fmt: skip
    if cdrom is not None:
        argv += ["-drive", f"file={cdrom},media=cdrom,if=ide,readonly=on"]
    for i, (serial, path) in enumerate((volumes or {}).items()):
        argv += ["-drive", f"file={path},format=raw,if=none,id=vol{i}"]
        argv += ["-device", f"virtio-blk-pci,drive=vol{i},serial={serial}"]
    if qmp is not None:
        argv += ["-qmp", f"unix:{qmp},server=on,wait=off"]
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        yield _Console(proc), started
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _tail(console: _Console) -> str:
    return "\n".join(console.text().splitlines()[-25:])


@pytest.mark.lab
def test_guest_boots_gets_lease_and_reports_metadata_failure(guest: GuestImage) -> None:
    # restrict=on: slirp's DHCP answers; nothing outside the guest is reachable.
    with boot(guest, "user,id=n0,restrict=on") as (console, started):
        leased = console.wait_for("STACKWRIGHT-SMOKE lease ", timeout=120)
        assert leased is not None, f"no lease line within 120 s; console tail:\n{_tail(console)}"
        print(f"\nqemu start → lease line: {leased - started:.1f} s")
        # 20 metadata tries × (≤ 10 s + 3 s) — bounded.
        limit = image.METADATA_TRIES * (image.METADATA_TIMEOUT_S + image.METADATA_WAIT_S) + 30
        done = console.wait_for("STACKWRIGHT-SMOKE done", timeout=limit)
        assert done is not None, f"no done line; console tail:\n{_tail(console)}"
        print(f"qemu start → done line: {done - started:.1f} s")
        text = console.text()
    report = parse_console(text)
    assert report.started and report.kernel
    assert str(report.lease) == "10.0.2.15"
    assert "STACKWRIGHT-SMOKE lease 10.0.2.15" in text
    assert report.uuid is None
    assert report.uuid_failed is not None
    assert report.uuid_failed.startswith(f"after {image.METADATA_TRIES} tries: ")
    reason = report.uuid_failed.partition(": ")[2]
    assert reason and "Segmentation" not in reason, f"wget itself failed: {reason}"
    assert report.done
    print(f"guest's failure line: uuid-failed {report.uuid_failed}")


def _volume(path: Path, first_block: bytes = b"") -> Path:
    path.write_bytes(first_block.ljust(image.DISK_BLOCK, b"\0"))
    os.truncate(path, 8 << 20)
    return path


@pytest.mark.lab
def test_guest_reads_its_uuid_and_checks_attached_disks(guest: GuestImage, tmp_path: Path) -> None:
    """slirp on 169.254.169.0/24 with a guestfwd for 169.254.169.254:80 to a local script that
    answers like Nova's metadata service (still restrict=on: no traffic leaves QEMU). Two raw
    files stand in for Cinder volumes: one attached at boot, one hot-plugged after `done` (holding
    a stale marker that must not pass for the new token), unplugged and plugged in again."""
    uuid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    body = json.dumps({"uuid": uuid, "meta": {}, "hostname": "smoke", "launch_index": 0})
    response = tmp_path / "response.http"
    response.write_bytes(
        b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
    )
    server = tmp_path / "metadata.sh"
    server.write_text(f"#!/bin/sh\nread -r request\ncat {response}\n")
    server.chmod(0o755)
    netdev = f"user,id=n0,restrict=on,net=169.254.169.0/24,guestfwd=tcp:169.254.169.254:80-cmd:{server}"
    at_boot, hot = "5c0ffee0-0001-4bbb-8ccc-0123456789ab", "5c0ffee0-0002-4bbb-8ccc-0123456789ab"
    boot_file = _volume(tmp_path / "at-boot.raw")
    stale = "11111111-2222-4333-8444-555555555555"
    hot_file = _volume(tmp_path / "hot.raw", f"{image.DISK_MAGIC} x y {stale}\n".encode())
    qmp_path = tmp_path / "qmp.sock"
    volumes = {volume_serial(at_boot): boot_file}
    hot_disk = {"driver": "virtio-blk-pci", "id": "hot0", "drive": "hot", "serial": volume_serial(hot)}
    hot_line = f"STACKWRIGHT-SMOKE disk vdc {volume_serial(hot)} "
    with boot(guest, netdev, volumes=volumes, qmp=qmp_path) as (console, started):
        done = console.wait_for("STACKWRIGHT-SMOKE done", timeout=120)
        assert done is not None, f"no done line within 120 s; console tail:\n{_tail(console)}"
        print(f"\nqemu start → uuid and done: {done - started:.1f} s")
        checked = console.wait_for(f"STACKWRIGHT-SMOKE disk vdb {volume_serial(at_boot)} ", timeout=30)
        assert checked is not None, f"no disk line for vdb; console tail:\n{_tail(console)}"
        print(f"done → disk line of the disk attached at boot: {checked - done:.1f} s")

        qmp = _Qmp(qmp_path)
        try:
            qmp.execute(
                "blockdev-add",
                {"driver": "raw", "node-name": "hot", "file": {"driver": "file", "filename": str(hot_file)}},
            )
            plugged = time.monotonic()
            qmp.execute("device_add", hot_disk)
            seen = console.wait_for(hot_line, timeout=60)
            assert seen is not None, f"no disk line for the hot-plugged vdc; console tail:\n{_tail(console)}"
            print(f"device_add → disk line: {seen - plugged:.1f} s")
            first_hot = parse_console(console.text()).disk_for(hot)

            unplugged = time.monotonic()
            qmp.execute("device_del", {"id": "hot0"})
            gone = console.wait_for("STACKWRIGHT-SMOKE disk-gone vdc", timeout=60)
            assert gone is not None, f"no disk-gone line after device_del; console tail:\n{_tail(console)}"
            print(f"device_del → disk-gone line: {gone - unplugged:.1f} s")

            # attached again: checked again, with a new token (the device may still be going)
            def replug() -> bool:
                try:
                    qmp.execute("device_add", hot_disk)
                except AssertionError:
                    return False
                return True

            assert poll(replug, within_s=30, every_s=0.5), "device_add of the unplugged disk kept failing"
            again = poll(
                lambda: parse_console(console.text()).disks,
                within_s=60,
                every_s=0.2,
                done=lambda disks: len(disks) == 3,
            )
            assert len(again) == 3, f"no second disk line for vdc; console tail:\n{_tail(console)}"
        finally:
            qmp.close()
        report = parse_console(console.text())
    assert str(report.lease) == "169.254.169.15"
    assert report.uuid == uuid, f"console tail:\n{_tail(console)}"
    assert report.done

    first = report.disk_for(at_boot)
    assert first is not None and first.dev == "vdb" and first.attached
    assert first.ok and first.wrote is not None, first
    written = boot_file.read_bytes()[: image.DISK_BLOCK]
    marker = f"{image.DISK_MAGIC} {volume_serial(at_boot)} {uuid} {first.wrote}\n".encode()
    assert written == marker.ljust(image.DISK_BLOCK, b"\0")

    # the hot-plugged disk: checked, gone, checked again, each time with a token of its own
    assert [(d.dev, d.attached) for d in report.disks] == [("vdb", True), ("vdc", False), ("vdc", True)]
    assert first_hot is not None and first_hot.ok
    second = report.disk_for(hot)
    assert second is not None and second.ok and second.attached
    assert len({stale, first.wrote, first_hot.wrote, second.wrote}) == 4, report.disks
    assert hot_file.read_bytes().startswith(
        f"{image.DISK_MAGIC} {volume_serial(hot)} {uuid} {second.wrote}\n".encode()
    )


@pytest.mark.lab
def test_udhcpc_hook_sets_address_mtu_and_routes(guest: GuestImage, tmp_path: Path) -> None:
    """The guest's udhcpc hook, run by the guest's busybox in a private network namespace (no
    traffic): address, MTU, option 121 routes, else the router option as default route."""
    host_ip = shutil.which("ip")
    unshare = shutil.which("unshare")
    assert host_ip and unshare, "iproute2 and util-linux are needed (the lab uses them too)"
    entries = read_newc(gzip.decompress(guest.initramfs.read_bytes()))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "busybox").write_bytes(entries["bin/busybox"][1])
    (bindir / "busybox").chmod(0o755)
    for applet in ("sh", "ip", "cat"):
        (bindir / applet).symlink_to("busybox")
    hook = tmp_path / "udhcpc.script"
    hook.write_bytes(entries["etc/udhcpc.script"][1])
    script = f"""
{host_ip} link add d0 type veth peer name d1 && {host_ip} link set d1 up || exit 90
export PATH={bindir}
interface=d0 ip=10.99.0.23 subnet=255.255.255.0 mtu=1450 router=10.99.0.1 \\
  staticroutes="169.254.169.254/32 10.99.0.2 0.0.0.0/0 10.99.0.1" sh {hook} bound || exit 91
cat /run/lease 2>/dev/null; ip -4 addr show d0; ip route; ip link show d0
echo ===
interface=d0 ip=10.99.0.24 subnet=255.255.255.0 router="10.99.0.9 10.99.0.1" sh {hook} renew || exit 92
ip -4 addr show d0; ip route
"""
    # /run/lease is written by the hook: give it a private /run via a mount namespace.
    proc = subprocess.run(
        [unshare, "--net", "--mount", "sh", "-c", f"mount -t tmpfs tmpfs /run && {script}"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first, _, second = proc.stdout.partition("===")
    assert first.startswith("10.99.0.23\n")
    assert "inet 10.99.0.23/24" in first and "mtu 1450" in first
    assert "default via 10.99.0.1 dev d0" in first
    assert "169.254.169.254 via 10.99.0.2 dev d0" in first
    assert "inet 10.99.0.24/24" in second and "inet 10.99.0.23" not in second
    assert "default via 10.99.0.9 dev d0" in second  # no option 121: the first router


@pytest.mark.lab
def test_guest_takes_the_metadata_key_and_answers_tempests_commands_over_ssh(
    guest: GuestImage, tmp_path: Path
) -> None:
    """What Tempest's validation does: log in as root with the keypair's key (from the metadata
    service), with its shell prologue, and run hostname, curl (GET and POST), sudo and ping. A
    local script answers like Nova's metadata service; SSH reaches the guest through a loopback
    port QEMU forwards (restrict=on: nothing else leaves QEMU)."""
    import socket

    import paramiko

    key = paramiko.Ed25519Key.generate() if hasattr(paramiko.Ed25519Key, "generate") else None
    if key is None:  # paramiko makes no ed25519 keys: an RSA one (dropbear takes both)
        key = paramiko.RSAKey.generate(2048)
    public = f"{key.get_name()} {key.get_base64()} tempest"
    uuid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    meta = json.dumps({"uuid": uuid, "hostname": "tempest-server-42.novalocal", "meta": {}})
    posted = tmp_path / "posted"
    server = tmp_path / "metadata.py"
    server.write_text(
        f"""#!{sys.executable}
import sys
words = sys.stdin.readline().split()
method, path = (words + ["GET", "/"])[:2]
length = 0
while (line := sys.stdin.readline()) not in ("\\r\\n", "\\n", ""):
    if line.lower().startswith("content-length:"):
        length = int(line.split(":")[1])
if method == "POST":
    open({str(posted)!r}, "w").write(sys.stdin.read(length))
body = {{"meta_data.json": {meta!r}, "openssh-key": {public!r}, "public-ipv4": "203.0.113.7"}}
body = next((v for k, v in body.items() if path.endswith(k)), "")
sys.stdout.write(f"HTTP/1.0 200 OK\\r\\nContent-Length: {{len(body)}}\\r\\n\\r\\n{{body}}")
"""
    )
    server.chmod(0o755)
    # A config drive as Nova makes it: ISO 9660, volume id config-2 (genisoimage, as nova-compute).
    drive = tmp_path / "drive"
    (drive / "openstack" / "latest").mkdir(parents=True)
    (drive / "openstack" / "latest" / "meta_data.json").write_text(meta)
    iso = tmp_path / "config.iso"
    make_iso = [_ensure_tool("genisoimage", "genisoimage"), "-o", str(iso), "-ldots", "-allow-lowercase",
                "-allow-multidot", "-l", "-quiet", "-J", "-r", "-V", "config-2", str(drive)]  # fmt: skip
    subprocess.run(make_iso, check=True, capture_output=True, timeout=60)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    netdev = (
        "user,id=n0,restrict=on,net=169.254.169.0/24,"
        f"guestfwd=tcp:169.254.169.254:80-cmd:{server},hostfwd=tcp:127.0.0.1:{port}-:22"
    )
    with boot(guest, netdev, cdrom=iso) as (console, started):
        sshd = console.wait_for("STACKWRIGHT-SMOKE sshd", timeout=120)
        assert sshd is not None, f"no sshd line within 120 s; console tail:\n{_tail(console)}"
        assert "STACKWRIGHT-SMOKE ssh-key" in console.text()
        print(f"\nqemu start → sshd: {sshd - started:.1f} s")
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # a throwaway guest's new key
        client.connect("127.0.0.1", port=port, username="root", pkey=key, timeout=30,
                       allow_agent=False, look_for_keys=False)  # fmt: skip
        prologue = "set -eu -o pipefail; PATH=$PATH:/sbin:/usr/sbin;"
        outputs = {}
        for command in (
            "hostname",
            "curl http://169.254.169.254/latest/meta-data/public-ipv4",
            "curl -X POST -d secretpassword http://169.254.169.254/openstack/2013-10-17/password",
            "sudo id -u",
            "ping -c1 -w1 -s56 169.254.169.2",
            "blkid -L config-2 -o device",  # then mount it, as Tempest reads a config drive
            "lsblk -lb --nodeps",  # Tempest counts the disks (an ephemeral disk adds one)
            "sudo mount /dev/sr0 /mnt && sudo cat /mnt/openstack/latest/meta_data.json && sudo umount /mnt",
        ):
            _, stdout, stderr = client.exec_command(f"{prologue} {command}", timeout=30)
            status = stdout.channel.recv_exit_status()
            outputs[command] = stdout.read().decode().strip()
            assert status == 0, (command, outputs[command], stderr.read().decode())
        client.close()
    assert outputs["hostname"] == "tempest-server-42"  # the first label, as cloud-init sets it
    assert outputs["curl http://169.254.169.254/latest/meta-data/public-ipv4"] == "203.0.113.7"
    assert outputs["sudo id -u"] == "0"
    assert posted.read_text() == "secretpassword"
    assert outputs["blkid -L config-2 -o device"] == "/dev/sr0"
    # remote_client.get_disks: the header, then the rows whose TYPE column says disk
    header, *rows = outputs["lsblk -lb --nodeps"].splitlines()
    at = header.find("TYPE")
    assert at > 0 and [r.split()[0] for r in rows if r[at : at + 4] == "disk"] == ["vda"], rows
    assert any(r.split()[0] == "sr0" and r[at : at + 3] == "rom" for r in rows), rows
    assert uuid in outputs[next(c for c in outputs if c.startswith("sudo mount"))]
