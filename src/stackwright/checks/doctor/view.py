"""How doctor looks: a Rich table (check, host, status, cause, fix), or JSON with stable keys."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from stackwright.checks.doctor.runner import DoctorReport
from stackwright.secrets import Masker

if TYPE_CHECKING:
    from rich.console import Console

STYLES = {"ok": "green", "fail": "bold red", "warn": "yellow", "skip": "dim"}


def report_json(report: DoctorReport, mask: Masker) -> str:
    data: dict[str, Any] = {
        "ok": report.ok,
        "seconds": round(report.seconds, 2),
        "checks": [
            {"id": r.id, "host": r.host, "status": r.status, "cause": r.cause, "fix": r.fix}
            for r in report.rows
        ],
        "fixes": [
            {
                "host": f.fix.host,
                "description": f.fix.description,
                "command": f.fix.command,
                "ok": f.ok,
                "output": f.output,
            }
            for f in report.fixes
        ],
    }
    return mask(json.dumps(data, indent=2))


def show_report(report: DoctorReport, console: Console, mask: Masker) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="stackwright doctor", show_lines=False, expand=False)
    for name in ("check", "host", "status", "cause", "fix"):
        table.add_column(name, overflow="fold")
    for row in report.rows:
        style = STYLES.get(row.status, "")
        table.add_row(
            Text(row.id),
            Text(row.host),
            Text(row.status, style=style),
            Text(mask(row.cause)),
            Text(mask(row.fix), style="yellow" if row.failed else "dim"),
        )
    console.print(table)
    failed = sum(r.failed for r in report.rows)
    warned = sum(r.status == "warn" for r in report.rows)
    summary = "[green]all checks passed[/green]" if not failed else f"[red]{failed} failing[/red]"
    if warned:
        summary += f", [yellow]{warned} warning(s)[/yellow]"
    console.print(f"{len(report.rows)} results in {report.seconds:.1f} s: {summary}")


def show_fixes(report: DoctorReport, console: Console, mask: Masker) -> None:
    if not report.fixes:
        console.print("--fix: no safe fix applies to the failures above")
        return
    for result in report.fixes:
        mark = "[green]fixed[/green]" if result.ok else "[red]fix failed[/red]"
        console.print(f"{mark} {result.fix.host}: ", end="")
        console.print(mask(result.fix.description), markup=False, highlight=False, end="")
        console.print(f" (`{mask(result.fix.command)}`)", markup=False, highlight=False)
        if not result.ok and result.output:
            console.print(f"    {mask(result.output)}", markup=False, highlight=False, style="red")
