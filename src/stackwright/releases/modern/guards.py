"""Ways to make one-off commands idempotent, and where their state lives on the host.

Three guards, from strongest to weakest:

- a shell test of the real state (`unless=`), e.g. "the cell1 mapping exists";
- `applied_when_unchanged`: the command's inputs are files in the plan; it runs again
  only when one of them changed since its last success (a sha256 stamp), so a new
  password in passwords.yaml reaches MariaDB, RabbitMQ or Keystone on the next apply;
- `once_marker`: run once per host ever (database schema syncs of this release).
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from stackwright.steps import Command, Directory

if TYPE_CHECKING:
    from stackwright.releases.base import Release

STATE_DIR = "/var/lib/stackwright"
MARKERS_DIR = f"{STATE_DIR}/markers"
APPLIED_DIR = f"{STATE_DIR}/applied"
# Inputs of commands that hold passwords: root only, never in argv.
SECRETS_DIR = "/etc/stackwright"


def state_directories() -> list[Directory]:
    return [
        Directory(STATE_DIR, mode=0o755),
        Directory(APPLIED_DIR, mode=0o700),
        Directory(SECRETS_DIR, mode=0o700),
    ]


def marker(release: Release, name: str) -> str:
    """A once-per-host marker of this release (a schema sync of Epoxy is not Zed's)."""
    return f"{MARKERS_DIR}/{release.name}-{name}"


def as_user(user: str, command: str) -> tuple[str, ...]:
    """Run a service's manage command as its own user, as the install guides do."""
    return ("su", "-s", "/bin/sh", "-c", command, user)


def applied_when_unchanged(
    description: str,
    name: str,
    inputs: tuple[str, ...],
    script: str,
    env: tuple[tuple[str, str], ...] = (),
) -> Command:
    """`script` (sh) runs when any of `inputs` differs from what it last applied."""
    stamp = f"{APPLIED_DIR}/{name}.sha256"
    files = " ".join(shlex.quote(p) for p in inputs)
    return Command(
        description=description,
        argv=("sh", "-c", f"set -e\n{script}\nsha256sum {files} > {stamp}.new && mv {stamp}.new {stamp}"),
        env=env,
        unless=f"sha256sum --check --status {stamp}",
    )
