"""`lab down` of the last lab puts back what `lab up` changed on this machine (issue 15, "Why" 8):
fs.inotify.max_user_instances and the Include line in root's ssh config. Run on stand-in files."""

from __future__ import annotations

from pathlib import Path

from stackwright.lab.machine import (
    INCLUDE_LINE,
    ensure_inotify_instances,
    ensure_ssh_include,
    other_labs,
    restore,
)


def files(tmp_path: Path) -> dict[str, Path]:
    sysctl = tmp_path / "max_user_instances"
    sysctl.write_text("128\n")
    lab_ssh = tmp_path / "ssh" / "stackwright-lab"
    lab_ssh.mkdir(parents=True)
    return {
        "sysctl": sysctl,
        "config": tmp_path / "ssh" / "config",
        "lab_ssh_dir": lab_ssh,
        "state": tmp_path / "machine.json",
    }


def test_inotify_limit_goes_back_to_what_it_was_before_the_first_lab(tmp_path: Path) -> None:
    f = files(tmp_path)
    assert ensure_inotify_instances(20, sysctl=f["sysctl"], state=f["state"]) == 320
    assert ensure_inotify_instances(30, sysctl=f["sysctl"], state=f["state"]) == 480  # a second lab
    assert ensure_inotify_instances(3, sysctl=f["sysctl"], state=f["state"]) is None
    assert restore(**f) == ["fs.inotify.max_user_instances back to 128"]
    assert f["sysctl"].read_text() == "128\n" and not f["state"].exists()


def test_a_limit_someone_changed_since_is_left_alone(tmp_path: Path) -> None:
    f = files(tmp_path)
    ensure_inotify_instances(20, sysctl=f["sysctl"], state=f["state"])
    f["sysctl"].write_text("1024\n")
    assert restore(**f) == []
    assert f["sysctl"].read_text() == "1024\n"


def test_include_line_is_removed_and_the_rest_of_the_config_kept(tmp_path: Path) -> None:
    f = files(tmp_path)
    f["config"].write_text("Host build\n  User me\n")
    ensure_ssh_include(config=f["config"], state=f["state"])
    ensure_ssh_include(config=f["config"], state=f["state"])
    assert f["config"].read_text() == f"{INCLUDE_LINE}\nHost build\n  User me\n"
    (f["lab_ssh_dir"] / "lab-1.conf").write_text("Host compute1\n")
    assert restore(**f) == []  # another lab's client file is still there: not the last lab
    (f["lab_ssh_dir"] / "lab-1.conf").unlink()
    ensure_ssh_include(config=f["config"], state=f["state"])
    assert restore(**f) == [f"the Include line removed from {f['config']}"]
    assert f["config"].read_text() == "Host build\n  User me\n"
    assert not f["lab_ssh_dir"].exists()


def test_a_config_the_lab_created_is_removed(tmp_path: Path) -> None:
    f = files(tmp_path)
    ensure_ssh_include(config=f["config"], state=f["state"])
    restore(**f)
    assert not f["config"].exists()


def test_other_labs_are_the_ones_with_a_state_file(tmp_path: Path) -> None:
    (tmp_path / "seed-1" / "hosts").mkdir(parents=True)
    (tmp_path / "aio-2").mkdir()
    (tmp_path / "aio-2" / "state.json").write_text("{}")
    (tmp_path / "ssh").mkdir()
    assert other_labs(tmp_path / "seed-1", root=tmp_path) == [tmp_path / "aio-2"]
    assert other_labs(tmp_path / "aio-2", root=tmp_path) == []
