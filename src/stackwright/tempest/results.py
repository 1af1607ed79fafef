"""Tempest's results, from the subunit stream (as `subunit2json.py` turns it into JSON lines), by
service: passed, failed, skipped (with the reason), and why each failure failed (pure).

    {"id": "tempest.api.compute.servers.test_servers.ServersTestJSON.test_x[id-...,smoke]",
     "status": "success" | "fail" | "skip" | "xfail" | "uxsuccess", "seconds": 3.2, "reason": "..."}
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

PASSED = ("success", "xfail")
FAILED = ("fail", "uxsuccess")


@dataclass(frozen=True)
class TestResult:
    id: str
    status: str
    seconds: float = 0.0
    reason: str = ""

    @property
    def service(self) -> str:
        """api.compute... -> compute; scenario... -> scenario (the test tree's own grouping); a
        class-level row, `setUpClass (tempest.api.volume.test_x.VolumesTest)`, by its class."""
        inner = re.fullmatch(r"\w+Class \((.+)\)", self.id)
        parts = (inner.group(1) if inner else self.id).split(".")
        if len(parts) > 2 and parts[0] == "tempest" and parts[1] == "api":
            return parts[2]
        if len(parts) > 1 and parts[0] == "tempest":
            return parts[1]
        return parts[0] or "?"

    @property
    def name(self) -> str:
        """The test without its `[id-...,tags]` suffix."""
        return re.sub(r"\[.*\]$", "", self.id)


@dataclass
class ServiceTally:
    passed: int = 0
    failed: int = 0
    skipped: int = 0


@dataclass
class Summary:
    results: list[TestResult]
    by_service: dict[str, ServiceTally] = field(default_factory=dict)

    @property
    def passed(self) -> int:
        return sum(t.passed for t in self.by_service.values())

    @property
    def failed(self) -> int:
        return sum(t.failed for t in self.by_service.values())

    @property
    def skipped(self) -> int:
        return sum(t.skipped for t in self.by_service.values())

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.passed > 0

    def failures(self) -> list[TestResult]:
        return [r for r in self.results if r.status in FAILED]

    def skip_reasons(self) -> list[tuple[str, int]]:
        """(reason, how many tests) — the reasons in order of how many tests they skipped."""
        counts = Counter(r.reason or "(no reason given)" for r in self.results if r.status == "skip")
        return counts.most_common()

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "passed": self.passed,
            "failed": self.failed,
            "skipped": self.skipped,
            "by_service": {s: vars(t) for s, t in sorted(self.by_service.items())},
            "failures": [{"test": r.name, "reason": r.reason} for r in self.failures()],
            "skips": [{"reason": reason, "tests": n} for reason, n in self.skip_reasons()],
        }


def parse_lines(text: str) -> list[TestResult]:
    results: list[TestResult] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        data = json.loads(line)
        results.append(
            TestResult(
                str(data["id"]),
                str(data["status"]),
                float(data.get("seconds") or 0),
                str(data.get("reason") or ""),
            )
        )
    return results


def summarize(results: list[TestResult]) -> Summary:
    summary = Summary(results)
    for result in results:
        # setUpClass/tearDownClass rows name a class, not a test: counted by what happened.
        tally = summary.by_service.setdefault(result.service, ServiceTally())
        if result.status in PASSED:
            tally.passed += 1
        elif result.status in FAILED:
            tally.failed += 1
        elif result.status == "skip":
            tally.skipped += 1
    return summary


def failure_reason(traceback: str) -> str:
    """The line that says why: the last exception line of a traceback, else its last line."""
    lines = [line.strip() for line in traceback.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]+(Error|Exception|Failure|Timeout\w*|Exceeded|Failed)\b", line):
            return line[:400]
    return (lines[-1] if lines else "")[:400]
