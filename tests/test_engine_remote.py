"""The engine's connection layer (issue 15, "Why" 7), run for real through pyinfra's `@local`
connector: exact exit codes, a connection lost at any point reported as such, strict fact readers."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path
from typing import Any

import pytest

from stackwright.engine import facts
from stackwright.engine.converge import DEFERRED, HostReport, Options, converge_host
from stackwright.engine.remote import LOST, LOST_HINT, STATUS_MARK, Remote, RemoteError
from stackwright.steps import Command, Directory, File, HostPlan, OvsBridge, Step, Sysctl, Wait
from tests.localhost import local_remote


class CutAfter:
    """pyinfra's local host, whose connection dies after `commands` commands (as paramiko's does:
    an exception from the connector)."""

    def __init__(self, host: Any, commands: int) -> None:
        self._host = host
        self.connector = host.connector
        self.left = commands

    def run_shell_command(self, *args: Any, **kwargs: Any) -> Any:
        if self.left == 0:
            raise OSError("Socket is closed")
        self.left -= 1
        return self._host.run_shell_command(*args, **kwargs)

    def get_file(self, *args: Any, **kwargs: Any) -> Any:
        if self.left == 0:
            raise EOFError()
        return self._host.get_file(*args, **kwargs)


def cut_remote(name: str, commands: int) -> Remote:
    local = local_remote(name)
    return Remote(name, CutAfter(local._host, commands))


@pytest.mark.parametrize("code", [0, 1, 2, 100, 124, 255])
def test_exact_exit_code_is_kept(code: int) -> None:
    """Why 7: pyinfra's bool made every failure `exit 1`; apt's `exit 100` must say 100."""
    remote = local_remote()
    assert remote.run(f"echo out; echo err >&2; exit {code}").rc == code
    assert remote.run("sh -s", stdin=f"echo from stdin\nexit {code}\n").rc == code


def test_output_is_the_commands_own() -> None:
    remote = local_remote()
    assert remote.run("printf abc").stdout == "abc"
    assert remote.run("printf 'abc\\n'").stdout == "abc"
    assert remote.run(f"echo '{STATUS_MARK}7'; echo last").stdout == f"{STATUS_MARK}7\nlast"
    result = remote.run("set -e\nfalse\necho never")
    assert (result.rc, result.stdout) == (1, "")


def test_a_failed_check_names_the_exit_code() -> None:
    with pytest.raises(RemoteError) as caught:
        local_remote("compute1").check("exit 100")
    assert str(caught.value) == "compute1: `exit 100` exited 100"


@pytest.mark.parametrize("commands", [0, 1])
def test_connection_lost_before_the_file_steps_is_reported_as_such(tmp_path: Path, commands: int) -> None:
    """Why 7: the file facts came back empty and the run ended as `converge: KeyError`. Cut before
    the steps' facts are read (0), or after (1: the directory is known, the changed file's old
    content, fetched for the dry run's diff, is the next transfer)."""
    owner, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    (tmp_path / "a").write_text("old\n")
    steps = (
        Directory(str(tmp_path / "d"), owner=owner, group=group),
        File(str(tmp_path / "a"), "a\n", owner=owner, group=group),
        File(str(tmp_path / "b"), "b\n", owner=owner, group=group),
    )
    remote = cut_remote("compute1", commands=commands)
    report = converge_host(
        remote, HostPlan("compute1", ("compute",), "epoxy", steps), Options(dry_run=True), lambda *_: None
    )
    assert report.error is not None
    assert report.error.result.rc == LOST
    assert report.error.result.stderr.startswith("SSH connection to compute1 lost (")
    assert report.error.hint == LOST_HINT and "run apply again" in LOST_HINT
    assert [o.step for o in report.outcomes] == list(steps[:commands])


def test_every_command_after_a_lost_connection_fails_at_once_with_the_reason() -> None:
    remote = cut_remote("network", commands=0)
    first = remote.run("true")
    assert (first.rc, first.stderr) == (LOST, "SSH connection to network lost (OSError: Socket is closed)")
    assert remote.run("true").stderr == first.stderr
    with pytest.raises(RemoteError) as caught:
        remote.get("/etc/hostname")
    assert caught.value.result.rc == LOST and caught.value.hint == LOST_HINT


def test_a_download_cut_midway_is_a_lost_connection() -> None:
    remote = cut_remote("network", commands=0)
    remote.lost = ""  # the commands are gone, the transfer is what breaks first here
    with pytest.raises(RemoteError) as caught:
        remote.get("/etc/hostname")
    assert caught.value.result.stderr == "SSH connection to network lost (EOFError)"


def test_file_facts_read_real_files(tmp_path: Path) -> None:
    present = tmp_path / "present"
    present.write_text("x\n")
    present.chmod(0o640)
    read = facts.files(local_remote(), [str(present), str(tmp_path / "absent")])
    fact = read[str(present)]
    assert fact is not None and fact.mode == 0o640 and fact.sha256 == facts.sha256("x\n")
    assert read[str(tmp_path / "absent")] is None


