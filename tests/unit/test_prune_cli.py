"""`sns-telegram prune`'s arguments: whatever an operator types, a usage error (status 2), or a
prune that reports a database it cannot reach in one line (status 1); never a traceback."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.cli import main

pytestmark = pytest.mark.unit

UNREACHABLE = "postgresql://nobody@127.0.0.1:1/nothing"  # port 1: refused at once


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    argv=st.lists(
        st.sampled_from(["--dry-run", "--dry", "-n", "--", "x", "--yes"]) | st.text(max_size=12),
        max_size=3,
    )
)
@example(argv=[])
@example(argv=["--dry-run"])
@example(argv=["--dry-run", "--dry-run"])
def test_any_arguments_give_a_usage_error_or_one_line(argv, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE)
    try:
        code = main(["prune", *argv])
    except SystemExit as exc:  # argparse: usage on stderr, status 2 (--help: 0)
        out = capsys.readouterr()
        assert (exc.code == 2 and "usage: sns-telegram" in out.err) or (exc.code == 0 and out.out)
        return
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("sns-telegram prune: the database failed")
