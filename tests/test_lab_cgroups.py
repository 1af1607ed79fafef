"""Where a lab host's own cgroups go, read from mountinfo and /proc/self/cgroup (offline)."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

from stackwright.lab.cgroups import enter, hierarchies, host_cgroups, kill, populated, remove

HYBRID_MOUNTS = """\
35 30 0:31 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
36 35 0:32 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
37 35 0:33 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd
38 35 0:34 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
"""
HYBRID_SELF = "9:name=systemd:/ci\n4:memory:/process_api/1\n0::/ci\n"


def test_hybrid_machine_gives_the_unified_and_the_named_systemd_hierarchy() -> None:
    assert hierarchies(HYBRID_MOUNTS, HYBRID_SELF) == [
        Path("/sys/fs/cgroup/unified/ci"),
        Path("/sys/fs/cgroup/systemd/ci"),
    ]


def test_pure_cgroup2_machine_gives_one() -> None:
    mounts = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    assert hierarchies(mounts, "0::/user.slice/session-3.scope\n") == [
        Path("/sys/fs/cgroup/user.slice/session-3.scope")
    ]


def test_v1_controllers_are_never_used() -> None:
    assert hierarchies(HYBRID_MOUNTS, "4:memory:/x\n") == []


def test_killed_processes_cgroup_is_removed_once_they_have_left() -> None:
    """On this machine's real cgroup hierarchies (as `lab down` uses them): a cgroup with a live
    process is populated and kept; killed with `cgroup.kill`, it is removed once the process exits."""
    if os.geteuid() != 0:
        raise AssertionError("run as root (as CI does): this test writes the machine's cgroups")
    paths = host_cgroups(f"stackwright-test-{uuid.uuid4().hex[:8]}")
    child = subprocess.Popen(["sleep", "300"], preexec_fn=lambda: enter(paths))
    try:
        assert all(populated(p) for p in paths)
        assert remove(paths, wait_s=0.3) == paths  # still running: kept, not half-removed
        kill(paths)
        assert remove(paths, wait_s=10) == []
        assert not any(p.exists() for p in paths)
    finally:
        child.kill()
        child.wait()
        remove(paths, wait_s=5)
