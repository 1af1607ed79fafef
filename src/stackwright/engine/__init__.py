"""The imperative shell that converges hosts: pyinfra connections, our operations, reports."""

from __future__ import annotations


def patch() -> None:
    """gevent's monkey patching, as pyinfra's CLI does: hosts then run in parallel greenlets.

    Must run before paramiko/pyinfra are imported; the CLI calls it for engine commands only.
    """
    import logging

    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
    # pyinfra logs connection errors itself; we report every host's outcome in our own words.
    logging.getLogger("pyinfra").setLevel(logging.CRITICAL)
