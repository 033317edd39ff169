"""`sns-telegram trace` with any arguments: an answer, exit status 0, 1 (nothing known) or 2 (a bad
argument), never a traceback, and nothing printed that could rewrite the operator's terminal."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.cli import main
from tests.unit.unsafe import hostile_text, raw_unsafe

pytestmark = pytest.mark.integration

TEXT = hostile_text(140) | st.uuids().map(str)
ARGV = st.one_of(
    TEXT.map(lambda event: ["--", event]),
    st.tuples(TEXT, st.integers(-3, 200)).map(lambda a: [f"--user={a[0]}", f"--last={a[1]}"]),
    st.tuples(TEXT, TEXT).map(lambda a: [f"--user={a[0]}", "--", a[1]]),
    st.just([]),
)
"""Values after `--` or `=`, so argparse reads them as values (an option-like one would be an
argparse usage error, which echoes it as it is)."""


@given(argv=ARGV)
@example(argv=["--", str(uuid.UUID(int=0))])  # a UUID nothing is known of
@example(argv=["--user=\x1b[2J\u202e", "--last=5"])  # a hostile user id: nothing recorded
@example(argv=["--user=\ud800", "--last=5"])  # found: a lone surrogate reached PostgreSQL
@example(argv=["--user=a\x00b", "--last=5"])
@example(argv=["--user=" + "x" * 129, "--last=5"])
@example(argv=["--user=u", "--last=0"])
@example(argv=["--", "7B0C2F0E-5A7E-4C55-9D8E-3F1F3C2B9A10"])  # upper case is a UUID too
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same examples every run: never a flaky failure
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_trace_answers_any_arguments_safely(database_url, monkeypatch, capsys, argv):
    monkeypatch.setenv("DATABASE_URL", database_url)
    status = main(["trace", "--no-dlq", *argv])
    out, err = capsys.readouterr()
    assert status in (0, 1, 2), (status, out, err)
    assert "Traceback" not in out + err
    assert raw_unsafe(out, allow="\n") == [] and raw_unsafe(err, allow="\n") == []
    if status == 2:
        assert out == "" and err, err  # a bad argument is said on stderr
