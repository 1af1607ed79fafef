"""The pinned Tempest virtualenv, made once per release and pin set, reused afterwards.

~/.cache/stackwright/tempest/epoxy-<hash of the pins>/bin/tempest
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

from stackwright.yamlsource import UserError

INSTALL_TIMEOUT_S = 900.0


def constraints(release: str) -> str | None:
    """The pins for `release`, or None when stackwright pins no Tempest for it."""
    name = f"constraints-{release}.txt"
    ref = resources.files("stackwright.tempest").joinpath(name)
    return ref.read_text() if ref.is_file() else None


def pinned_releases() -> list[str]:
    return sorted(
        p.name.removeprefix("constraints-").removesuffix(".txt")
        for p in resources.files("stackwright.tempest").iterdir()
        if p.name.startswith("constraints-") and p.name.endswith(".txt")
    )


def tempest_version(pins: str) -> str:
    return next(line.split("==", 1)[1] for line in pins.splitlines() if line.startswith("tempest=="))


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stackwright" / "tempest"


def ensure_venv(release: str) -> Path:
    """The venv's directory, made first if missing (about 30 s, from PyPI). A venv's scripts name
    their interpreter by absolute path, so it is built where it stays; `.complete` marks one that
    finished (a half-built one is removed and built again)."""
    pins = constraints(release)
    if pins is None:
        raise UserError(
            f"verify --tempest pins Tempest for {', '.join(pinned_releases())} — release {release} has "
            "none (upstream Tempest no longer tests it); use a release listed there"
        )
    key = hashlib.sha256(pins.encode()).hexdigest()[:12]
    venv = cache_root() / f"{release}-{key}"
    if (venv / ".complete").is_file():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    try:
        _run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
        (venv / "constraints.txt").write_text(pins)
        _run(
            [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
             "-c", str(venv / "constraints.txt"), f"tempest=={tempest_version(pins)}"],
            "pip install tempest",
        )  # fmt: skip
    except BaseException:
        shutil.rmtree(venv, ignore_errors=True)
        raise
    (venv / ".complete").write_text(tempest_version(pins) + "\n")
    return venv


def _run(argv: list[str], what: str) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise UserError(
            f"{what} took longer than {INSTALL_TIMEOUT_S:.0f} s — check this machine's PyPI access"
        ) from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise UserError(f"{what} failed: {last} — check this machine's PyPI access")
