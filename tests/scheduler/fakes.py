"""In-memory fakes of the daily summary job's ports (`services/scheduler/ports.py`), for unit
tests of `DailySummaryJob` without PostgreSQL or RabbitMQ. The clock is the scheduler's own
`FixedClock`.

`FakeStore` keeps the rules the SQL keeps: a (user, day, kind) is recorded once, a row one
transaction claimed is skipped by the others until it ends (`SKIP LOCKED`), one replica at a
time reconciles, a transaction that raises leaves nothing behind. Each statement yields to the
event loop, as a round trip would, so the job's lanes interleave. `FakePublisher` keeps what it
was asked to publish and can refuse or be unreachable. What only PostgreSQL and RabbitMQ show
(real concurrency, the statements themselves) stays with the real-server tests.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, time
from typing import Any

from services.scheduler.plan import DueRow, LinkSettings, NewRun, PendingRun, ScheduleEntry, SyncRow
from services.scheduler.ports import JobRunRecord, RunOutcome
from shared.contract import Event
from shared.publisher import PublishError

_MISSING = object()


@dataclass
class FakeLink:
    """A `telegram_links` row as the scheduler reads it (the linker writes it)."""

    user_id: str
    timezone: str = "UTC"
    summary_time: time = time(9)
    enabled: bool = True
    chat: bool = True
    muted: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        """Wants the daily summary: enabled, with a chat, `daily_summary` not muted."""
        return self.enabled and self.chat and "daily_summary" not in self.muted

    @property
    def settings(self) -> LinkSettings:
        return LinkSettings(self.user_id, self.timezone, self.summary_time)


@dataclass
class SummaryRun:
    """A `summary_runs` row: the columns a claim reads (`pending`), then its bookkeeping."""

    pending: PendingRun
    created_at: datetime
    job_run_id: int | None
    attempts: int = 0
    published_at: datetime | None = None
    last_error: str | None = None


@dataclass
class FakeStore:
    """`SchedulerStore` in dictionaries; `fail[statement]` is raised by that statement."""

    links: dict[str, FakeLink] = field(default_factory=dict)
    schedules: dict[str, ScheduleEntry] = field(default_factory=dict)
    runs: dict[int, SummaryRun] = field(default_factory=dict)
    job_runs: dict[int, JobRunRecord] = field(default_factory=dict)
    sync_held_elsewhere: bool = False
    """Another replica holds the sync lock."""
    fail: dict[str, BaseException] = field(default_factory=dict)
    transactions: int = 0
    locks: dict[tuple[str, Any], FakeTx] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def link(self, user_id: str, **settings: Any) -> FakeLink:
        """Add or replace a link (as the linker would)."""
        self.links[user_id] = FakeLink(user_id, **settings)
        return self.links[user_id]

    def runs_of(self, user_id: str) -> list[SummaryRun]:
        return sorted(
            (r for r in self.runs.values() if r.pending.user_id == user_id),
            key=lambda r: r.pending.id,
        )

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[FakeTx]:
        self.transactions += 1
        tx = FakeTx(self)
        try:
            yield tx
        except BaseException:
            tx.roll_back()
            raise
        finally:
            for key in [k for k, holder in self.locks.items() if holder is tx]:
                del self.locks[key]


class FakeTx:
    """`SchedulerTx`: each statement as the PostgreSQL store's, with an undo log."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self._undo: list[Callable[[], None]] = []

    # -- the transaction ---------------------------------------------------------------------
    async def _statement(self, name: str) -> None:
        await asyncio.sleep(0)  # a round trip: other lanes run meanwhile
        if name in self.store.fail:
            raise self.store.fail[name]

    def _keep(self, table: dict[Any, Any], key: Any) -> None:
        """Remember `table[key]` as it is, to restore it if the transaction rolls back."""
        current = table.get(key, _MISSING)
        before = current if current is _MISSING else copy.deepcopy(current)

        def undo() -> None:
            if before is _MISSING:
                table.pop(key, None)
            else:
                table[key] = before

        self._undo.append(undo)

    def roll_back(self) -> None:
        for undo in reversed(self._undo):
            undo()

    def _lock(self, key: tuple[str, Any]) -> bool:
        """Lock a row for this transaction; False if another one holds it (SKIP LOCKED)."""
        holder = self.store.locks.setdefault(key, self)
        return holder is self

    # -- reconciling the schedule with the links ---------------------------------------------
    async def try_lock_sync(self) -> bool:
        await self._statement("try_lock_sync")
        return not self.store.sync_held_elsewhere and self._lock(("sync", None))

    async def differences(self) -> list[SyncRow]:
        await self._statement("differences")
        active = {u: link.settings for u, link in self.store.links.items() if link.active}
        out = []
        for user in sorted(active.keys() | self.store.schedules.keys()):
            link, schedule = active.get(user), self.store.schedules.get(user)
            if (
                link is None
                or schedule is None
                or (link.timezone, link.summary_time) != (schedule.timezone, schedule.summary_time)
            ):
                out.append(SyncRow(link, schedule))
        return out

    async def add_schedules(self, entries: Sequence[ScheduleEntry], now: datetime) -> None:
        await self._statement("add_schedules")
        for entry in entries:
            if entry.user_id not in self.store.schedules:
                self._keep(self.store.schedules, entry.user_id)
                self.store.schedules[entry.user_id] = entry

    async def reschedule(
        self, changes: Sequence[tuple[ScheduleEntry, ScheduleEntry]], now: datetime
    ) -> None:
        await self._statement("reschedule")
        for seen, new in changes:
            current = self.store.schedules.get(new.user_id)
            if current is not None and current.due_at == seen.due_at:
                self._keep(self.store.schedules, new.user_id)
                self.store.schedules[new.user_id] = new

    async def remove_schedules(self, user_ids: Sequence[str]) -> None:
        await self._statement("remove_schedules")
        for user in user_ids:
            self._keep(self.store.schedules, user)
            self.store.schedules.pop(user, None)

    # -- firing due schedules ----------------------------------------------------------------
    async def claim_due(self, now: datetime, limit: int) -> list[DueRow]:
        await self._statement("claim_due")
        due = sorted(
            (e for e in self.store.schedules.values() if e.due_at <= now), key=lambda e: e.due_at
        )
        claimed = [e for e in due if self._lock(("schedule", e.user_id))][:limit]
        rows = []
        for entry in claimed:
            link = self.store.links.get(entry.user_id)
            rows.append(DueRow(entry, link.settings if link is not None and link.active else None))
        return rows

    async def advance(self, entries: Sequence[ScheduleEntry], now: datetime) -> None:
        await self._statement("advance")
        for entry in entries:
            if entry.user_id in self.store.schedules:
                self._keep(self.store.schedules, entry.user_id)
                self.store.schedules[entry.user_id] = entry

    async def record_scheduled(
        self, runs: Sequence[NewRun], job_run_id: int | None, now: datetime
    ) -> int:
        await self._statement("record_scheduled")
        recorded = 0
        for run in runs:
            if self._find(run.user_id, run.summary_date, "scheduled") is None:
                self._insert(run, "scheduled", run.due_at, now, job_run_id)
                recorded += 1
        return recorded

    async def record_resend(self, run: NewRun, job_run_id: int, now: datetime) -> int:
        await self._statement("record_resend")
        earlier = self._find(run.user_id, run.summary_date, "resend")
        if earlier is None:
            return self._insert(run, "resend", now, now, job_run_id).pending.id
        self._keep(self.store.runs, earlier.pending.id)
        # Replaced: a fresh event id, due now, never attempted.
        self.store.runs[earlier.pending.id] = _row(
            earlier.pending.id, run, "resend", now, now, job_run_id
        )
        return earlier.pending.id

    def _find(self, user_id: str, day: date, kind: str) -> SummaryRun | None:
        key = (user_id, day, kind)
        return next(
            (
                r
                for r in self.store.runs.values()
                if (r.pending.user_id, r.pending.summary_date, r.pending.kind) == key
            ),
            None,
        )

    def _insert(
        self, run: NewRun, kind: str, due_at: datetime, now: datetime, job_run_id: int | None
    ) -> SummaryRun:
        row = _row(next(self.store._ids), run, kind, due_at, now, job_run_id)
        self._keep(self.store.runs, row.pending.id)
        self.store.runs[row.pending.id] = row
        return row

    # -- publishing --------------------------------------------------------------------------
    async def claim_unpublished(
        self, oldest: datetime, limit: int, ids: Sequence[int] | None = None
    ) -> list[PendingRun]:
        await self._statement("claim_unpublished")
        pending = sorted(
            (
                r.pending
                for r in self.store.runs.values()
                if r.published_at is None
                and r.pending.due_at > oldest
                and (ids is None or r.pending.id in ids)
            ),
            key=lambda r: r.due_at,
        )
        return [r for r in pending if self._lock(("run", r.id))][:limit]

    async def mark_published(self, ids: Sequence[int], now: datetime) -> None:
        await self._statement("mark_published")
        for run_id in ids:
            self._keep(self.store.runs, run_id)
            run = self.store.runs[run_id]
            run.published_at, run.attempts, run.last_error = now, run.attempts + 1, None

    async def mark_failed(self, failures: Sequence[tuple[int, str]]) -> None:
        await self._statement("mark_failed")
        for run_id, error in failures:
            self._keep(self.store.runs, run_id)
            run = self.store.runs[run_id]
            run.attempts, run.last_error = run.attempts + 1, error[:1000]

    async def unpublished_count(self, oldest: datetime) -> int:
        await self._statement("unpublished_count")
        return sum(
            1
            for r in self.store.runs.values()
            if r.published_at is None and r.pending.due_at > oldest
        )

    # -- the links ---------------------------------------------------------------------------
    async def active_links(self) -> list[LinkSettings]:
        await self._statement("active_links")
        return [link.settings for link in self.store.links.values() if link.active]

    async def link(self, user_id: str) -> LinkSettings | None:
        await self._statement("link")
        found = self.store.links.get(user_id)
        return found.settings if found is not None else None

    # -- job runs and status -----------------------------------------------------------------
    async def start_job_run(
        self, job_id: str, trigger: str, started_at: datetime, details: dict[str, Any]
    ) -> int:
        await self._statement("start_job_run")
        run_id = next(self.store._ids)
        self._keep(self.store.job_runs, run_id)
        self.store.job_runs[run_id] = JobRunRecord(
            run_id, job_id, trigger, started_at, None, 0, 0, None, _as_stored(details)
        )
        return run_id

    async def finish_job_run(self, run_id: int, outcome: RunOutcome) -> JobRunRecord:
        await self._statement("finish_job_run")
        self._keep(self.store.job_runs, run_id)
        started = self.store.job_runs[run_id]
        finished = replace(started, **asdict(outcome) | {"details": _as_stored(outcome.details)})
        self.store.job_runs[run_id] = finished
        return finished

    async def job_runs(self, job_id: str | None, limit: int, offset: int = 0) -> list[JobRunRecord]:
        await self._statement("job_runs")
        runs = [r for r in self.store.job_runs.values() if job_id is None or r.job_id == job_id]
        runs.sort(key=lambda r: (r.started_at, r.id), reverse=True)
        return runs[offset : offset + limit]

    async def count_job_runs(self, job_id: str | None) -> int:
        await self._statement("count_job_runs")
        return sum(1 for r in self.store.job_runs.values() if job_id is None or r.job_id == job_id)

    async def schedule_overview(self) -> tuple[datetime | None, int]:
        await self._statement("schedule_overview")
        dues = [e.due_at for e in self.store.schedules.values()]
        return (min(dues) if dues else None), len(dues)


