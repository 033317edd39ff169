"""The admin API in-process over real PostgreSQL and RabbitMQ: auth, status, trigger, resend,
history, health."""

from __future__ import annotations

from datetime import date, time

import httpx
import pytest

from services.scheduler.config import JOB_ID, JOB_NAME
from services.scheduler.main import build_app
from shared.contract import daily_summary_event_id
from tests.scheduler.harness import put_link, put_links, rows, token, utc

pytestmark = pytest.mark.integration

STATUS = "/api/admin/scheduler/status"
TRIGGER = f"/api/admin/scheduler/jobs/{JOB_ID}/trigger"
HISTORY = "/api/admin/scheduler/history"


@pytest.fixture
async def admin(env):
    """A replica at 2026-02-26 10:00 UTC and an HTTP client on its app with an admin token."""
    replica = await env.replica(utc("2026-02-26T10:00"))
    app = build_app(env.settings, replica.job, replica.engine, replica.publisher)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://scheduler",
        headers={"Authorization": f"Bearer {token(['admin'])}"},
    ) as client:
        client.replica = replica  # type: ignore[attr-defined]
        yield client


@pytest.mark.parametrize("method,path", [("GET", STATUS), ("POST", TRIGGER), ("GET", HISTORY)])
async def test_every_admin_route_needs_an_admin_token(admin, method, path):
    no_token = await admin.request(method, path, headers={"Authorization": ""})
    assert no_token.status_code == 401
    assert no_token.json()["status"] == "error" and no_token.json()["code"] == "unauthorized"

    user = await admin.request(method, path, headers={"Authorization": f"Bearer {token(['user'])}"})
    assert user.status_code == 403 and user.json()["code"] == "forbidden"

    expired = await admin.request(
        method, path, headers={"Authorization": f"Bearer {token(['admin'], expires_in=-120)}"}
    )
    assert expired.status_code == 401

    forged = token(["admin"])[:-4] + "AAAA"
    bad = await admin.request(method, path, headers={"Authorization": f"Bearer {forged}"})
    assert bad.status_code == 401


async def test_status_shows_the_job_its_next_run_and_last_runs(env, admin):
    await put_link(env.engine, "tokyo", timezone="Asia/Tokyo")
    await admin.replica.job.tick()  # schedules: next 09:00 Tokyo = 00:00 UTC on the 27th

    response = await admin.get(STATUS)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success"
    (job,) = body["jobs"]
    assert (job["id"], job["name"]) == (JOB_ID, JOB_NAME)
    assert job["next_run_time"] == "2026-02-27T00:00:00+00:00"
    assert job["scheduled_users"] == 1
    assert job["unpublished_triggers"] == 0
    assert job["last_runs"] == []

    admin.replica.clock.set(utc("2026-02-27T00:00"))
    await admin.replica.job.tick()
    await env.observer.take(1)
    (job,) = (await admin.get(STATUS)).json()["jobs"]
    (last,) = job["last_runs"]
    assert (last["trigger"], last["emitted"], last["failed"]) == ("schedule", 1, 0)


async def test_manual_trigger_runs_the_job_now_once(env, admin):
    await put_links(env.engine, ["a", "b"])
    await put_link(env.engine, "kolkata", timezone="Asia/Kolkata", summary_time=time(23))
    await put_link(env.engine, "off", enabled=False)
    await admin.replica.job.tick()  # today's 09:00 UTC has passed: the schedule waits for tomorrow

    response = await admin.post(TRIGGER)
    assert response.status_code == 200, response.text
    run = response.json()["job_run"]
    assert (run["trigger"], run["emitted"], run["failed"]) == ("manual", 3, 0)
    assert run["details"]["users"] == 3
    triggers = await env.observer.take(3)
    # Each user's last complete local day (10:00 UTC is 15:30 in Kolkata: still the 26th there).
    assert {(t.event.user_id, t.data.date) for t in triggers} == {
        ("a", date(2026, 2, 25)),
        ("b", date(2026, 2, 25)),
        ("kolkata", date(2026, 2, 25)),
    }
    assert all(
        t.event.event_id == daily_summary_event_id(t.event.user_id, t.data.date) for t in triggers
    )

    # Again: everyone already has that day's summary; the GET form of the spec works too.
    again = await admin.get(TRIGGER)
    assert again.status_code == 200
    assert again.json()["job_run"]["emitted"] == 0
    assert again.json()["job_run"]["details"]["already_recorded"] == 3
    assert await env.observer.take(0) == []

    # Kolkata's scheduled summary of the 25th (due 23:00 local on the 26th) is not emitted twice,
    # and the next day runs as usual.
    admin.replica.clock.set(utc("2026-02-26T17:30"))
    run = await admin.replica.job.tick()
    assert run is not None and run.emitted == 0 and run.details["already_recorded"] == 1
    assert await env.observer.take(0) == []
    admin.replica.clock.set(utc("2026-02-27T09:00"))
    assert (await admin.replica.job.tick()).emitted == 2
    assert {t.data.date for t in await env.observer.take(2)} == {date(2026, 2, 26)}


