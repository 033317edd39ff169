"""The linker's API fuzzed against a served linker: schemathesis over the OpenAPI document
(positive and negative data, every check), and hypothesis over what the schema cannot say
(headers, raw bodies). Never a 5xx, and every answer is one the document lists, in its shape."""

from __future__ import annotations

import base64
import json
import urllib.parse
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import example, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from services.common.delivery_log import InvalidCursor, decode_cursor, encode_cursor
from services.linker.preferences import MAX_THREAD_ID, MUTABLE_TYPES
from tests.infra import isolated_vhost
from tests.linker.helpers import BOT_API_KEY, bearer, bot_key
from tests.linker.served import ServedLinker
from tests.served import FUZZ
from tests.support.ids import new_chat_id, new_user

pytestmark = pytest.mark.integration

VERIFY = "/api/telegram/verify-link"
PREFERENCES = "/api/telegram/preferences"
NOTIFICATIONS = "/api/telegram/notifications"
TRACE = "/api/admin/telegram/events/{event_id}/trace"
OPERATIONS = {
    "GET /api/telegram/link-account",
    "POST /api/telegram/verify-link",
    "GET /api/telegram/status",
    "POST /api/telegram/send-test-message",
    "POST /api/telegram/unlink-account",
    "GET /api/telegram/preferences",
    "PUT /api/telegram/preferences",
    "GET /api/telegram/notifications",
    "GET /api/admin/telegram/events/{event_id}/trace",
    "GET /api/admin/telegram/users/{user_id}/events",
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
    """positive_data_acceptance, except for the rules JSON Schema cannot state: PUT /preferences
    may refuse an unknown time zone or quiet hours with start = end; the delivery log a cursor
    it did not return; an admin endpoint an event nothing is recorded about."""
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if positive and response.status_code == 422 and case.operation.path == PREFERENCES:
        fields = {problem["field"] for problem in response.json()["details"]}
        assert fields <= {"body.timezone", "body.quiet_hours"} | past_max_thread(case), (
            response.text
        )
        return None
    unstateable = {
        (NOTIFICATIONS, 400): "invalid_cursor",
        (TRACE, 404): "event_not_found",
    }.get((case.operation.path, response.status_code))
    if positive and unstateable is not None:
        assert response.json()["code"] == unstateable, response.text
        return None
    return positive_data_acceptance(ctx, response, case)


def past_max_thread(case: Any) -> set[str]:
    """`{"body.message_thread_id"}` when the "positive" body's topic id is past the documented
    maximum: schemathesis reads the maximum 2^63-1 through a float and may send
    9223372036854776000, past it, so the refusal is right (the bounds: test_topics.py)."""
    thread = case.body.get("message_thread_id") if isinstance(case.body, dict) else None
    if isinstance(thread, int | float) and not 1 <= thread <= MAX_THREAD_ID:
        return {"body.message_thread_id"}
    return set()


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
            # The admin endpoints as an admin (a user token's 401/403 are tested elsewhere).
            roles = ["admin"] if operation.path.startswith("/api/admin/") else []
            fuzzer(operation, mode, served.base_url, {**bearer(user, roles=roles), **bot_key()})()


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


def encode_cursor_any(value: int) -> str:
    """A cursor for any integer, even ones no delivery can have (decoding must refuse those)."""
    return base64.urlsafe_b64encode(f"d1:{value}".encode()).decode().rstrip("=")


QUERY_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
LOG_PARAMS = st.dictionaries(
    st.sampled_from(["limit", "cursor", "type", "status", "before", "Limit"]) | QUERY_TEXT,
    st.lists(
        QUERY_TEXT
        | st.integers(-(2**70), 2**70).map(str)
        | st.sampled_from(["post_success", "daily_summary", "sent", "dead_lettered", "held"])
        | st.integers(-5, 2**64).map(encode_cursor_any),
        min_size=1,
        max_size=3,
    ),
    max_size=4,
)


@given(params=LOG_PARAMS)
@example(params={"cursor": ["ZDE6MA"]})  # "d1:0": no delivery has id 0
@example(params={"cursor": [encode_cursor(2**63)]})  # past bigint
@example(params={"cursor": ["ZDE6MTIz=="]})  # padded
@example(params={"limit": ["0"], "status": ["sending", "bogus"]})
@example(params={"typ": ["post_success"]})  # a misspelt filter is refused, not ignored
@FUZZ
def test_any_query_of_the_delivery_log_gets_a_documented_answer(http, documented, params):
    """Whatever the query: a page (200), a bad cursor (400 `invalid_cursor`) or a bad filter
    (422 `invalid_request` naming it); never a 5xx. A valid page lists only the caller's items."""
    user = new_user()
    response = http.get(NOTIFICATIONS, headers=bearer(user), params=params)
    assert_documented(response, "GET", NOTIFICATIONS, documented)
    body = response.json()
    if response.status_code == 200:
        assert body["notifications"] == [] and body["next_cursor"] is None  # a new user's log
    elif response.status_code == 400:
        assert body["code"] == "invalid_cursor", body
    else:
        assert (response.status_code, body["code"]) == (422, "invalid_request"), body
        assert body["details"], body


@given(text=st.text(max_size=80) | st.integers(1, 2**63 - 1).map(encode_cursor))
@example(text="ZDE6MDAwMDAwMDAwMDAwMDAwMDAwMDAx")  # 20 digits
@example(text="ZDE6MR")  # "d1:1" with other trailing bits: not the cursor of 1
@example(text="ZDE6M!Q")  # a character base64 would skip
@FUZZ
def test_a_cursor_decodes_to_a_delivery_id_or_is_refused(text):
    try:
        decoded = decode_cursor(text)
    except InvalidCursor:
        return
    assert 0 < decoded < 2**63 and encode_cursor(decoded) == text


@given(user=st.text(max_size=140))
@example(user="a\x00b")  # PostgreSQL refuses NUL in text: no such user, not a 500
@example(user="\ud800")
@FUZZ
def test_any_user_id_of_the_admin_user_events_gets_a_documented_answer(http, documented, user):
    path = "/api/admin/telegram/users/{user_id}/events"
    quoted = urllib.parse.quote(user.encode("utf-8", "surrogatepass"), safe="")
    response = http.get(path.format(user_id=quoted), headers=bearer("support", roles=["admin"]))
    if response.status_code == 404:  # an empty or slash-only id matches no route
        assert response.json()["code"] == "not_found"
        return
    assert_documented(response, "GET", path, documented)
    if response.status_code == 200:
        assert response.json()["events"] == []


# ------------------------------------------------------------ delivery options' fields
TYPE_NAMES = st.sampled_from([*MUTABLE_TYPES, "telegram.linked", "POST_SUCCESS", ""])
JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=10), st.lists(TYPE_NAMES, max_size=6)
)


