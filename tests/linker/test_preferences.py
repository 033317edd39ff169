"""GET/PUT /api/telegram/preferences: shape, partial updates, validation, and the scheduler."""

from datetime import UTC, datetime, time

import pytest
from sqlalchemy import text

from shared.db import session_scope
from shared.models import TelegramLink
from tests.linker.helpers import DEFAULT_PREFERENCES, bearer
from tests.scheduler.harness import make_settings, start_replica
from tests.support.ids import new_chat_id, new_user

pytestmark = pytest.mark.integration

PREFERENCES = "/api/telegram/preferences"
DEFAULTS = DEFAULT_PREFERENCES


async def put(linker, user, body):
    return await linker.client.put(PREFERENCES, headers=bearer(user), json=body)


async def test_a_new_link_has_the_default_preferences(linker):
    user = new_user()
    await linker.link(user, new_chat_id())
    assert await linker.preferences(user) == DEFAULTS


async def test_put_changes_only_the_given_fields_and_returns_them_all(linker, sessions):
    user = new_user()
    await linker.link(user, new_chat_id())

    response = await put(
        linker,
        user,
        {
            "muted_types": ["daily_summary", "post_success", "post_success"],
            "quiet_hours": {"start": "22:00", "end": "07:00"},
        },
    )
    assert response.status_code == 200, response.text
    expected = DEFAULTS | {
        "muted_types": ["post_success", "daily_summary"],
        "quiet_hours": {"start": "22:00", "end": "07:00"},
    }
    assert response.json() == expected

    response = await put(
        linker, user, {"language": "en", "timezone": "Asia/Seoul", "summary_time": "08:30"}
    )
    expected |= {"language": "en", "timezone": "Asia/Seoul", "summary_time": "08:30"}
    assert response.json() == expected
    assert await linker.preferences(user) == expected

    async with session_scope(sessions) as session:
        row = await session.get(TelegramLink, user)
    assert row is not None
    assert (row.quiet_start, row.quiet_end, row.summary_time) == (time(22), time(7), time(8, 30))
    assert (row.timezone, row.language) == ("Asia/Seoul", "en")

    response = await put(linker, user, {"quiet_hours": None, "muted_types": []})
    assert response.json() == expected | {"quiet_hours": None, "muted_types": []}
    assert (await put(linker, user, {})).json() == await linker.preferences(user)


async def test_silent_types_and_the_quiet_hours_mode(linker):
    """Per type: loud, silent (`silent_types`) or muted (`muted_types`, which wins); quiet
    hours hold messages or deliver them silently."""
    user = new_user()
    await linker.link(user, new_chat_id())
    body = {"silent_types": ["post_failure", "post_success"], "quiet_hours_mode": "silent"}
    response = await put(linker, user, body)
    assert response.status_code == 200, response.text
    expected = DEFAULTS | {
        "silent_types": ["post_success", "post_failure"],
        "quiet_hours_mode": "silent",
    }
    assert response.json() == expected
    assert (await put(linker, user, {"silent_types": []})).json() == expected | {"silent_types": []}
    assert (await put(linker, user, {"quiet_hours_mode": "hold"})).json()["quiet_hours_mode"] == (
        "hold"
    )
    assert (await put(linker, user, {"link_previews": False})).json()["link_previews"] is False


async def test_post_images_are_stored_for_the_notifier_and_kept(linker, sessions):
    """`post_images: false` lands in the column the notifier reads; other changes and a new
    link keep it; `true` turns images back on."""
    user = new_user()
    await linker.link(user, new_chat_id())
    response = await put(linker, user, {"post_images": False})
    assert response.status_code == 200, response.text
    assert response.json() == DEFAULTS | {"post_images": False}
    async with session_scope(sessions) as session:
        row = await session.get(TelegramLink, user)
    assert row is not None and row.post_images is False

    assert (await put(linker, user, {"language": "en"})).json()["post_images"] is False
    await linker.link(user, new_chat_id())
    assert (await linker.preferences(user))["post_images"] is False
    assert (await put(linker, user, {"post_images": True})).json()["post_images"] is True
    assert (await linker.preferences(user))["post_images"] is True


