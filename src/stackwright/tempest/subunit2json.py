"""Runs in the Tempest virtualenv (its python-subunit and testtools): a subunit v2 stream on stdin
-> one JSON line per test on stdout: {"id", "status", "seconds", "reason"}.

The reason is the skip reason, or a failure's traceback (results.failure_reason keeps its point).
"""

from __future__ import annotations

import json
import sys
from typing import Any

FINAL = ("success", "fail", "skip", "xfail", "uxsuccess")


def main() -> None:
    import subunit  # type: ignore[import-not-found]
    import testtools  # type: ignore[import-not-found]

    tests: dict[str, dict[str, Any]] = {}

    class Collect(testtools.StreamResult):  # type: ignore[misc]
        def status(self, test_id: str | None = None, test_status: str | None = None,
                   file_name: str | None = None, file_bytes: bytes | None = None,
                   timestamp: Any = None, **_: Any) -> None:  # fmt: skip
            if not test_id:
                return
            entry = tests.setdefault(test_id, {"status": "", "start": None, "stop": None, "text": {}})
            if test_status == "inprogress" and timestamp is not None:
                entry["start"] = timestamp
            elif test_status in FINAL:
                entry["status"] = test_status
                entry["stop"] = timestamp
            if file_name and file_bytes:
                text = entry["text"]
                text[file_name] = text.get(file_name, "") + bytes(file_bytes).decode("utf-8", "replace")

    collect = Collect()
    collect.startTestRun()
    subunit.ByteStreamToStreamResult(sys.stdin.buffer, non_subunit_name="stdout").run(collect)
    collect.stopTestRun()
    for test_id, entry in tests.items():
        if not entry["status"]:
            continue
        seconds = 0.0
        if entry["start"] is not None and entry["stop"] is not None:
            seconds = (entry["stop"] - entry["start"]).total_seconds()
        reason = entry["text"].get("reason") or entry["text"].get("traceback") or ""
        line = {
            "id": test_id,
            "status": entry["status"],
            "seconds": round(seconds, 2),
            "reason": reason.strip(),
        }
        print(json.dumps(line))


if __name__ == "__main__":
    main()
