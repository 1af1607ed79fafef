"""The engine's host-side shell wrappers, run for real with this machine's sh (offline, no host)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from stackwright.context import DEFERRED_DAEMON_RELOAD, SERVICES_HELD_ENV
from stackwright.engine.apt import (
    OURS,
    POLICY,
    POST_INVOKE_HOOKS,
    hold_services,
    install_script,
    repair_script,
)
from stackwright.engine.remote import STATE_DIR, all_or_nothing, durable


def sh(script: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True, timeout=30, **kwargs)  # type: ignore[call-overload,no-any-return]


def test_durable_passes_output_and_exit_code_back(tmp_path: Path) -> None:
    proc = sh(durable("echo out; echo err >&2; exit 3", state_dir=str(tmp_path)))
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out\n", "err\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step.lock"]  # output files removed


def test_durable_step_survives_the_loss_of_its_connection(tmp_path: Path) -> None:
    """SIGHUP to the whole session (sshd closing) and a reader that went away do not stop it."""
    done = tmp_path / "done"
    script = durable(f"sleep 1; echo finished > {done}", state_dir=str(tmp_path))
    proc = subprocess.Popen(
        ["sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    time.sleep(0.3)
    proc.stdout.close()  # type: ignore[union-attr]
    proc.stderr.close()  # type: ignore[union-attr]
    os.killpg(proc.pid, signal.SIGHUP)
    proc.wait(timeout=10)
    assert done.read_text() == "finished\n"


def test_a_second_step_waits_for_a_leftover_one(tmp_path: Path) -> None:
    order = tmp_path / "order"
    first = subprocess.Popen(
        ["sh", "-c", durable(f"sleep 1; echo first >> {order}", state_dir=str(tmp_path))]
    )
    time.sleep(0.3)
    second = sh(durable(f"echo second >> {order}", state_dir=str(tmp_path)))
    first.wait(timeout=10)
    assert second.returncode == 0
    assert order.read_text() == "first\nsecond\n"


def test_the_wait_for_a_leftover_is_bounded_and_says_why(tmp_path: Path) -> None:
    holder = subprocess.Popen(["sh", "-c", durable("sleep 3", state_dir=str(tmp_path))])
    time.sleep(0.3)
    try:
        proc = sh(durable("true", state_dir=str(tmp_path), wait_s=1))
    finally:
        holder.wait(timeout=10)
    assert proc.returncode == 1
    assert "earlier, interrupted run is still running" in proc.stderr


def test_a_daemon_started_by_a_step_does_not_keep_the_lock(tmp_path: Path) -> None:
    proc = sh(durable("(sleep 5 &) ; true", state_dir=str(tmp_path)))
    assert proc.returncode == 0
    start = time.monotonic()
    assert sh(durable("true", state_dir=str(tmp_path), wait_s=3)).returncode == 0
    assert time.monotonic() - start < 2


def test_a_script_cut_off_midway_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    whole = all_or_nothing(f"touch {marker}\ncat > {tmp_path}/f <<'EOF'\nline one\nline two\nEOF\n")
    cut = whole[: whole.index("line two")]
    proc = sh(cut)
    assert proc.returncode != 0 and not marker.exists()
    assert sh(whole).returncode == 0 and marker.exists()


def test_apt_scripts_are_valid_sh_and_never_keep_our_policy_as_the_admins() -> None:
    for script in (durable(install_script(["nova-compute", "ovs"])), durable(repair_script())):
        assert subprocess.run(["sh", "-n"], input=script, text=True, check=False).returncode == 0
    script = install_script(["nova-compute"])
    assert OURS in script and "grep -qxF" in script
    assert "--no-install-recommends" in script and "DPkg::Lock::Timeout" in script


def test_held_services_get_one_daemon_reload_at_the_end_when_a_script_deferred_one(tmp_path: Path) -> None:
    calls = tmp_path / "calls"

    def held(body: str) -> subprocess.CompletedProcess[str]:
        script = hold_services(body).replace("systemctl daemon-reload", f"echo reload >> {calls}")
        script = script.replace(DEFERRED_DAEMON_RELOAD, str(tmp_path / "deferred"))
        script = script.replace(POLICY, str(tmp_path / "policy"))
        return sh(script.replace(STATE_DIR, str(tmp_path / "state")))

    # The body stands for apt: a maintainer script's reload left the marker, nothing else reloaded.
    policy, deferred = tmp_path / "policy", tmp_path / "deferred"
    done = held(f'test "${SERVICES_HELD_ENV}" = 1; test -x {policy}; : > {deferred}')
    assert done.returncode == 0, done.stderr
    assert calls.read_text().split() == ["reload"]
    assert not (tmp_path / "deferred").exists() and not (tmp_path / "policy").exists()
    assert held("true").returncode == 0 and calls.read_text().split() == ["reload"]  # none deferred: none
    assert held(f": > {tmp_path / 'deferred'}; false").returncode != 0  # a failed apt still reloads
    assert calls.read_text().split() == ["reload", "reload"]


def test_a_repair_runs_apts_post_invoke_hooks_and_reports_a_failing_one(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    conf = tmp_path / "apt.conf"
    conf.write_text(f'DPkg::Post-Invoke {{ "echo one >> {ran}"; "false"; "echo two >> {ran}"; }};\n')
    assert POST_INVOKE_HOOKS in repair_script()
    proc = subprocess.run(
        ["sh", "-e", "-c", POST_INVOKE_HOOKS],
        env={**os.environ, "APT_CONFIG": str(conf)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert ran.read_text().split() == ["one", "two"]
    assert "DPkg::Post-Invoke hook failed: false" in proc.stderr


def test_upgraded_packages_are_named_with_their_new_versions() -> None:
    from stackwright.engine.apt import upgraded_packages
    from stackwright.engine.converge import upgrade_summary

    out = (
        "Preparing to unpack .../nova-compute_2%3a31.0.0-6+sw1_all.deb ...\n"
        "Setting up python3-nova (2:31.0.0-6+sw1) ...\n"
        "Setting up libvirt0:amd64 (11.3.0-3) ...\n"
        "Processing triggers for man-db (2.13.1-1) ...\n"
    )
    names = upgraded_packages(out)
    assert names == ["python3-nova 2:31.0.0-6+sw1", "libvirt0 11.3.0-3"]
    assert upgrade_summary(names) == "upgraded 2 packages: python3-nova 2:31.0.0-6+sw1, libvirt0 11.3.0-3"
    assert upgrade_summary([f"p{i} 1" for i in range(8)], shown=6).endswith("p5 1 and 2 more")
