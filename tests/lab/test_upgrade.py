"""Node preparation upgrades whenever it is asked to and apt has something to upgrade, also when
the package lists are fresh from an earlier `apply --no-upgrade` (which used to refresh the stamp
and so skip the next plain apply's upgrade for an hour).

A real package upgrade on a converged compute node: version 1 of a small package installed with
dpkg, version 2 offered by a local apt repository on the host (Debian's own tools write both)."""

from __future__ import annotations

import shlex
from collections.abc import Iterator

import pytest

from stackwright.engine.converge import APT_STAMP
from tests.lab.cloudkit import apply_json
from tests.lab.conftest import SeedLab

pytestmark = [pytest.mark.lab, pytest.mark.cloud]
HOST = "compute1"
PROBE = "stackwright-upgrade-probe"
REPO = "/srv/stackwright-upgrade-probe"
SOURCE = "/etc/apt/sources.list.d/stackwright-upgrade-probe.list"


def _build(version: str) -> str:
    """Shell that builds PROBE at `version` into REPO with dpkg-deb."""
    root = f"/tmp/{PROBE}-{version}"
    control = (
        f"Package: {PROBE}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: stackwright tests <root@localhost>\nDescription: upgrade probe\n"
    )
    return (
        f"mkdir -p {root}/DEBIAN {REPO} && printf %s {shlex.quote(control)} > {root}/DEBIAN/control"
        f" && dpkg-deb -b -Zgzip {root} {REPO}/{PROBE}_{version}_all.deb >/dev/null"
    )


def _index() -> str:
    """Shell that writes REPO's Packages file for the version-2 package (what dpkg-scanpackages
    writes; dpkg-dev is not on the host)."""
    deb = f"{REPO}/{PROBE}_2_all.deb"
    return (
        f"cd {REPO} && {{ dpkg-deb -f {deb}; echo Filename: ./{PROBE}_2_all.deb;"
        f" echo Size: $(stat -c %s {deb}); echo SHA256: $(sha256sum {deb} | cut -d' ' -f1); echo; }}"
        " > Packages"
    )


@pytest.fixture
def upgradable(epoxy_cloud: SeedLab) -> Iterator[SeedLab]:
    """compute1 with PROBE 1 installed and PROBE 2 in its apt lists, the lists as fresh as a
    stackwright run leaves them."""
    lab = epoxy_cloud
    lab.check(HOST, f"{_build('1')} && {_build('2')} && dpkg -i {REPO}/{PROBE}_1_all.deb >/dev/null")
    lab.check(HOST, _index())
    lab.check(HOST, f"echo 'deb [trusted=yes] file:{REPO} ./' > {SOURCE}")
    try:
        yield lab
    finally:
        lab.exec(HOST, f"dpkg --purge {PROBE}; rm -rf {REPO} {SOURCE} /tmp/{PROBE}-*; apt-get -q update")


def test_a_plain_apply_upgrades_after_an_apply_that_did_not(upgradable: SeedLab) -> None:
    lab = upgradable
    skipped = apply_json(lab, "--no-upgrade", "--limit", HOST)  # refreshes the lists (stale or not)
    assert skipped["ok"], skipped
    lab.check(HOST, f"apt-get -q update >/dev/null && touch {APT_STAMP}")  # as fresh as an update leaves them
    assert lab.check(HOST, f"dpkg-query -W -f '${{Version}}' {PROBE}") == "1"

    report = apply_json(lab, "--limit", HOST)
    assert report["ok"], report
    details = [c["detail"] for c in report["hosts"][HOST]["changes"]]
    assert any(d.startswith("upgraded ") for d in details), details
    assert lab.check(HOST, f"dpkg-query -W -f '${{Version}}' {PROBE}") == "2"

    again = apply_json(lab, "--limit", HOST)  # nothing left to upgrade: nothing done
    assert again["hosts"][HOST]["changed"] == 0, again["hosts"][HOST]["changes"]
