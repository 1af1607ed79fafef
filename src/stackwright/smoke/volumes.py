"""verify --smoke with storage nodes: Cinder volumes in Ceph, proven from inside the guest.

As the smoke user: a 1 GB volume is created and attached to the running smoke server; the guest
sees a new virtio disk, writes a fresh token to it and reads it back past its page cache, and says
so on its console (`STACKWRIGHT-SMOKE disk vdb <serial> wrote <t> read <t>`, smoke.image); the
serial is the volume's id, so the line is about this volume. The volume is detached and deleted.
Then a volume is made from the guest's image (a copy-on-write clone inside Ceph, Glance's RBD
location) and a second server boots from it until its console shows its DHCP lease.

Everything is named with the smoke prefix (run.py's cleanup removes what a broken run leaves).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stackwright.polling import poll
from stackwright.smoke.console import DiskCheck, parse_console

if TYPE_CHECKING:
    from openstack.connection import Connection

VOLUME_GB = 1
VOLUME_TIMEOUT_S = 180
ATTACH_TIMEOUT_S = 180.0
GUEST_DISK_TIMEOUT_S = 180.0  # the guest looks for new disks every 2 s
POLL_S = 2.0


class VolumeFailure(Exception):
    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


CINDER_HINT = (
    "`stackwright verify` (cinder-volume up? Ceph healthy?); /var/log/cinder/cinder-volume.log on the "
    "controller"
)


def wait_volume(conn: Connection, volume_id: str, want: str, timeout: float = VOLUME_TIMEOUT_S) -> Any:
    def look() -> Any:
        volume = conn.block_storage.get_volume(volume_id)
        if str(volume.status).startswith("error"):
            raise VolumeFailure(f"volume {volume_id} went to {volume.status}", CINDER_HINT)
        return volume

    volume = poll(look, within_s=timeout, every_s=POLL_S, done=lambda v: v.status == want)
    if volume.status != want:
        raise VolumeFailure(
            f"waited {timeout:.0f} s for volume {volume_id} to be {want}; it is {volume.status}", CINDER_HINT
        )
    return volume


def create_volume(conn: Connection, name: str, **source: str) -> str:
    volume = conn.block_storage.create_volume(name=name, size=VOLUME_GB, **source)
    wait_volume(conn, str(volume.id), "available")
    return str(volume.id)


def guest_disk(
    console: Callable[[], str], volume_id: str, timeout: float = GUEST_DISK_TIMEOUT_S
) -> DiskCheck:
    """The guest's check of the volume's disk, once its console shows it."""
    found = poll(
        lambda: parse_console(console()).disk_for(volume_id),
        within_s=timeout,
        every_s=POLL_S,
        done=lambda d: d is not None,
    )
    if found is None:
        raise VolumeFailure(
            f"the guest did not report a disk with serial {volume_id[:20]} within {timeout:.0f} s of the "
            "attachment",
            "nova-compute.log on the compute node (attach: libvirt, qemu's rbd driver, the libvirt "
            "secret — `stackwright doctor`)",
        )
    return found


def attach_and_check(
    conn: Connection, server_id: str, volume_id: str, console: Callable[[], str]
) -> DiskCheck:
    started = time.monotonic()
    conn.compute.create_volume_attachment(server_id, volume_id=volume_id)
    wait_volume(conn, volume_id, "in-use", ATTACH_TIMEOUT_S)
    left = max(10.0, GUEST_DISK_TIMEOUT_S - (time.monotonic() - started))
    disk = guest_disk(console, volume_id, left)
    if not disk.ok:
        raise VolumeFailure(
            f"the guest wrote {disk.wrote or 'nothing'} to {disk.dev} and read back {disk.read or 'nothing'}",
            "the volume's writes do not come back: `ceph health detail` on the storage node, "
            "nova-compute.log on the compute node",
        )
    return disk


def detach(conn: Connection, server_id: str, volume_id: str) -> None:
    conn.compute.delete_volume_attachment(volume_id, server_id)
    wait_volume(conn, volume_id, "available", ATTACH_TIMEOUT_S)


def delete_volumes(conn: Connection, prefix: str) -> list[str]:
    """Delete the volumes named with the prefix (in any project); the names of those that stayed."""
    left: list[str] = []
    volumes = [v for v in conn.block_storage.volumes(all_projects=True) if str(v.name).startswith(prefix)]
    for volume in volumes:
        if volume.status == "in-use":
            for attachment in volume.attachments or []:
                conn.compute.delete_volume_attachment(volume.id, attachment["server_id"], ignore_missing=True)
            wait_volume(conn, str(volume.id), "available", ATTACH_TIMEOUT_S)
        conn.block_storage.delete_volume(str(volume.id), ignore_missing=True)
    for volume in volumes:
        try:
            conn.block_storage.wait_for_delete(volume, interval=2, wait=VOLUME_TIMEOUT_S)
        except Exception:
            left.append(str(volume.name))
    return left
