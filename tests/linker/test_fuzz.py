"""The linker's API fuzzed against a served linker: schemathesis over the OpenAPI document
(positive and negative data, every check), and hypothesis over what the schema cannot say
(headers, raw bodies). Never a 5xx, and every answer is one the document lists, in its shape."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import example, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from tests.infra import isolated_vhost
from tests.linker.helpers import BOT_API_KEY, bearer, bot_key
from tests.linker.served import ServedLinker
from tests.served import FUZZ
from tests.support.ids import new_chat_id, new_user

pytestmark = pytest.mark.integration

VERIFY = "/api/telegram/verify-link"
PREFERENCES = "/api/telegram/preferences"
OPERATIONS = {
    "GET /api/telegram/link-account",
    "POST /api/telegram/verify-link",
    "GET /api/telegram/status",
    "POST /api/telegram/send-test-message",
    "POST /api/telegram/unlink-account",
    "GET /api/telegram/preferences",
    "PUT /api/telegram/preferences",
}
NEEDS_A_LINK = {"status", "send-test-message", "unlink-account", "preferences"}
"""Operations fuzzed as a linked user, so their success paths are reached too."""


@pytest.fixture(scope="module")
def served(database_url, servers):
    with isolated_vhost(servers) as rabbitmq_url, ServedLinker(database_url, rabbitmq_url) as s:
        yield s


@pytest.fixture(scope="module")
def http(served):
    with httpx.Client(base_url=served.base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def documented(http) -> dict[tuple[str, str], set[int]]:
    """(method, path) -> the statuses the OpenAPI document lists."""
    schema = http.get("/openapi.json").json()
    return {
        (method.upper(), path): {int(status) for status in operation["responses"]}
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    }


def linked_user(http: httpx.Client) -> str:
    """A new user linked to a new chat through the API, as a trusted bot does it."""
    user = new_user()
    token = http.get("/api/telegram/link-account", headers=bearer(user)).json()["token"]
    response = http.post(VERIFY, headers=bot_key(), json={"token": token, "chat_id": new_chat_id()})
    assert response.status_code == 200, response.text
    return user


def only_unstateable_rules_refused(ctx: Any, response: Any, case: Any) -> bool | None:
    """positive_data_acceptance, except that PUT /preferences may refuse a schema-valid body for
    the two rules JSON Schema cannot state: an unknown time zone, quiet hours with start = end."""
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if positive and response.status_code == 422 and case.operation.path == PREFERENCES:
        fields = {problem["field"] for problem in response.json()["details"]}
        assert fields <= {"body.timezone", "body.quiet_hours"}, response.text
        return None
    return positive_data_acceptance(ctx, response, case)


def fuzzer(operation: Any, mode: GenerationMode, base_url: str, headers: dict[str, str]) -> Any:
    """A hypothesis test of `operation` with `mode` data, validated by every schemathesis check."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @FUZZ
    def fuzz(case: Any) -> None:
        case.call_and_validate(
            base_url=base_url,
            headers=headers,
            excluded_checks=[positive_data_acceptance],
            additional_checks=[only_unstateable_rules_refused],
        )

    return fuzz


def test_schemathesis_finds_no_undocumented_answer(served, http):
    api = schemathesis.openapi.from_url(f"{served.base_url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == OPERATIONS
    for operation in operations:
        needs_link = operation.path.rsplit("/", 1)[-1] in NEEDS_A_LINK
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            # A user of its own per operation and mode: one's unlink or rate limit is not
            # another's; the bot's key and a JWT on every request (verify-link takes both).
            user = linked_user(http) if needs_link else new_user()
            fuzzer(operation, mode, served.base_url, {**bearer(user), **bot_key()})()


# ------------------------------------------------------------ what the schema cannot say
HEADER_TEXT = st.text(
    st.characters(codec="latin-1", exclude_categories=["Cc"]), min_size=1, max_size=300
).map(str.strip)
"""Header values h11 lets through: latin-1 without control characters, trimmed."""


def assert_documented(response: httpx.Response, method: str, path: str, documented) -> None:
    assert response.status_code < 500, response.text
    assert response.status_code in documented[(method, path)], response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    if response.status_code >= 400:
        assert body["status"] == "error" and isinstance(body["code"], str), body


@given(key=HEADER_TEXT)
@example(key="é" * 40)  # not ASCII: hmac.compare_digest on str would raise (a 500)
@example(key=BOT_API_KEY.upper())
@FUZZ
def test_no_bot_key_but_the_right_one_opens_verify_link(http, documented, key):
    user = new_user()
    token = http.get("/api/telegram/link-account", headers=bearer(user)).json()["token"]
    headers = {"X-Bot-Api-Key": key.encode("latin-1")}
    response = http.post(VERIFY, headers=headers, json={"token": token, "chat_id": new_chat_id()})
    assert_documented(response, "POST", VERIFY, documented)
    expected = 200 if key == BOT_API_KEY else 401 if not key else 403
    assert response.status_code == expected, response.text
    if expected != 200:
        assert key not in response.text or len(key) < 8


@given(authorization=HEADER_TEXT)
@example(authorization="Bearer")
@example(authorization="Bearer " + "a" * 300)
@example(authorization="bearer x.y.z")
@FUZZ
def test_a_jwt_sent_to_verify_link_must_verify(http, documented, authorization):
    headers = {**bot_key(), "Authorization": authorization.encode("latin-1")}
    response = http.post(VERIFY, headers=headers, json={"token": "x" * 43, "chat_id": 42})
    assert_documented(response, "POST", VERIFY, documented)
    expected = (404, "token_not_found") if not authorization else (401, "unauthorized")
    assert (response.status_code, response.json()["code"]) == expected


CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/json",
        "application/json; charset=utf-8",
        "application/vnd.api+json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
    ]
)
BODIES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=20,
    ).map(lambda value: httpx.Request("POST", "/", json=value).content),
)


def body_problem(body: bytes, content_type: str | None) -> int | None:
    """The status a body must get whatever else is wrong with the request, if any."""
    if len(body) > 16 * 1024:
        return 413
    if not body:
        return None
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return 415
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return 400
    return None


@given(
    method_path=st.sampled_from([("POST", VERIFY), ("PUT", PREFERENCES)]),
    body=BODIES,
    content_type=CONTENT_TYPES,
)
@example(method_path=("PUT", PREFERENCES), body=b"\xff\xfe{", content_type="application/json")
@example(method_path=("PUT", PREFERENCES), body=b"[" * 5000, content_type="application/json")
@example(method_path=("POST", VERIFY), body=b"{}" * 9000, content_type="application/json")
@example(method_path=("PUT", PREFERENCES), body=b'{"language": "en"}', content_type="text/plain")
@FUZZ
def test_any_body_gets_a_documented_answer(http, documented, method_path, body, content_type):
    """The first example is the fuzzer's finding: a body that is not UTF-8 was an undocumented
    400 from PUT /preferences. Then: nesting deeper than JSON parsing goes, over 16 KiB, JSON
    sent as text."""
    method, path = method_path
    headers = {**bearer(new_user()), **bot_key()}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = http.request(method, path, headers=headers, content=body)
    assert_documented(response, method, path, documented)
    expected = body_problem(body, content_type)
    if expected is not None:
        assert response.status_code == expected, response.text
