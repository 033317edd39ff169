"""`sns-telegram --help` (as a real process) names every subcommand, the new ones included."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from services.cli import build_parser

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def help_of(*argv: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", *argv, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def subcommands(parser: argparse.ArgumentParser) -> list[str]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(action.choices)


def test_help_lists_every_subcommand():
    names = subcommands(build_parser())
    assert {"migrate", "notifier", "linker", "scheduler", "dev", "dlq", "publish"} <= set(names)
    text = help_of()
    for name in names:
        assert f"\n    {name}" in text, name


def test_dlq_help_lists_its_actions():
    text = help_of("dlq")
    for action in ("list", "show", "replay", "purge"):
        assert f"\n    {action}" in text
    assert "--only-valid" in help_of("dlq", "replay")
    assert "--yes" in help_of("dlq", "purge")


def test_publish_help_names_the_types():
    text = " ".join(help_of("publish").split())
    assert "post_success" in text and "telegram.chat_migrated" in text
    assert "--data-file" in text and "--occurred-at" in text
