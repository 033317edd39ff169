"""What `sns-telegram migrate` and `publish` print: URLs without their password, outside input
with its control characters escaped, a clear error and exit status instead of a traceback."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from services.cli import main
from tests.unit.unsafe import hostile_text, raw_unsafe

pytestmark = pytest.mark.integration

SECRET = "hunter2-secret"
UNREACHABLE_DB = f"postgresql://postgres:{SECRET}@127.0.0.1:1/sns_telegram"
UNREACHABLE_BROKER = f"amqp://guest:{SECRET}@127.0.0.1:1/"


def test_a_failed_migration_is_one_error_line_without_the_password(monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE_DB)
    assert main(["migrate"]) == 1
    out, err = capsys.readouterr()
    assert err.startswith(
        "error: cannot migrate postgresql://postgres:***@127.0.0.1:1/sns_telegram"
    )
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert SECRET not in out + err


def test_a_malformed_database_url_is_an_error_not_a_traceback(monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres:{SECRET}@127.0.0.1:port/db")
    assert main(["migrate"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot migrate postgresql://postgres:***@")
    assert SECRET not in err


def test_a_migration_names_the_database_without_the_password(
    fresh_database_url, monkeypatch, capsys
):
    url = make_url(fresh_database_url).set(password=SECRET)  # trust authentication ignores it
    monkeypatch.setenv("DATABASE_URL", url.render_as_string(hide_password=False))
    assert main(["migrate"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("migrated postgresql://postgres:***@")
    assert SECRET not in out


def url_part(max_size: int, delimiters: str) -> st.SearchStrategy[str]:
    """Hostile text an environment variable can hold (no NUL, no lone surrogate) without the
    URL delimiters that would move the host: the URL must stay unreachable."""
    drop = {ord(c): None for c in "\x00" + delimiters}
    return hostile_text(max_size).map(
        lambda t: t.encode("utf-8", "replace").decode().translate(drop)
    )


CLI_FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples every run: never a flaky failure
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
"""The property tests' settings: each runs the command in-process, with pytest's fixtures."""


@given(
    user=url_part(30, ":/?#@"),
    password=url_part(30, "/?#@").map(lambda p: f"pw-{p}"),
    database=url_part(30, "?#"),
)
@example(user="postgres", password="pw-\x1b[2J\u202e", database="sns")
@example(user="a b", password="pw-:%zz", database="[link=x]y[/link]")  # found: a spaced user
@example(user="\r", password="pw-", database="")  # found: a control character in the user
@example(user="\n", password="pw-", database="")  # found: a line break in the user
@example(user="", password="pw- ", database="")  # found: a space in a short password
@example(user="x", password="pw-\x07 :spaced", database="sns")  # found: libpq quotes it encoded
@example(user="postgres", password="pa ss-word", database="sns")  # libpq quotes it alone
@CLI_FUZZ
def test_migrate_with_any_unreachable_url_is_one_safe_error_line(
    monkeypatch, capsys, user, password, database
):
    # Should a URL still lose its host, libpq falls back to these: unreachable too.
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", "1")
    assume(password not in database)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://{user}:{password}@127.0.0.1:1/{database}")
    assert main(["migrate"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ")
    assert len(err.splitlines()) == 1, err
    assert raw_unsafe(err, allow="\n") == []
    assert password not in err


@given(user=hostile_text(max_size=60), data=hostile_text(max_size=120))
@example(user="\x1b[2J\u202e", data='{"platform": "\\u001b[2J\\u009b31m", "content": "\\u202e"}')
@example(user="user-1", data='{"platform": "instagram", "content": "\\u001b]8;;x\\u0007"}')
@example(user="user-1", data="[1, 2")
@example(user="-", data="-1")  # found: an option-like value needs --data=...
@CLI_FUZZ
def test_publish_never_prints_a_raw_control_character_or_the_broker_password(
    monkeypatch, capsys, user, data
):
    monkeypatch.setenv("RABBITMQ_URL", UNREACHABLE_BROKER)
    status = main(["publish", "post_success", f"--user={user}", f"--data={data}"])
    out, err = capsys.readouterr()
    assert status in (1, 2)  # invalid input, or the broker is unreachable
    assert raw_unsafe(out + err, allow="\n") == []
    assert len(err.splitlines()) == 1, err
    assert SECRET not in out + err
