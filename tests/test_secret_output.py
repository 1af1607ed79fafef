"""Secrets never reach output, logs or other users (issue 15, "Why" 5): files holding secrets are
never diffed in clear, every value ever seen is masked (the previous passwords file, the host's
old copy), run logs are private, old copies of secret files on hosts do not pile up."""

from __future__ import annotations

import grp
import os
import pwd
import stat
import subprocess
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from stackwright.applyview import print_live_plan, reports_json
from stackwright.deploy import write_run_log
from stackwright.engine.converge import HostReport
from stackwright.engine.filewrite import prune_backups, secret_changes, write_script
from stackwright.engine.hostrun import HostRun
from stackwright.engine.ops import file as file_op
from stackwright.secrets import MASK, Masker, load_passwords, old_secret_values, replaced_values
from stackwright.steps import File, HostPlan
from tests.localhost import local_remote

OLD, NEW = "OldHandSetPass1", "NewRotatedPass2"
OLD_CONF = (
    f"[DEFAULT]\ntransport_url = rabbit://openstack:{OLD}@10.10.10.51:5672/\n\n"
    f"[keystone_authtoken]\npassword = {OLD}\n"
)
NEW_CONF = OLD_CONF.replace(OLD, NEW)


def me() -> tuple[str, str]:
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


def secret_file(path: Path, content: str) -> File:
    owner, group = me()
    return File(str(path), content, mode=0o640, owner=owner, group=group, secret=True, format="ini")


def dry_run(step: File, known: frozenset[str]) -> HostReport:
    remote = local_remote("controller")
    run = HostRun(
        remote, HostPlan("controller", ("controller",), "epoxy", (step,)), dry_run=True, known_secrets=known
    )
    return HostReport("controller", outcomes=[file_op(run, step)])


def test_live_plan_of_a_rotated_password_shows_counts_and_neither_value(tmp_path: Path) -> None:
    """Why 5: the diff masked only current values, so a rotated or hand-set password showed in clear."""
    target = tmp_path / "nova.conf"
    target.write_text(OLD_CONF)
    report = dry_run(secret_file(target, NEW_CONF), known=frozenset({NEW}))
    (outcome,) = report.outcomes
    assert outcome.diff == ""
    assert outcome.detail == "would update (secret file changes: 4 lines (+2 -2), not shown)"
    assert OLD in outcome.seen_secrets
    console = Console(record=True, width=200)
    mask = Masker([NEW])  # only the current value is in passwords.yaml
    assert print_live_plan(console, {"controller": report}, mask) == 1
    shown = console.export_text() + reports_json({"controller": report}, mask)
    assert "secret file changes: 4 lines" in shown
    assert OLD not in shown and NEW not in shown
    assert mask(f"failed: Access denied for user nova using password {OLD}") == (
        f"failed: Access denied for user nova using password {MASK}"
    )


def test_a_non_secret_file_still_shows_its_diff(tmp_path: Path) -> None:
    target = tmp_path / "chrony.conf"
    target.write_text("server a\n")
    owner, group = me()
    remote = local_remote()
    step = File(str(target), "server b\n", mode=0o644, owner=owner, group=group)
    outcome = file_op(HostRun(remote, HostPlan("h", (), "epoxy", (step,)), dry_run=True), step)
    assert "-server a" in outcome.diff and "+server b" in outcome.diff


def test_old_values_are_found_wherever_the_new_ones_stand() -> None:
    old = (
        "OS_BOOTSTRAP_PASSWORD='Old-value_1'\n"
        "connection = mysql+pymysql://nova:OldDbPass9@10.10.10.51/nova\n"
        "CREATE USER 'nova'@'x' IDENTIFIED BY 'OldSqlPass8';\n"
        "metadata_proxy_shared_secret = HandSetSecret7\n"
    )
    new = (
        "OS_BOOTSTRAP_PASSWORD=NewAdmin1\n"
        "connection = mysql+pymysql://nova:NewDb2@10.10.10.51/nova\n"
        "CREATE USER 'nova'@'x' IDENTIFIED BY 'NewSql3';\n"
        "metadata_proxy_shared_secret = NewMeta4\n"
    )
    found = old_secret_values(old, new, {"NewAdmin1", "NewDb2", "NewSql3", "NewMeta4"})
    assert {"Old-value_1", "OldDbPass9", "OldSqlPass8", "HandSetSecret7"} <= found
    assert old_secret_values("OldRabbitPass5", "NewRabbit6", {"NewRabbit6"}) == {"OldRabbitPass5"}


