"""The imperative shell that converges hosts: pyinfra connections, our operations, reports."""

from __future__ import annotations


def patch() -> None:
    """gevent's monkey patching, as pyinfra's CLI does: hosts then run in parallel greenlets.

    Must run before paramiko/pyinfra are imported; the CLI calls it for engine commands only.
    """
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
