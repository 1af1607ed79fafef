"""Byte-compiling once per apt run: the stand-in py3compile's choices, run by /bin/sh, and the apt
file as apt itself reads it; the stand-in systemctl that defers daemon-reloads while services are
held. The lab's cloud shows the result on real nodes (tests/lab/cloudkit.py:
every module outside the test suites compiled, none inside)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from stackwright.context import DEFERRED_DAEMON_RELOAD, SERVICES_HELD_ENV
from stackwright.releases.modern import compile_dist_packages
from stackwright.releases.modern.apt_node import (
    _BYTE_COMPILE_APT,
    _PY3COMPILE_STAND_IN,
    _SYSTEMCTL_STAND_IN,
    COMPILE_SCRIPT,
    DIST_PACKAGES,
    DPKG_PATH_DIR,
)


def stand_in(tmp_path: Path, lists: dict[str, str]) -> tuple[Path, Path]:
    """The script with dpkg's database and Debian's py3compile moved under tmp_path."""
    info = tmp_path / "info"
    info.mkdir()
    for name, files in lists.items():
        (info / f"{name}.list").write_text(files)
    calls = tmp_path / "calls"
    debian = tmp_path / "debian-py3compile"
    debian.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    debian.chmod(0o755)
    script = tmp_path / "py3compile"
    text = _PY3COMPILE_STAND_IN.replace("/var/lib/dpkg/info", str(info))
    script.write_text(text.replace("/usr/bin/py3compile", str(debian)))
    script.chmod(0o755)
    return script, calls


PUBLIC = f"/.\n/usr\n{DIST_PACKAGES}\n{DIST_PACKAGES}/nova/__init__.py\n"
VERSIONED = PUBLIC + "/usr/lib/python3.13/site.py\n"


@pytest.mark.parametrize(
    ("args", "maintscript", "debian_called"),
    [
        (["-p", "python3-nova"], "python3-nova", False),  # dh-python's postinst: left to the hook
        (["-p", "python3-nova:amd64"], "python3-nova", False),  # a Multi-Arch: same list name
        (["-p", "python3-bcrypt:amd64"], "python3-bcrypt", False),  # arch named, list without it
        (["-p", "python3-lxml"], "python3-lxml", False),  # list with the arch, name without it
        (["-p", "../python3-nova"], "python3-nova", True),  # not a package name
        (["-p", "python3-nova:amd64:x"], "python3-nova", True),
        (["-p", "python3-versioned"], "python3-versioned", True),  # files under python3.13/
        (["-p", "python3-unlisted"], "python3-unlisted", True),  # no file list to go by
        (["-p", "python3-nova", "/usr/share/nova"], "python3-nova", True),  # private modules
        (["-p", "python3-nova"], None, True),  # by hand, not from a maintainer script
        (["/usr/lib/python3/dist-packages"], "python3-nova", True),
    ],
)
def test_stand_in_leaves_only_public_dist_packages_modules_to_the_hook(
    tmp_path: Path, args: list[str], maintscript: str | None, debian_called: bool
) -> None:
    script, calls = stand_in(
        tmp_path,
        {
            "python3-nova": PUBLIC,
            "python3-nova:amd64": PUBLIC,
            "python3-bcrypt": PUBLIC,
            "python3-lxml:amd64": PUBLIC,
            "python3-versioned": VERSIONED,
        },
    )
    env = {k: v for k, v in os.environ.items() if k != "DPKG_MAINTSCRIPT_PACKAGE"}
    if maintscript:
        env["DPKG_MAINTSCRIPT_PACKAGE"] = maintscript
    done = subprocess.run(
        ["/bin/sh", str(script), *args], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (calls.read_text().split() if calls.exists() else []) == (args if debian_called else [])


def test_apt_reads_the_stand_ins_directory_first_and_one_compile_after_dpkg(tmp_path: Path) -> None:
    conf = tmp_path / "90stackwright-byte-compile"
    conf.write_text(_BYTE_COMPILE_APT)
    env = {**os.environ, "APT_CONFIG": str(conf)}
    shell = subprocess.run(
        ["apt-config", "shell", "DPKG_PATH", "DPkg::Path", "HOOK", "DPkg::Post-Invoke"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"DPKG_PATH='{DPKG_PATH_DIR}:/usr/sbin:/usr/bin:/sbin:/bin'" in shell
    hooks = subprocess.run(
        ["apt-config", "dump", "--format", "%v%n", "DPkg::Post-Invoke"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    hook = [h for h in hooks if COMPILE_SCRIPT in h]  # the machine's own apt.conf.d may add others
    assert len(hook) == 1
    # the hook as apt runs it, on a tree of our own: with the node's script, and without it
    # (compileall itself); test suites left out either way
    script = Path(compile_dist_packages.__file__)
    for name, compiler in (("script", script), ("fallback", tmp_path / "missing")):
        tree = tmp_path / name
        (tree / "pkg" / "tests").mkdir(parents=True)
        (tree / "pkg" / "mod.py").write_text("X = 1\n")
        (tree / "pkg" / "tests" / "test_mod.py").write_text("Y = 2\n")
        command = hook[0].replace(DIST_PACKAGES, str(tree)).replace(COMPILE_SCRIPT, str(compiler))
        done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert [p.parent.parent.name for p in tree.rglob("*.pyc")] == ["pkg"], name


def tree_of(root: Path, count: int) -> list[Path]:
    (root / "pkg" / "tests").mkdir(parents=True)
    files = [root / "pkg" / f"m{n}.py" for n in range(count)]
    for n, path in enumerate(files):
        path.write_text(f"VALUE = {n}\n")
    (root / "pkg" / "tests" / "test_m.py").write_text("import pkg\n")
    return files


@pytest.mark.parametrize(("count", "workers"), [(3, None), (150, 2)])  # one process; chunks to two
def test_the_nodes_compile_pass_compiles_what_is_out_of_date_and_reports_a_bad_file(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], count: int, workers: int | None
) -> None:
    files = tree_of(tmp_path, count)
    (tmp_path / "pkg" / "broken.py").write_text("def (:\n")
    assert compile_dist_packages.compile_tree(str(tmp_path), workers) is False
    compiled = {p.name.split(".")[0] for p in (tmp_path / "pkg" / "__pycache__").iterdir()}
    assert compiled == {p.stem for p in files}  # not broken.py, nothing under tests/
    assert not (tmp_path / "pkg" / "tests" / "__pycache__").exists()
    assert "broken.py" in capfd.readouterr().out  # the workers' output too
    first = {p: p.stat().st_mtime_ns for p in (tmp_path / "pkg" / "__pycache__").iterdir()}
    (tmp_path / "pkg" / "broken.py").unlink()
    assert compile_dist_packages.compile_tree(str(tmp_path), workers) is True
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "pkg" / "__pycache__").iterdir()} == first
    assert compile_dist_packages.main(["compile", str(tmp_path / "nothing")]) == 1


@pytest.mark.parametrize(
    ("args", "held", "maintscript", "deferred"),
    [
        (["--system", "daemon-reload"], True, "nova-common", True),  # debhelper's postinst snippet
        (["daemon-reload"], True, "nova-common", True),  # deb-systemd-helper's
        (["--system", "daemon-reload"], False, "nova-common", False),  # an administrator's apt run
        (["daemon-reload"], True, None, False),  # not from a maintainer script
        (["start", "nova-compute.service"], True, "nova-compute", False),
        (["daemon-reload", "--no-block"], True, "nova-common", False),  # not one we know
    ],
)
def test_systemctl_stand_in_defers_only_maintainer_scripts_reloads_while_services_are_held(
    tmp_path: Path, args: list[str], held: bool, maintscript: str | None, deferred: bool
) -> None:
    calls = tmp_path / "calls"
    systemd = tmp_path / "systemd-systemctl"
    systemd.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    systemd.chmod(0o755)
    marker = tmp_path / "deferred"
    script = tmp_path / "systemctl"
    text = _SYSTEMCTL_STAND_IN.replace(DEFERRED_DAEMON_RELOAD, str(marker))
    script.write_text(text.replace("/usr/bin/systemctl", str(systemd)))
    env = {k: v for k, v in os.environ.items() if k not in ("DPKG_MAINTSCRIPT_PACKAGE", SERVICES_HELD_ENV)}
    if held:
        env[SERVICES_HELD_ENV] = "1"
    if maintscript:
        env["DPKG_MAINTSCRIPT_PACKAGE"] = maintscript
    done = subprocess.run(
        ["/bin/sh", str(script), *args], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert marker.exists() == deferred
    assert (calls.read_text().split() if calls.exists() else []) == ([] if deferred else args)