@pytest.fixture(scope="module")
def options_user(http) -> str:
    return linked_user(http)


@given(
    silent=st.one_of(st.lists(TYPE_NAMES, max_size=6), JSON_VALUES),
    mode=st.one_of(st.sampled_from(["hold", "silent", "Hold", "fold"]), JSON_VALUES),
    previews=JSON_VALUES,
    images=JSON_VALUES,
)
@example(silent=["post_success", "post_success"], mode="silent", previews=False, images=False)
@example(silent=[], mode="hold", previews=1, images=True)
@example(silent=[], mode="hold", previews=True, images=0)
@example(silent=[], mode="hold", previews=True, images="false")
@FUZZ
def test_delivery_options_are_validated(
    http, documented, options_user, silent, mode, previews, images
):
    """Any value of the delivery options' fields: a 200 showing exactly what was valid, or a
    422 naming a field at fault; never a 5xx."""
    body = {
        "silent_types": silent,
        "quiet_hours_mode": mode,
        "link_previews": previews,
        "post_images": images,
    }
    response = http.put(PREFERENCES, headers=bearer(options_user), json=body)
    assert_documented(response, "PUT", PREFERENCES, documented)
    valid_types = isinstance(silent, list) and all(t in MUTABLE_TYPES for t in silent)
    valid_mode = mode in ("hold", "silent")
    valid_previews = isinstance(previews, bool)
    valid_images = isinstance(images, bool)
    if valid_types and valid_mode and valid_previews and valid_images:
        assert response.status_code == 200, response.text
        shown = response.json()
        assert shown["silent_types"] == [t for t in MUTABLE_TYPES if t in silent]
        assert shown["quiet_hours_mode"] == mode
        assert shown["link_previews"] is previews
        assert shown["post_images"] is images
    else:
        assert response.status_code == 422, response.text
        details = response.json()["details"]
        fields = {p["field"].removeprefix("body.").split(".")[0] for p in details}
        expected = {"silent_types"} if not valid_types else set()
        expected |= {"quiet_hours_mode"} if not valid_mode else set()
        expected |= {"link_previews"} if not valid_previews else set()
        expected |= {"post_images"} if not valid_images else set()
        assert fields <= expected | {"body"}, response.text
