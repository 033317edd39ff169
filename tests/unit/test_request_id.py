"""`x-request-id`: a client's short safe token is kept; anything else is replaced by a new one,
never echoed in the response nor written to a log."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.common.logging import JsonFormatter
from services.common.web import install_common

pytestmark = pytest.mark.unit

SAFE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
log = logging.getLogger("services.test.request_id")


class Lines(logging.Handler):
    """The JSON log lines of this logger, as the services write them."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def make_app() -> FastAPI:
    app = FastAPI()
    install_common(app, "test")

    @app.get("/work")
    async def work() -> dict[str, str]:
        log.warning("working")
        return {"status": "ok"}

    return app


APP = make_app()


async def call(value: bytes | None) -> tuple[httpx.Response, list[dict[str, object]]]:
    handler = Lines()
    log.addHandler(handler)
    try:
        headers = {} if value is None else {"x-request-id": value}
        transport = httpx.ASGITransport(app=APP)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/work", headers=headers)
    finally:
        log.removeHandler(handler)
    return response, [json.loads(line) for line in handler.lines]


def request_id(value: bytes | None) -> tuple[httpx.Response, str, list[dict[str, object]]]:
    """Call with `value` as x-request-id; check the answered id is safe and is the one logged."""
    response, records = asyncio.run(call(value))
    assert response.status_code == 200
    given = response.headers["x-request-id"]
    assert SAFE.fullmatch(given), given
    assert [r["request_id"] for r in records] == [given]
    return response, given, records


@pytest.mark.parametrize("value", [b"req-1", b"7b0c2f0e.2c7e:4a53_9a55", b"a" * 128])
def test_a_safe_request_id_is_kept_and_logged(value):
    _, given, _ = request_id(value)
    assert given == value.decode()


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"a" * 129,
        b"req\r\nSet-Cookie: x=1",
        b"\x1b[2J\x1b[Hforged",
        "\u202eexe.txt".encode(),
        "요청-1".encode(),
        b'x" , "level": "debug',
    ],
)
def test_anything_else_gets_a_new_id(value):
    _, given, _ = request_id(value)
    assert given != (value or b"").decode("utf-8", "replace")
    assert re.fullmatch(r"[0-9a-f]{32}", given)


@given(value=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
@example(value=b"\x9b31m")
@example(value=b"a" * 10_000)
@settings(max_examples=200, deadline=None, derandomize=True)
def test_any_header_value_gives_a_safe_request_id(value):
    _, given, _ = request_id(value)  # the logged id is the answered one (see request_id)
    if not SAFE.fullmatch(value.decode("latin-1")):
        assert given != value.decode("latin-1")
