"""Every SQL statement of the scheduler, one constant each; `store.py` binds their parameters.

A link that should receive the daily summary is enabled, has a chat and has not muted
`daily_summary`; the statements that read `telegram_links` spell that condition out (the linker
owns those columns). Bulk rows travel as one JSON array (`json_to_recordset`): for thousands of
rows that is several times cheaper to encode than one typed array parameter per column.
"""

from __future__ import annotations

from sqlalchemy import text

SYNC_LOCK_KEY = 7305150205
"""Advisory lock taken by the replica that reconciles the schedule with the links this tick."""

# -- reconciling the schedule with the links ---------------------------------------------------
TRY_LOCK_SYNC = text("SELECT pg_try_advisory_xact_lock(:key)")

SYNC = text("""
    SELECT l.user_id AS l_user_id, l.timezone AS l_timezone, l.summary_time AS l_summary_time,
           s.user_id AS s_user_id, s.timezone AS s_timezone, s.summary_time AS s_summary_time,
           s.summary_date AS s_summary_date, s.due_at AS s_due_at
    FROM (SELECT user_id, timezone, summary_time FROM telegram_links l WHERE
          l.enabled AND l.chat_id IS NOT NULL AND NOT ('daily_summary' = ANY(l.muted_types))) l
    FULL JOIN summary_schedules s ON s.user_id = l.user_id
    WHERE l.user_id IS NULL OR s.user_id IS NULL
       OR l.timezone <> s.timezone OR l.summary_time <> s.summary_time
""")

# Writes the schedule rows the JSON array `:rows` carries (with the due instant the sync saw).
_UPDATE_SCHEDULES = """
    UPDATE summary_schedules s
    SET timezone = x.timezone, summary_time = x.summary_time, summary_date = x.summary_date,
        due_at = x.due_at, updated_at = :now
    FROM json_to_recordset(CAST(:rows AS json)) AS x(
        user_id text, timezone text, summary_time time, summary_date date, due_at timestamptz,
        seen_due_at timestamptz)
    WHERE s.user_id = x.user_id
"""

INSERT_SCHEDULES = text("""
    INSERT INTO summary_schedules
        (user_id, timezone, summary_time, summary_date, due_at, updated_at)
    SELECT x.user_id, x.timezone, x.summary_time, x.summary_date, x.due_at, :now
    FROM json_to_recordset(CAST(:rows AS json)) AS x(
        user_id text, timezone text, summary_time time, summary_date date, due_at timestamptz,
        seen_due_at timestamptz)
    ON CONFLICT (user_id) DO NOTHING
""")

# Only if the row is still what the sync read: a replica that fired it meanwhile wins.
RESCHEDULE = text(_UPDATE_SCHEDULES + "    AND s.due_at = x.seen_due_at\n")

DELETE_SCHEDULES = text("""
    DELETE FROM summary_schedules WHERE user_id = ANY(CAST(:users AS text[]))
""")

# -- firing due schedules ----------------------------------------------------------------------
CLAIM_DUE = text("""
    SELECT s.user_id, s.timezone, s.summary_time, s.summary_date, s.due_at,
           l.user_id AS link_user_id, l.timezone AS link_timezone,
           l.summary_time AS link_summary_time
    FROM summary_schedules s
    LEFT JOIN telegram_links l ON l.user_id = s.user_id
        AND l.enabled AND l.chat_id IS NOT NULL AND NOT ('daily_summary' = ANY(l.muted_types))
    WHERE s.due_at <= :now
    ORDER BY s.due_at
    LIMIT :limit
    FOR UPDATE OF s SKIP LOCKED
""")

ADVANCE = text(_UPDATE_SCHEDULES)

RECORD_SCHEDULED = text("""
    INSERT INTO summary_runs
        (user_id, summary_date, kind, event_id, due_at, created_at, attempts, job_run_id, timezone)
    SELECT x.user_id, x.summary_date, 'scheduled', x.event_id, x.due_at, :now, 0, :job_run_id,
        x.timezone
    FROM json_to_recordset(CAST(:rows AS json)) AS x(
        user_id text, summary_date date, event_id uuid, due_at timestamptz, timezone text)
    ON CONFLICT (user_id, summary_date, kind) DO NOTHING
    RETURNING id
""")

