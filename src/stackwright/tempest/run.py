"""Run Tempest against the cloud and read its results (the shell: venv, cloud, subprocesses).

A run's files live in a directory of its own beside the run logs (0700): etc/tempest.conf (0600:
it holds the admin password), tempest.log, results.subunit (the raw stream) and results.json.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from stackwright.cloud import connect
from stackwright.inventory import Inventory
from stackwright.smoke.image import build_guest
from stackwright.tempest import resources as cloud_resources
from stackwright.tempest.conf import tempest_conf
from stackwright.tempest.results import FAILED, Summary, failure_reason, parse_lines, summarize
from stackwright.tempest.venv import ensure_venv, tempest_version
from stackwright.yamlsource import UserError

Mode = Literal["smoke", "full"]
SMOKE = r"\[.*\bsmoke\b.*\]"
RUN_TIMEOUT_S = {"smoke": 3600.0, "full": 4 * 3600.0}
PARSE_TIMEOUT_S = 120.0


@dataclass
class TempestReport:
    summary: Summary
    workspace: Path
    version: str
    seconds: float
    leftovers: dict[str, list[str]] = field(default_factory=dict)
    cleanup_problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.summary.ok and not self.leftovers and not self.cleanup_problems

    def as_json(self) -> dict[str, Any]:
        return {
            **self.summary.as_json(),
            "ok": self.ok,
            "tempest": self.version,
            "seconds": round(self.seconds, 1),
            "workspace": str(self.workspace),
            "subunit": str(self.workspace / "results.subunit"),
            "left_behind": self.leftovers,
            "cleanup_problems": self.cleanup_problems,
        }


def selection(mode: Mode, regex: str | None) -> str:
    """The stestr regex: smoke-tagged tests (and `regex`), or `regex` alone (everything without)."""
    if mode == "smoke":
        return f"(?=.*{SMOKE})(?:{regex})" if regex else SMOKE
    return regex or "^tempest\\."


def run_tempest(
    inventory: Inventory,
    passwords: Mapping[str, str],
    *,
    release: str,
    mode: Mode,
    regex: str | None,
    concurrency: int,
    log_dir: Path,
    progress: Callable[[str], None],
    ca_file: Path | None = None,
) -> TempestReport:
    started = time.monotonic()
    if shutil.which("ping") is None:
        raise UserError(
            "verify --tempest needs ping on this machine (Tempest pings floating IPs) — install iputils-ping"
        )
    progress("Tempest virtualenv")
    venv = ensure_venv(release)
    version = (venv / ".complete").read_text().strip()
    progress("test guest")
    guest = build_guest(progress=progress)
    conn = connect(inventory, passwords, cacert=ca_file)
    before = cloud_resources.snapshot(conn)
    notes: list[str] = []
    workspace = _workspace(log_dir, venv)
    try:
        progress("images and flavors for Tempest")
        cloud = cloud_resources.prepare(conn, guest, notes)
        conf = workspace / "etc" / "tempest.conf"
        _write_private(
            conf,
            tempest_conf(
                inventory,
                passwords,
                cloud,
                release=release,
                log_file=workspace / "tempest.log",
                ca_file=ca_file.resolve() if ca_file else None,
            ),
        )
        progress(f"tempest run ({mode}, concurrency {concurrency}); log {workspace / 'tempest.log'}")
        _tempest(venv, workspace, conf, selection(mode, regex), concurrency, RUN_TIMEOUT_S[mode], ca_file)
        summary = _results(venv, workspace)
    finally:
        progress("removing Tempest's images and flavors")
        problems = cloud_resources.remove(conn)
        leftovers = before.new_in(cloud_resources.snapshot(conn))
        if leftovers:
            # Tempest's own cleanup failed somewhere (its failure is in the results): finish it.
            progress("removing what Tempest left behind")
            swept, unswept = cloud_resources.sweep(conn, leftovers)
            if swept:
                notes.append(f"removed what Tempest's own cleanup left: {', '.join(swept)}")
            problems += unswept
            leftovers = before.new_in(cloud_resources.snapshot(conn))
    return TempestReport(summary, workspace, version, time.monotonic() - started, leftovers, problems, notes)


def _workspace(log_dir: Path, venv: Path) -> Path:
    """What `tempest init` makes, without registering the directory in ~/.tempest."""
    discover = next(venv.glob("lib/python3*/site-packages/tempest/test_discover"), None)
    if discover is None:
        raise UserError(f"the Tempest virtualenv {venv} holds no tempest/test_discover — remove it and retry")
    workspace = log_dir / f"tempest-{time.strftime('%Y%m%dT%H%M%S')}"
    log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    workspace.mkdir(mode=0o700)
    (workspace / "etc").mkdir(mode=0o700)
    (workspace / ".stestr.conf").write_text(
        f"[DEFAULT]\ntest_path={discover}\ntop_dir={discover.parent.parent}\ngroup_regex=([^\\.]*\\.)*\n"
    )
    return workspace


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _tempest(
    venv: Path,
    workspace: Path,
    conf: Path,
    regex: str,
    concurrency: int,
    timeout: float,
    ca_file: Path | None,
) -> None:
    # Tempest's clients read [identity] ca_certificates_file; its dashboard test opens the dashboard
    # with urllib's default context, which OpenSSL points at SSL_CERT_FILE: the cloud's CA (Tempest
    # talks to this cloud only), so verification stays on.
    env = {**os.environ, "SSL_CERT_FILE": str(ca_file.resolve())} if ca_file else None
    argv = [
        str(venv / "bin" / "tempest"), "run", "--config-file", str(conf), "--regex", regex,
        "--concurrency", str(concurrency), "--subunit",
    ]  # fmt: skip
    with (workspace / "results.subunit").open("wb") as out, (workspace / "run.err").open("wb") as err:
        try:
            subprocess.run(argv, cwd=workspace, stdout=out, stderr=err, timeout=timeout, check=False, env=env)
        except subprocess.TimeoutExpired:
            raise UserError(
                f"tempest did not finish within {timeout:.0f} s — see {workspace / 'tempest.log'}"
            ) from None
    if (workspace / "results.subunit").stat().st_size == 0:
        tail = (workspace / "run.err").read_text(errors="replace").strip().splitlines()[-3:]
        raise UserError(f"tempest ran no test: {' | '.join(tail) or 'no output'} — see {workspace}")


def _results(venv: Path, workspace: Path) -> Summary:
    script = resources.files("stackwright.tempest").joinpath("subunit2json.py").read_text()
    with (workspace / "results.subunit").open("rb") as stream:
        proc = subprocess.run(
            [str(venv / "bin" / "python"), "-c", script],
            stdin=stream,
            capture_output=True,
            timeout=PARSE_TIMEOUT_S,
            check=False,
        )
    if proc.returncode != 0:
        raise UserError(f"reading Tempest's results failed: {proc.stderr.decode(errors='replace')[-300:]}")
    text = proc.stdout.decode()
    (workspace / "results.json").write_text(text)
    results = parse_lines(text)
    shortened = [replace(r, reason=failure_reason(r.reason)) if r.status in FAILED else r for r in results]
    return summarize(shortened)


__all__ = ["TempestReport", "run_tempest", "selection", "tempest_version"]
