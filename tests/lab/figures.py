"""Figures the lab tests measure while they assert (timings, counts), written once at the end of
the session by the `figures` fixture (conftest.py) to `.benchmarks/<sheet>.json`; docs/reliability.md
and docs/benchmarks.md quote them. No test exists only to record figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SHEETS: dict[str, dict[str, Any]] = {}


def record(sheet: str, key: str, value: Any) -> None:
    SHEETS.setdefault(sheet, {})[key] = value


def append(sheet: str, key: str, value: Any) -> None:
    SHEETS.setdefault(sheet, {}).setdefault(key, []).append(value)


def write_all() -> list[Path]:
    out = ROOT / ".benchmarks"
    written = []
    for sheet, figures in SHEETS.items():
        out.mkdir(exist_ok=True)
        path = out / f"{sheet}.json"
        path.write_text(json.dumps(figures, indent=2) + "\n")
        written.append(path)
    return written