# A resend of the same (user, date) replaces the previous resend's row: the unique key allows one
# row per kind, and the job run keeps each request's event id.
RECORD_RESEND = text("""
    INSERT INTO summary_runs
        (user_id, summary_date, kind, event_id, due_at, created_at, attempts, job_run_id, timezone)
    VALUES (:user_id, :summary_date, 'resend', :event_id, :now, :now, 0, :job_run_id, :zone)
    ON CONFLICT (user_id, summary_date, kind) DO UPDATE
    SET event_id = EXCLUDED.event_id, due_at = EXCLUDED.due_at, created_at = EXCLUDED.created_at,
        published_at = NULL, attempts = 0, last_error = NULL,
        job_run_id = EXCLUDED.job_run_id, timezone = EXCLUDED.timezone
    RETURNING id
""")

# -- publishing --------------------------------------------------------------------------------
CLAIM_UNPUBLISHED = text("""
    SELECT id, user_id, summary_date, kind, event_id, due_at, timezone
    FROM summary_runs
    WHERE published_at IS NULL AND due_at > :oldest
    ORDER BY due_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
""")

CLAIM_UNPUBLISHED_BY_ID = text("""
    SELECT id, user_id, summary_date, kind, event_id, due_at, timezone
    FROM summary_runs
    WHERE id = ANY(CAST(:ids AS bigint[])) AND published_at IS NULL AND due_at > :oldest
    ORDER BY due_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
""")

MARK_PUBLISHED = text("""
    UPDATE summary_runs
    SET published_at = :now, attempts = attempts + 1, last_error = NULL
    WHERE id = ANY(CAST(:ids AS bigint[]))
""")

MARK_FAILED = text("""
    UPDATE summary_runs r
    SET attempts = r.attempts + 1, last_error = x.err
    FROM unnest(CAST(:ids AS bigint[]), CAST(:errors AS text[])) AS x(id, err)
    WHERE r.id = x.id
""")

UNPUBLISHED_COUNT = text("""
    SELECT count(*) FROM summary_runs WHERE published_at IS NULL AND due_at > :oldest
""")

# -- the links (owned by the linker; read only) ------------------------------------------------
ACTIVE_LINKS = text("""
    SELECT user_id, timezone, summary_time FROM telegram_links l
    WHERE l.enabled AND l.chat_id IS NOT NULL AND NOT ('daily_summary' = ANY(l.muted_types))
""")

LINK = text("SELECT user_id, timezone, summary_time FROM telegram_links WHERE user_id = :user_id")

# -- job runs and status -----------------------------------------------------------------------
START_JOB_RUN = text("""
    INSERT INTO job_runs (job_id, trigger, started_at, emitted, failed, details)
    VALUES (:job_id, :trigger, :started_at, 0, 0, CAST(:details AS jsonb))
    RETURNING id
""")

FINISH_JOB_RUN = text("""
    UPDATE job_runs
    SET finished_at = :finished_at, emitted = :emitted, failed = :failed, error = :error,
        details = CAST(:details AS jsonb)
    WHERE id = :id
    RETURNING id, job_id, trigger, started_at, finished_at, emitted, failed, error, details
""")

JOB_RUNS = text("""
    SELECT id, job_id, trigger, started_at, finished_at, emitted, failed, error, details
    FROM job_runs
    WHERE CAST(:job_id AS text) IS NULL OR job_id = :job_id
    ORDER BY started_at DESC, id DESC
    LIMIT :limit OFFSET :offset
""")

COUNT_JOB_RUNS = text("""
    SELECT count(*) FROM job_runs WHERE CAST(:job_id AS text) IS NULL OR job_id = :job_id
""")

SCHEDULE_OVERVIEW = text("SELECT min(due_at), count(*) FROM summary_schedules")
