"""The fault suite: each test's summary line is repeated at the end of the run."""

from __future__ import annotations

from typing import Any

from tests.faults.harness import REPORT_LINES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print events, faults, lost and duplicated of every fault test that ran."""
    if REPORT_LINES:
        terminalreporter.section("fault suite")
        for line in REPORT_LINES:
            terminalreporter.write_line(line)
