"""How apply, plan --live and preflight look: live progress per host, diffs, a summary table."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from stackwright.checks.preflight import Preflight
from stackwright.engine.converge import HostReport
from stackwright.engine.hostrun import Outcome
from stackwright.engine.remote import LOST, Result
from stackwright.secrets import Masker


class ProgressView:
    """One row per host: its current step, changes so far, time. Plain lines when not a terminal."""

    def __init__(self, console: Console, hosts: list[str], mask: Masker, verbose: bool = False) -> None:
        self.console = console
        self.mask = mask
        self.verbose = verbose
        self.start = time.monotonic()
        self.rows: dict[str, dict[str, Any]] = {
            h: {"step": "connecting", "changed": 0, "unchanged": 0, "failed": False} for h in hosts
        }
        self.live: Live | None = None

    def __enter__(self) -> ProgressView:
        if self.console.is_terminal:
            self.live = Live(self._table(), console=self.console, refresh_per_second=8, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def __call__(self, host: str, summary: str, outcome: Outcome | None) -> None:
        if outcome is not None:
            self.mask.learn(outcome.seen_secrets)
        row = self.rows.setdefault(host, {"step": "", "changed": 0, "unchanged": 0, "failed": False})
        row["step"] = summary
        if outcome is None and self.verbose and self.live is None:
            # a log without a live view says what each host is doing while it does it
            self.console.print(
                Text.assemble((f"{host}: ", "bold"), self.mask(summary), " …"), highlight=False
            )
        if outcome is not None:
            row["changed" if outcome.changed else "unchanged"] += 1
            if outcome.changed or self.verbose:
                self.console.print(
                    Text.assemble(
                        (f"{host}: ", "bold"),
                        self.mask(summary),
                        " → ",
                        (self.mask(outcome.detail), "green" if outcome.changed else "dim"),
                        (f" ({outcome.seconds:.1f} s)" if outcome.seconds >= 0.5 else "", "dim"),
                    ),
                    highlight=False,
                )
        if self.live is not None:
            self.live.update(self._table())

    def _table(self) -> Table:
        table = Table(title=f"converging · {time.monotonic() - self.start:.0f} s", expand=False)
        for column in ("host", "step", "changed", "unchanged"):
            table.add_column(column)
        for host, row in self.rows.items():
            table.add_row(host, self.mask(row["step"])[:70], str(row["changed"]), str(row["unchanged"]))
        return table


def print_preflight(console: Console, preflights: Mapping[str, Preflight]) -> None:
    table = Table(title="preflight")
    for column in ("host", "check", "result"):
        table.add_column(column)
    for host, report in preflights.items():
        for line in report.lines:
            mark = (
                "[green]ok[/green]"
                if line.ok
                else ("[yellow]warn[/yellow]" if line.warning else "[red]FAIL[/red]")
            )
            table.add_row(host, line.id, f"{mark} {escape(line.message)}")
    console.print(table)


def learn_secrets(reports: Mapping[str, HostReport], mask: Masker) -> None:
    """Old secret values the run read on hosts are masked from now on, in every output and the log."""
    for report in reports.values():
        for outcome in report.outcomes:
            mask.learn(outcome.seen_secrets)


def print_live_plan(console: Console, reports: Mapping[str, HostReport], mask: Masker) -> int:
    """The dry run's changes per host, with exact diffs (files holding secrets: a count of changed
    lines only). Returns the number of changes."""
    learn_secrets(reports, mask)
    total = 0
    for host, report in reports.items():
        changes = [o for o in report.outcomes if o.changed]
        total += len(changes)
        console.print(f"\n[bold]── {host}[/bold]: {len(changes)} to change, {report.unchanged} unchanged")
        for outcome in changes:
            from stackwright.planview import step_summary

            console.print(
                f"  • {escape(mask(step_summary(outcome.step, mask)))} → {escape(mask(outcome.detail))}",
                highlight=False,
            )
            if outcome.diff:
                for line in mask(outcome.diff).splitlines():
                    style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
                    console.print(Text("    " + line, style=style), highlight=False)
        if report.error:
            why = report.error.result.tail(3) or str(report.error)
            console.print(f"  [red]cannot plan:[/red] {escape(mask(why))}", highlight=False)
    return total


def print_summary(console: Console, reports: Mapping[str, HostReport], mask: Masker, seconds: float) -> None:
    learn_secrets(reports, mask)
    table = Table(title=f"apply summary · {seconds:.1f} s")
    for column in ("host", "result", "changed", "unchanged", "restarted", "time per phase"):
        table.add_column(column)
    for host, report in reports.items():
        result = "[green]converged[/green]" if report.ok else "[red]FAILED[/red]"
        if report.reboot_required:
            result += " [yellow](reboot required: rerun with --allow-reboot)[/yellow]"
        phases = ", ".join(f"{k} {v:.1f}s" for k, v in report.phases.items() if v >= 0.05)
        table.add_row(
            host,
            result,
            str(report.changed),
            str(report.unchanged),
            ", ".join(report.restarted) or "-",
            phases,
        )
    console.print(table)
    for host, report in reports.items():
        if report.error:
            err = report.error
            console.print(
                f"[red]{host}: failed at[/red] {escape(mask(err.command))} ({exit_status(err.result)})",
                highlight=False,
            )
            tail = mask(err.result.tail(12))
            if tail:
                console.print(Text("\n".join("    " + line for line in tail.splitlines()), style="dim"))
            if err.hint:
                console.print(f"    hint: {escape(mask(err.hint))}", highlight=False)


def exit_status(result: Result) -> str:
    """ "exit 100", or what stands for an exit status that never came."""
    if result.rc == LOST:
        return "connection lost" if "lost" in result.stderr else "no exit status"
    return "timed out" if result.rc == 124 and "timed out" in result.stderr else f"exit {result.rc}"


def reports_json(reports: Mapping[str, HostReport], mask: Masker) -> str:
    learn_secrets(reports, mask)
    data = {
        host: {
            "ok": r.ok,
            "changed": r.changed,
            "unchanged": r.unchanged,
            "restarted": r.restarted,
            "reboot_required": r.reboot_required,
            "phases": {k: round(v, 3) for k, v in r.phases.items()},
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "error": None
            if r.error is None
            else {
                "command": mask(r.error.command),
                "rc": r.error.result.rc,
                "output": mask(r.error.result.tail(12)),
                "hint": mask(r.error.hint),
            },
            "changes": [
                {"kind": o.step.kind, "detail": mask(o.detail), "path": getattr(o.step, "path", None)}
                for o in r.outcomes
                if o.changed
            ],
        }
        for host, r in reports.items()
    }
    return json.dumps({"hosts": data, "ok": all(r.ok for r in reports.values())}, indent=2)
