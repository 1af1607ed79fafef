"""The Tempest report on screen: a table by service, each failure with its reason, each skip reason."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stackwright.tempest.run import TempestReport

if TYPE_CHECKING:
    from rich.console import Console


def show_tempest(report: TempestReport, console: Console) -> None:
    from rich.table import Table

    summary = report.summary
    table = Table(title=f"Tempest {report.version}: {report.seconds:.0f} s", title_justify="left")
    for column in ("service", "passed", "failed", "skipped"):
        table.add_column(column, justify="left" if column == "service" else "right")
    for service, tally in sorted(summary.by_service.items()):
        failed = f"[red]{tally.failed}[/red]" if tally.failed else "0"
        table.add_row(service, str(tally.passed), failed, str(tally.skipped))
    table.add_row("[bold]all[/bold]", str(summary.passed), str(summary.failed), str(summary.skipped))
    console.print(table)
    for failure in summary.failures():
        console.print(f"[red]✗[/red] {failure.name}\n    {failure.reason}", highlight=False)
    for reason, count in summary.skip_reasons():
        console.print(f"[dim]skipped {count}: {reason}[/dim]", highlight=False)
    for kind, ids in report.leftovers.items():
        console.print(f"[red]left behind in the cloud: {len(ids)} {kind}[/red] ({', '.join(ids[:5])})")
    for problem in report.cleanup_problems:
        console.print(f"[red]cleanup: {problem}[/red]")
    console.print(f"subunit stream and logs: {report.workspace}")
    verdict = "[green]passed[/green]" if report.ok else "[red]failed[/red]"
    console.print(
        f"Tempest {verdict}: {summary.passed} passed, {summary.failed} failed, {summary.skipped} skipped"
    )