def test_a_short_fact_reply_is_an_error_not_a_missing_file() -> None:
    """Why 7: zip(strict=False) dropped the paths a short reply did not answer."""
    with pytest.raises(RemoteError) as caught:
        facts._answers(local_remote("c"), "read file facts", "@@stackwright@@\nMISSING\n", ["/a", "/b"])
    assert "1 answers for 2 questions" in caught.value.result.stderr


def test_a_garbled_fact_answer_is_an_error() -> None:
    remote = local_remote("c")
    with pytest.raises(RemoteError):
        facts.files(Remote("c", _Replying(remote._host, "@@stackwright@@\nnot a stat line\n")), ["/x"])


class _Replying:
    """pyinfra's local host answering every command with `text` (and a zero status)."""

    def __init__(self, host: Any, text: str) -> None:
        self._host, self.connector, self.text = host, host.connector, text

    def run_shell_command(self, *args: Any, **kwargs: Any) -> Any:
        from pyinfra.api.command import StringCommand

        script = f"cat <<'EOF'\n{self.text}EOF"
        return self._host.run_shell_command(StringCommand(f'(\n{script}\n)\necho "{STATUS_MARK}$?"'))


def test_a_wait_is_put_off_while_nothing_changed_until_a_command_has_to_act(tmp_path: Path) -> None:
    owner, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    never = Wait("a service that never answers", "false", timeout_s=1)
    elsewhere = Wait("compute2 registered", "false", timeout_s=1, about_host="compute2")
    written = File(str(tmp_path / "a"), "a\n", owner=owner, group=group)
    guarded = Command("create it", ("touch", str(tmp_path / "made")), unless=f"test -e {tmp_path / 'made'}")
    plan = HostPlan("controller", ("controller",), "epoxy", (written, never, guarded))

    def apply(*steps: Step) -> HostReport:
        return converge_host(local_remote("controller"), plan, Options(), lambda *_: None, steps=steps)

    # the file is written: something changed, the wait runs (and, here, fails)
    first = apply(written, never)
    assert first.error is not None and "not ready after 1 s" in first.error.result.stderr
    # nothing changes now: the wait is put off, and a command whose guard holds never needs it
    (tmp_path / "made").touch()
    again = apply(written, never, guarded)
    assert again.ok, again.error
    assert [o.detail for o in again.outcomes][1:] == [DEFERRED, "not needed"]
    # a command that has to act runs the put-off wait first (here it fails: never ready)
    (tmp_path / "made").unlink()
    acting = apply(written, never, guarded)
    assert acting.error is not None and "not ready after 1 s" in acting.error.result.stderr
    assert not (tmp_path / "made").exists()
    # a wait about another host always runs
    other = apply(written, elsewhere)
    assert other.error is not None and "not ready after 1 s" in other.error.result.stderr


class Counting:
    """pyinfra's local host, counting the commands (round trips) it runs."""

    def __init__(self, host: Any) -> None:
        self._host, self.connector, self.commands = host, host.connector, 0

    def run_shell_command(self, *args: Any, **kwargs: Any) -> Any:
        self.commands += 1
        return self._host.run_shell_command(*args, **kwargs)


def _steps_run(steps: list[Step], dry_run: bool) -> tuple[HostReport, int]:
    from stackwright.engine.converge import _run_steps
    from stackwright.engine.hostrun import HostRun

    counting = Counting(local_remote()._host)
    run = HostRun(Remote("compute1", counting), HostPlan("compute1", ("compute",), "epoxy", tuple(steps)))
    run.dry_run = dry_run
    report = HostReport("compute1")
    _run_steps(run, steps, report, Options(dry_run=dry_run), lambda *_: None, None, snapshot=True)
    return report, counting.commands


def test_the_facts_of_every_step_come_in_one_round_trip_while_nothing_changes(tmp_path: Path) -> None:
    owner, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    (tmp_path / "d").mkdir(mode=0o755)
    (tmp_path / "d").chmod(0o755)
    (tmp_path / "a").write_text("a\n")
    (tmp_path / "a").chmod(0o644)
    steps: list[Step] = [
        Directory(str(tmp_path / "d"), owner=owner, group=group),
        File(str(tmp_path / "a"), "a\n", owner=owner, group=group),
        Directory(str(tmp_path / "e"), owner=owner, group=group),  # missing: a dry run says so
        File(str(tmp_path / "b"), "b\n", owner=owner, group=group),
        # this machine's live value, not persisted in stackwright's file; no Open vSwitch here
        Sysctl("net.ipv4.ip_forward", Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()),
        OvsBridge("br-snapshot-test"),
        Command("guarded", ("false",), unless=f"test -d {tmp_path / 'd'}"),
        Command("marked", ("false",), once_marker=str(tmp_path / "a")),
        Command("to run", ("false",), unless='read line; test -n "$line"'),  # stdin is not the script
    ]
    report, commands = _steps_run(steps, dry_run=True)
    assert [o.detail for o in report.outcomes] == [
        "unchanged",
        "unchanged",
        "would create",
        "would create",
        "would set and persist",
        "would create",
        "not needed",
        "done before",
        "would run",
    ]
    assert commands == 1


