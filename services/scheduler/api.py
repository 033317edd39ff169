"""The scheduler's admin API (port SCHEDULER_PORT): status, history and the manual trigger.

Every route under /api/admin/scheduler needs a JWT for the admin audience (ADMIN_JWT_AUDIENCE)
with `admin` in its `roles` claim (`services.common.auth.current_admin`). Errors have
the common shape `{"status": "error", "code": ..., "message": ...}`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field

from services.common.auth import Verifier, current_admin, install_auth
from services.common.jsonapi import BodyLimit, JsonApiRoute, error_responses
from services.common.web import ReadinessCheck, health_router, install_common
from services.scheduler.admin import UnknownUser
from services.scheduler.config import JOB_ID, RETENTION_JOB_ID
from services.scheduler.job import DailySummaryJob
from services.scheduler.plan import InvalidResend
from shared.contract import UserIdAsText

SERVICE = "scheduler"
PREFIX = "/api/admin/scheduler"
UNAUTHORIZED = "Missing, invalid or expired JWT, or one not issued for admin endpoints"
FORBIDDEN = "The JWT has no `admin` in its `roles`"
MAX_PAGE = 1_000_000
"""History pages beyond this are a 422: the row offset must fit PostgreSQL's bigint."""
NO_SUCH_JOB = f"No such job (`job_not_found`): the scheduler runs `{JOB_ID}`"
TRIGGERED = {
    202: {"description": "Resend recorded; published as soon as the broker accepts it"},
    **error_responses(
        {
            404: NO_SUCH_JOB + ", or the user has no Telegram link (`user_not_found`)",
            422: "Invalid body, query or path: unknown field, bad date, a date without a "
            "user_id, a day the resend cannot be for; `details` says where",
        }
    ),
}


class TriggerRequest(BaseModel):
    """Optional body of the trigger: both empty runs the job; a `user_id` resends one summary."""

    model_config = ConfigDict(extra="forbid")

    user_id: Annotated[str | None, UserIdAsText] = Field(default=None, min_length=1, max_length=128)
    date: dt.date | None = Field(
        default=None, description="The local day to resend (default: the user's last full day)"
    )


def _error(status: int, code: str, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail={"code": code, "message": message})


def _known_job(job_id: str) -> None:
    if job_id != JOB_ID:
        raise _error(404, "job_not_found", f"no job {job_id!r}; the scheduler runs {JOB_ID!r}")


def make_router(job: DailySummaryJob) -> APIRouter:
    """The /api/admin/scheduler routes over `job`."""
    router = APIRouter(
        prefix=PREFIX,
        tags=["scheduler"],
        dependencies=[Depends(current_admin)],
        route_class=JsonApiRoute,
        responses=error_responses({401: UNAUTHORIZED, 403: FORBIDDEN}),
    )

    @router.get("/status")
    async def status() -> dict[str, Any]:
        """The scheduler and its job: next run time, pending triggers, the last runs."""
        return {
            "status": "success",
            "scheduler": {
                "running": job.running,
                "instance": job.config.instance,
                "now": job.clock.now().isoformat(),
                "tick_seconds": job.config.tick.total_seconds(),
                "catch_up_hours": job.config.catch_up.total_seconds() / 3600,
            },
            "jobs": [await job.status()],
        }

    async def trigger(job_id: str, request: TriggerRequest) -> JSONResponse:
        _known_job(job_id)
        if request.user_id is None:
            if request.date is not None:
                raise _error(422, "invalid_request", "a date needs a user_id: resends are per user")
            run = await job.trigger_all()
            body = {
                "status": "success",
                "message": "daily summary job ran",
                "job_id": job_id,
                "job_run": run.as_json(),
            }
            return JSONResponse(body)
        try:
            outcome = await job.resend(request.user_id, request.date)
        except UnknownUser:
            raise _error(404, "user_not_found", "that user has no Telegram link") from None
        except InvalidResend as exc:
            raise _error(422, "invalid_request", str(exc)) from None
        body = {
            "status": "success",
            "message": "summary resent"
            if outcome.published
            else "summary recorded; it will be published when the broker accepts it",
            "job_id": job_id,
            "resend": {
                "user_id": outcome.run.user_id,
                "date": outcome.run.summary_date.isoformat(),
                "timezone": outcome.run.timezone,
                "event_id": str(outcome.run.event_id),
                "published": outcome.published,
            },
            "job_run": outcome.job_run.as_json(),
        }
        return JSONResponse(body, status_code=200 if outcome.published else 202)

    @router.post(
        "/jobs/{job_id}/trigger", responses={**TRIGGERED, **error_responses({}, body=True)}
    )
    async def trigger_post(
        job_id: str, request: Annotated[TriggerRequest | None, Body()] = None
    ) -> JSONResponse:
        """Run the job now, or with `user_id` (and `date`) resend one user's summary."""
        return await trigger(job_id, request or TriggerRequest())

    @router.get("/jobs/{job_id}/trigger", responses=TRIGGERED)
    async def trigger_get(
        job_id: str,
        user_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
        date: dt.date | None = None,
    ) -> JSONResponse:
        """The same as POST, for the spec's `GET /scheduler/jobs/{id}/trigger`."""
        return await trigger(job_id, TriggerRequest(user_id=user_id, date=date))

    @router.get(
        "/history",
        responses=error_responses(
            {404: NO_SUCH_JOB, 422: "`page` or `page_size` out of range; `details` says where"}
        ),
    )
    async def history(
        page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
        page_size: Annotated[int, Query(ge=1, le=200)] = 20,
        job_id: str | None = None,
    ) -> dict[str, Any]:
        """Job runs, newest first, one page at a time."""
        if job_id is not None and job_id != RETENTION_JOB_ID:
            _known_job(job_id)
        runs, total = await job.history(job_id, page, page_size)
        return {
            "status": "success",
            "page": page,
            "page_size": page_size,
            "total": total,
            "runs": [r.as_json() for r in runs],
        }

    return router


def create_app(
    job: DailySummaryJob,
    verifier: Verifier,
    checks: dict[str, ReadinessCheck],
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """The scheduler's HTTP app: admin API, /healthz, /readyz, /metrics. `verifier` verifies
    admin tokens (`make_verifier(settings, admin=True)`)."""
    # Swagger UI and ReDoc served by the service itself: /docs works offline and air-gapped.
    app = FastAPIOffline(
        title="SNS Telegram scheduler",
        version="1.0.0",
        description=(
            f"Admin API of the `{JOB_ID}` job. Every `{PREFIX}` endpoint needs "
            "`Authorization: Bearer <JWT>` with `admin` in its `roles` claim and, when "
            "ADMIN_JWT_AUDIENCE is set (always in production), that audience in `aud`: a token "
            "issued for the frontend (JWT_AUDIENCE) is refused with 401 whatever its roles."
        ),
        lifespan=lifespan,
    )
    # Inside install_common's middleware, so its 413 is raised in the route and answered there.
    app.add_middleware(BodyLimit, prefix="/api/")
    install_common(app, SERVICE)
    install_auth(app, admin=verifier)
    app.include_router(make_router(job))
    app.include_router(health_router(checks))
    return app