async def test_preferences_survive_a_new_link(linker):
    user = new_user()
    await linker.link(user, new_chat_id())
    await put(linker, user, {"muted_types": ["post_success"]})
    await linker.link(user, new_chat_id())
    assert (await linker.preferences(user))["muted_types"] == ["post_success"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"muted_types": ["post_success", "telegram.linked"]}, "body.muted_types.1"),
        ({"muted_types": "post_success"}, "body.muted_types"),
        ({"muted_types": None}, "body"),
        ({"timezone": "Mars/Olympus_Mons"}, "body.timezone"),
        ({"timezone": "+09:00"}, "body.timezone"),
        ({"summary_time": "9:00"}, "body.summary_time"),
        ({"summary_time": "24:00"}, "body.summary_time"),
        ({"quiet_hours": {"start": "22:00", "end": "22:00"}}, "body.quiet_hours"),
        ({"quiet_hours": {"start": "22:00"}}, "body.quiet_hours.end"),
        ({"language": "fr"}, "body.language"),
        ({"mutedTypes": ["post_success"]}, "body.mutedTypes"),
        ({"silent_types": ["telegram.linked"]}, "body.silent_types.0"),
        ({"silent_types": None}, "body"),
        ({"quiet_hours_mode": "fold"}, "body.quiet_hours_mode"),
        ({"quiet_hours_mode": None}, "body"),
        ({"link_previews": "no"}, "body.link_previews"),
        ({"link_previews": 0}, "body.link_previews"),
        ({"link_previews": None}, "body"),
        ({"post_images": "false"}, "body.post_images"),
        ({"post_images": 1}, "body.post_images"),
        ({"post_images": None}, "body"),
        ({"postImages": False}, "body.postImages"),
        ([], "body"),
    ],
)
async def test_invalid_bodies_are_422_naming_the_field(linker, body, field):
    user = new_user()
    await linker.link(user, new_chat_id())
    response = await put(linker, user, body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert (error["status"], error["code"]) == ("error", "invalid_request")
    assert field in [problem["field"] for problem in error["details"]]
    assert await linker.preferences(user) == DEFAULTS


async def test_a_user_without_a_link_gets_404(linker):
    user = new_user()
    expected = {
        "status": "error",
        "code": "not_linked",
        "message": "Telegram account not linked. Use /link-account endpoint to connect.",
    }
    for response in (
        await linker.client.get(PREFERENCES, headers=bearer(user)),
        await put(linker, user, {"language": "en"}),
    ):
        assert response.status_code == 404
        assert response.json() == expected
    # Unlinked again: 404 as well.
    await linker.link(user, new_chat_id())
    await linker.client.post("/api/telegram/unlink-account", headers=bearer(user))
    assert (await put(linker, user, {"language": "en"})).status_code == 404


async def test_a_missing_jwt_is_401(linker):
    response = await linker.client.put(PREFERENCES, json={"language": "en"})
    assert (response.status_code, response.json()["code"]) == (401, "unauthorized")


async def test_openapi_documents_the_preferences(linker):
    schema = (await linker.client.get("/openapi.json")).json()
    operations = schema["paths"][PREFERENCES]
    assert operations["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PreferencesBody"
    }
    put_errors = operations["put"]["responses"]["422"]["content"]["application/json"]
    assert put_errors["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    components = schema["components"]["schemas"]
    body = components["PreferencesBody"]
    assert set(body["properties"]) == set(DEFAULTS)
    assert body["examples"][0]["timezone"] == "Asia/Seoul"
    update = components["PreferencesUpdate"]
    assert update["additionalProperties"] is False
    assert update["properties"]["muted_types"]["items"]["enum"] == [
        "post_success",
        "post_failure",
        "automation_executed",
        "daily_summary",
    ]
    assert "HTTPValidationError" not in components


async def test_the_scheduler_follows_changed_time_zone_summary_time_and_mute(
    start_linker, fresh_database_url, rabbitmq_url
):
    """The scheduler reconciles `summary_schedules` with `telegram_links` on every tick (a
    change moves the next trigger that has not gone out today; see the scheduler's README)."""
    linker = await start_linker(own_database_url=fresh_database_url)
    user = new_user()
    await linker.link(user, new_chat_id())
    now = datetime(2026, 2, 26, 10, 0, tzinfo=UTC)  # today's 09:00 UTC summary is past
    replica = await start_replica(make_settings(fresh_database_url, rabbitmq_url), now)
    try:

        async def schedule():
            async with replica.engine.connect() as conn:
                result = await conn.execute(
                    text(
                        "SELECT timezone, summary_time, due_at FROM summary_schedules"
                        " WHERE user_id = :user"
                    ),
                    {"user": user},
                )
                return result.one_or_none()

        await replica.job.sync(now)
        assert await schedule() == ("UTC", time(9), datetime(2026, 2, 27, 9, tzinfo=UTC))

        await put(linker, user, {"timezone": "Asia/Seoul", "summary_time": "20:00"})
        await replica.job.sync(now)
        # 20:00 in Seoul (UTC+9) is 11:00 UTC.
        assert await schedule() == ("Asia/Seoul", time(20), datetime(2026, 2, 27, 11, tzinfo=UTC))

        await put(linker, user, {"muted_types": ["daily_summary"]})
        await replica.job.sync(now)
        assert await schedule() is None

        await put(linker, user, {"muted_types": []})
        await replica.job.sync(now)
        assert await schedule() is not None
    finally:
        await replica.close()