def test_after_a_step_acts_each_later_step_reads_its_own_facts(tmp_path: Path) -> None:
    """The second step manages what the first made: the snapshot (taken before both) says it is
    missing; only its own read sees the first step's result."""
    owner, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    made = str(tmp_path / "made")
    steps: list[Step] = [
        Directory(made, mode=0o755, owner=owner, group=group),
        Directory(made, mode=0o700, owner=owner, group=group),
    ]
    report, commands = _steps_run(steps, dry_run=False)
    assert [o.detail for o in report.outcomes] == ["created", f"fixed (was 755 {owner} {group})"]
    assert commands == 4  # the snapshot, mkdir, the second step's own stat, its chmod


# `systemctl show -p ... nova-compute nosuch chrony` on a lab compute node (Debian 13), as it answered
SHOWN = """LoadState=loaded
ActiveState=active
UnitFileState=enabled
ConditionResult=yes
ConditionTimestamp=Sat 2026-12-05 14:51:47 UTC

LoadState=not-found
ActiveState=inactive
UnitFileState=
ConditionResult=no
ConditionTimestamp=

LoadState=loaded
ActiveState=inactive
UnitFileState=enabled
ConditionResult=no
ConditionTimestamp=Sat 2026-12-05 14:47:47 UTC
"""


def test_one_systemctl_show_answers_for_every_unit_in_order() -> None:
    remote = local_remote("c")
    names = ["nova-compute", "nosuch", "chrony"]
    read = facts._parse_units(remote, SHOWN + "@@stackwright@@\nchrony\n", names)
    assert read["nova-compute"] == facts.UnitFact("enabled", "active")
    assert read["nosuch"] == facts.UnitFact("not-found", "inactive")
    assert read["chrony"] == facts.UnitFact(
        "enabled", "inactive", condition_failed=True, pending_restart=True
    )
    with pytest.raises(RemoteError) as caught:
        facts._parse_units(remote, SHOWN, [*names, "libvirtd"])
    assert "3 answers for 4 questions" in caught.value.result.stderr


def test_file_facts_follow_links_and_a_directory_is_no_file(tmp_path: Path) -> None:
    (tmp_path / "target").write_text("t\n")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    (tmp_path / "dir").mkdir()
    read = facts.files(local_remote(), [str(tmp_path / "link"), str(tmp_path / "dir")])
    link = read[str(tmp_path / "link")]
    assert link is not None and link.sha256 == facts.sha256("t\n")
    assert read[str(tmp_path / "dir")] is None


def test_after_waiting_for_another_host_the_facts_are_read_again(tmp_path: Path) -> None:
    """The wait stands for another host's work (a compute node registering): what the steps after
    it manage is read again, once — not the answer from before the wait."""
    owner, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    made = tmp_path / "made"
    steps: list[Step] = [
        Wait("compute2 registered", f"mkdir -p {made} && chmod 700 {made}", about_host="compute2"),
        Directory(str(made), mode=0o700, owner=owner, group=group),
    ]
    report, commands = _steps_run(steps, dry_run=False)
    assert [o.detail for o in report.outcomes] == ["ready", "unchanged"]
    assert commands == 3  # the snapshot, the wait, the snapshot again


@pytest.mark.parametrize("present", [True, False])
def test_each_reader_alone_answers_for_what_is_not_there(tmp_path: Path, present: bool) -> None:
    """Read by a step on its own (after the snapshot was dropped), a missing path or key is an
    answer: the reader's script must not end on the failed `stat`/`sysctl`/`ovs-vsctl`."""
    remote = local_remote()
    path = tmp_path / "there"
    if present:
        path.mkdir()
    assert bool(facts.read(remote, facts.directories_query([str(path)]))[str(path)]) == present
    assert facts.read(remote, facts.files_query([str(tmp_path / "none")])) == {str(tmp_path / "none"): None}
    key = "net.ipv4.ip_forward" if present else "net.no.such.key"
    sysctl = facts.read(remote, facts.sysctls_query({key: f"{key} = 1"}, str(tmp_path / "none")))[key]
    assert bool(sysctl.live) == present and not sysctl.persisted
    assert facts.read(remote, facts.bridges_query(["br-none"])) == {"br-none": None}
    assert facts.read(remote, facts.guards_query(["false", "true"])) == {"false": False, "true": True}
    assert facts.read(remote, facts.packages_query(["no-such-package-here"])) == set()