def aligned_old_values(old: str, new: str, known: set[str]) -> set[str]:
    """old_secret_values as it was before it skipped the alignment: the reference it must equal."""
    secrets = sorted(known, key=len, reverse=True)
    aligned = replaced_values(old.splitlines(), new.splitlines(), secrets)
    return old_secret_values(old, new, known) | {v for v in aligned if len(v) >= 4}


LINES = [
    "[DEFAULT]", "#password = <None>", "password = OldPass11", "password = NewPass22",
    "connection = mysql://nova:OldDb33@db/nova", "connection = mysql://nova:NewDb44@db/nova",
    "NewPass22", "OldPass11", "debug = true", "# a comment", "url = http://x/NewDb44/y",
]  # fmt: skip


@given(
    old=st.lists(st.sampled_from(LINES), max_size=12),
    new=st.lists(st.sampled_from(LINES), max_size=12),
)
def test_skipping_the_alignment_finds_the_same_old_values(old: list[str], new: list[str]) -> None:
    known = {"NewPass22", "NewDb44"}
    old_text, new_text = "\n".join(old), "\n".join(new)
    assert old_secret_values(old_text, new_text, known) == aligned_old_values(old_text, new_text, known)


def test_a_package_default_file_yields_no_old_value() -> None:
    default = "\n".join(f"#password = <None>\n# option {i} help text" for i in range(2000))
    new = "[database]\nconnection = mysql+pymysql://nova:NewDb2@10.10.10.51/nova\npassword = NewPw3\n"
    assert old_secret_values(default, new, {"NewDb2", "NewPw3"}) == set()


def test_previous_passwords_are_masked_too(tmp_path: Path) -> None:
    path = tmp_path / "passwords.yaml"
    path.write_text("nova_password: OldNovaPassword1\n")
    path.chmod(0o600)
    load_passwords(path)  # generates the others: the first file becomes passwords.yaml.prev
    text = path.read_text().replace("OldNovaPassword1", "NewNovaPassword2")
    path.write_text(text)
    passwords = load_passwords(path)
    assert passwords["nova_password"] == "NewNovaPassword2"
    mask = passwords.masker()
    assert mask("a OldNovaPassword1 b NewNovaPassword2") == f"a {MASK} b {MASK}"


def test_masker_hides_the_forms_the_sinks_write() -> None:
    mask = Masker(["a$b'c\\d"])
    for written in ("a%24b%27c%5Cd", "a$$b'c\\d", "a$b\\'c\\\\d", "'a$b'\"'\"'c\\d'"):
        assert mask(f"x {written} y") == f"x {MASK} y", written


def test_run_log_is_private_in_a_private_directory(tmp_path: Path) -> None:
    logs = tmp_path / "state" / "stackwright"
    logs.mkdir(parents=True, mode=0o755)
    log = write_run_log("apply", "masked output\n", logs)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    assert log.read_text() == "masked output\n"


def test_only_the_last_three_backups_of_a_secret_file_are_kept(tmp_path: Path) -> None:
    backup = tmp_path / "keystone.conf"
    for stamp in (
        "20260101T000000",
        "20260102T000000",
        "20260103T000000",
        "20260104T000000",
        "20260105T000000",
    ):
        Path(f"{backup}.{stamp}").write_text(stamp)
    subprocess.run(["sh", "-c", prune_backups(str(backup))], check=True)
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == [
        "keystone.conf.20260103T000000",
        "keystone.conf.20260104T000000",
        "keystone.conf.20260105T000000",
    ]
    subprocess.run(["sh", "-c", prune_backups(str(tmp_path / "none.conf"))], check=True)  # no backups: fine


def test_secret_files_prune_their_backups_other_files_keep_theirs() -> None:
    assert "rm -f" in write_script(File("/etc/nova/nova.conf", "x", secret=True), [])
    assert "rm -f" not in write_script(File("/etc/chrony/chrony.conf", "x"), [])


def test_secret_changes_counts_lines() -> None:
    assert secret_changes("a\nb\n", "a\nc\nd\n") == "secret file changes: 3 lines (+2 -1), not shown"


def test_private_keys_are_masked_wherever_they_show() -> None:
    """The TLS front's key is no passwords file's value: the masker hides any PEM private key."""
    from stackwright.secrets import MASK, Masker

    body = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg"
    text = f"cert\n-----BEGIN PRIVATE KEY-----\n{body}\nABCD\n-----END PRIVATE KEY-----\nafter\n"
    shown = Masker([])(text)
    assert body not in shown and "ABCD" not in shown
    assert shown == f"cert\n-----BEGIN PRIVATE KEY-----\n{MASK}\n-----END PRIVATE KEY-----\nafter\n"