def _row(
    run_id: int, run: NewRun, kind: str, due_at: datetime, now: datetime, job_run_id: int | None
) -> SummaryRun:
    pending = PendingRun(
        run_id, run.user_id, run.summary_date, kind, run.event_id, due_at, run.timezone
    )
    return SummaryRun(pending, created_at=now, job_run_id=job_run_id)


def _as_stored(details: dict[str, Any]) -> dict[str, Any]:
    """`details` as the jsonb column gives it back."""
    loaded: dict[str, Any] = json.loads(json.dumps(details, default=str))
    return loaded


@dataclass
class FakePublisher:
    """`TriggerPublisher`: keeps each published event with its `mandatory`. While `refusing`,
    a publish raises `PublishError` (not confirmed); while not `reachable`, `connect` fails."""

    connected: bool = True
    reachable: bool = True
    refusing: bool = False
    attempts: int = 0
    published: list[tuple[Event, bool]] = field(default_factory=list)

    @property
    def is_connected(self) -> bool:
        return self.connected

    async def connect(self) -> None:
        await asyncio.sleep(0)
        if not self.reachable:
            raise ConnectionRefusedError("connection refused")
        self.connected = True

    async def publish(
        self, event: Event, *, mandatory: bool = True, headers: dict[str, Any] | None = None
    ) -> None:
        self.attempts += 1
        await asyncio.sleep(0)  # awaiting the confirm
        if self.refusing:
            raise PublishError("the broker did not confirm the event")
        self.published.append((event, mandatory))

    def events(self) -> list[Event]:
        return [event for event, _ in self.published]
