"""The scheduler's admin API fuzzed with schemathesis against a served scheduler (positive and
negative data, every check, an admin JWT): never a 5xx, and every answer is one the OpenAPI
document lists, in its shape."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import example, given
from hypothesis import strategies as st
from schemathesis import GenerationMode

from services.scheduler.config import JOB_ID
from shared.db import create_engine
from tests.scheduler.harness import put_links, token, utc
from tests.scheduler.served import ServedScheduler
from tests.served import FUZZ

pytestmark = pytest.mark.integration

TRIGGER = f"/api/admin/scheduler/jobs/{JOB_ID}/trigger"


@pytest.fixture
async def served(fresh_database_url, rabbitmq_url):
    """A scheduler at 2026-02-26 10:00 UTC on a database of its own with two linked users."""
    engine = create_engine(fresh_database_url, pool_size=1)
    await put_links(engine, ["fuzz-a", "fuzz-b"])
    await engine.dispose()
    with ServedScheduler(fresh_database_url, rabbitmq_url, utc("2026-02-26T10:00")) as s:
        yield s


def fuzzer(operation: Any, mode: GenerationMode, base_url: str) -> Any:
    """A hypothesis test of `operation` with `mode` data, validated by every schemathesis check."""
    headers = {"Authorization": f"Bearer {token(['admin'])}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @FUZZ
    def fuzz(case: Any) -> None:
        case.call_and_validate(base_url=base_url, headers=headers)

    return fuzz


def test_schemathesis_finds_no_undocumented_answer(served):
    api = schemathesis.openapi.from_url(f"{served.base_url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == {
        "GET /api/admin/scheduler/status",
        "POST /api/admin/scheduler/jobs/{job_id}/trigger",
        "GET /api/admin/scheduler/jobs/{job_id}/trigger",
        "GET /api/admin/scheduler/history",
    }
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzzer(operation, mode, served.base_url)()


def test_the_trigger_answers_any_body_as_documented(served):
    with httpx.Client(base_url=served.base_url, timeout=30) as http:
        schema = http.get("/openapi.json").json()
        documented = {
            int(s)
            for s in schema["paths"][TRIGGER.replace(JOB_ID, "{job_id}")]["post"]["responses"]
        }
        headers = {"Authorization": f"Bearer {token(['admin'])}"}

        @given(
            body=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
            content_type=st.sampled_from([None, "application/json", "text/plain"]),
        )
        @example(body=b"\xff\xfe{", content_type="application/json")  # was an undocumented 400
        @example(body=b"[" * 5000, content_type="application/json")
        @example(body=b"{}" * 9000, content_type="application/json")
        @example(body=b'{"user_id": "fuzz-a"}', content_type="text/plain")
        @FUZZ
        def post(body: bytes, content_type: str | None) -> None:
            sent = dict(headers)
            if content_type is not None:
                sent["Content-Type"] = content_type
            response = http.post(TRIGGER, headers=sent, content=body)
            assert response.status_code < 500, response.text
            assert response.status_code in documented, response.text
            assert response.headers["content-type"] == "application/json"

        post()


def test_a_history_page_beyond_any_row_offset_is_a_422(served):
    """Found by the fuzzer: the page number became an OFFSET beyond bigint, a 500."""
    headers = {"Authorization": f"Bearer {token(['admin'])}"}
    with httpx.Client(base_url=served.base_url, timeout=30) as http:
        for page in ("142400873044926640422729", "1000001"):
            response = http.get(
                "/api/admin/scheduler/history", params={"page": page}, headers=headers
            )
            assert response.status_code == 422, response.text
            assert response.json()["details"][0]["field"] == "query.page"
        last = http.get("/api/admin/scheduler/history", params={"page": 1_000_000}, headers=headers)
        assert last.status_code == 200 and last.json()["runs"] == []
