"""The test guest in Glance: one raw whole-disk image (boot loader, kernel, initramfs), public,
named `<prefix>-disk`. An image already there with the same content is reused; others of that
name are replaced."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from stackwright.smoke.image import GuestImage

if TYPE_CHECKING:
    from openstack.connection import Connection


def ensure_guest_images(conn: Connection, guest: GuestImage, prefix: str, notes: list[str]) -> str:
    """The disk image's id (the one servers boot), made or reused; the kernel and ramdisk images
    earlier versions booted directly are removed."""
    for stale in guest_image_names(prefix)[1:]:
        for image in list(conn.image.images(name=stale)):
            conn.image.delete_image(str(image.id), ignore_missing=True)
    return ensure_image(conn, f"{prefix}-disk", guest.disk, "raw", "bare", notes)


def guest_image_names(prefix: str) -> tuple[str, ...]:
    """The disk first; then the kernel and ramdisk images of earlier versions (removed too)."""
    return (f"{prefix}-disk", f"{prefix}-ramdisk", f"{prefix}-kernel")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def ensure_image(
    conn: Connection,
    name: str,
    path: Path,
    disk_format: str,
    container_format: str,
    notes: list[str],
) -> str:
    checksum = _md5(path)
    keep: str | None = None
    for image in list(conn.image.images(name=name)):
        if image.checksum == checksum and image.status == "active" and keep is None:
            keep = str(image.id)
        else:
            conn.image.delete_image(str(image.id), ignore_missing=True)
    if keep is not None:
        notes.append(f"{name} reused")
        return keep
    image = conn.image.create_image(
        name,
        filename=str(path),
        disk_format=disk_format,
        container_format=container_format,
        visibility="public",
        disable_vendor_agent=False,
        allow_duplicates=True,
        wait=True,
        timeout=300,
    )
    return str(image.id)