async def test_resend_publishes_a_fresh_event_marked_as_a_resend(env, admin):
    await put_link(env.engine, "123", timezone="Asia/Kathmandu")
    await admin.replica.job.tick()
    admin.replica.clock.set(utc("2026-02-27T03:15"))
    await admin.replica.job.tick()
    (scheduled,) = await env.observer.take(1)

    response = await admin.post(TRIGGER, json={"user_id": 123, "date": "2026-02-26"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resend"]["published"] is True
    (resent,) = await env.observer.take(1)
    assert resent.data.resend is True
    assert resent.data.date == date(2026, 2, 26)
    assert resent.data.timezone == "Asia/Kathmandu"
    assert resent.event.event_id != scheduled.event.event_id
    assert str(resent.event.event_id) == body["resend"]["event_id"]
    assert body["job_run"]["trigger"] == "resend"

    # A second deliberate resend is another fresh event.
    second = await admin.get(TRIGGER, params={"user_id": "123", "date": "2026-02-26"})
    assert second.status_code == 200
    (again,) = await env.observer.take(1)
    assert again.event.event_id not in {resent.event.event_id, scheduled.event.event_id}

    recorded = await rows(
        env.engine, "SELECT kind, summary_date, published_at IS NOT NULL FROM summary_runs"
    )
    assert sorted(recorded) == [
        ("resend", date(2026, 2, 26), True),
        ("scheduled", date(2026, 2, 26), True),
    ]
    triggers = [r[0] for r in await rows(env.engine, "SELECT trigger FROM job_runs ORDER BY id")]
    assert triggers == ["schedule", "resend", "resend"]


async def test_resend_defaults_to_the_users_last_complete_day(env, admin):
    await put_link(env.engine, "u", timezone="Asia/Tokyo")  # 19:00 on the 26th in Tokyo
    response = await admin.post(TRIGGER, json={"user_id": "u"})
    assert response.status_code == 200
    (trigger,) = await env.observer.take(1)
    assert trigger.data.date == date(2026, 2, 25) and trigger.data.resend


@pytest.mark.parametrize(
    ("path", "payload", "status", "code"),
    [
        ("/api/admin/scheduler/jobs/nope/trigger", None, 404, "job_not_found"),
        (TRIGGER, {"user_id": "nobody"}, 404, "user_not_found"),
        (TRIGGER, {"date": "2026-02-25"}, 422, "invalid_request"),
        (TRIGGER, {"user_id": "u", "date": "2026-03-30"}, 422, "invalid_request"),
        (TRIGGER, {"user_id": "u", "date": "yesterday"}, 422, "invalid_request"),
        (TRIGGER, {"user_id": "u", "extra": 1}, 422, "invalid_request"),
    ],
)
async def test_trigger_errors_are_json(env, admin, path, payload, status, code):
    await put_link(env.engine, "u")
    response = await admin.post(path, json=payload)
    assert response.status_code == status
    body = response.json()
    assert body["status"] == "error" and body["code"] == code and body["message"]
    assert await env.observer.take(0) == []


async def test_history_pages_through_job_runs(env, admin):
    await put_link(env.engine, "u")
    for _ in range(5):
        assert (await admin.post(TRIGGER, json={"user_id": "u"})).status_code == 200
    await env.observer.take(5)

    first = (await admin.get(HISTORY, params={"page_size": 2})).json()
    assert first["total"] == 5 and first["page"] == 1 and len(first["runs"]) == 2
    last = (await admin.get(HISTORY, params={"page": 3, "page_size": 2})).json()
    assert len(last["runs"]) == 1
    ids = [r["id"] for r in first["runs"]] + [r["id"] for r in last["runs"]]
    assert ids == sorted(ids, reverse=True)
    assert all(r["emitted"] == 1 and r["failed"] == 0 for r in first["runs"])
    assert (await admin.get(HISTORY, params={"job_id": "nope"})).status_code == 404
    assert (await admin.get(HISTORY, params={"page": 0})).status_code == 422


async def test_health_and_metrics_need_no_token(admin):
    assert (await admin.get("/healthz", headers={"Authorization": ""})).json() == {"status": "ok"}
    ready = await admin.get("/readyz", headers={"Authorization": ""})
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
    metrics = (await admin.get("/metrics")).text
    assert "scheduler_triggers_emitted_total" in metrics
    assert "scheduler_unpublished_triggers" in metrics


async def test_readyz_reports_a_broker_that_is_not_connected(env):
    replica = await env.replica(utc("2026-02-26T10:00"), connect=False)
    app = build_app(env.settings, replica.job, replica.engine, replica.publisher)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://scheduler"
    ) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "ok"
    assert response.json()["checks"]["broker"].startswith("error")
