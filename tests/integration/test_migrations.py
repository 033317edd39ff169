"""Migrations: the models and the migrated schema agree, and migrate is idempotent."""

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import shared.models  # noqa: F401  (registers the tables)
from shared.db import migrate, sqlalchemy_url

pytestmark = pytest.mark.integration


def test_migrated_schema_matches_the_models(fresh_database_url):
    engine = create_engine(sqlalchemy_url(fresh_database_url))
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    engine.dispose()
    assert differences == []


def test_migrate_twice_is_harmless(fresh_database_url):
    assert migrate(fresh_database_url) is False
    assert migrate(fresh_database_url) is False


@pytest.mark.parametrize("scheme", ["postgresql://", "postgresql+psycopg://", "postgres://"])
def test_database_url_schemes_are_accepted(scheme):
    assert sqlalchemy_url(f"{scheme}u@h:5432/db") == "postgresql+psycopg://u@h:5432/db"


def test_other_databases_are_refused():
    with pytest.raises(ValueError, match="PostgreSQL"):
        sqlalchemy_url("mysql://u@h/db")


async def test_0005_upgrades_a_populated_database_in_place(fresh_database_url, rabbitmq_url):
    """Rows written under 0004 are all there after 0005, the schema is the models', pruning and
    delivery work; rows present at the upgrade count as recorded then (activity keeps them)."""
    from alembic import command

    from services.scheduler.retention import prune
    from services.scheduler.retention_settings import RetentionSettings
    from shared.db import alembic_config
    from shared.db import create_engine as create_async_engine
    from tests.notifier.harness import running_notifier
    from tests.support.ids import new_chat_id, new_user
    from tests.support.rows import TABLES_0004 as TABLES
    from tests.support.rows import count_every_table, seed_every_table

    config = alembic_config(fresh_database_url)
    command.downgrade(config, "0004")
    engine = create_engine(sqlalchemy_url(fresh_database_url))
    long_ago = datetime.now(UTC) - timedelta(days=90)
    with engine.begin() as conn:
        old = seed_every_table(conn, new_user("pre-0005"), long_ago, TABLES)
        recent = seed_every_table(conn, new_user("pre-0005"), datetime.now(UTC), TABLES)

    migrate(fresh_database_url)

    with engine.connect() as conn:
        assert count_every_table(conn, old, TABLES) == dict.fromkeys(TABLES, 1)
        assert count_every_table(conn, recent, TABLES) == dict.fromkeys(TABLES, 1)
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
    pool = create_async_engine(fresh_database_url, pool_size=1)
    try:
        report = await prune(pool, RetentionSettings(_env_file=None))
    finally:
        await pool.dispose()
    with engine.connect() as conn:
        after = count_every_table(conn, old, TABLES)
        assert count_every_table(conn, recent, TABLES) == dict.fromkeys(TABLES, 1)
    engine.dispose()
    assert report.by_table()["processed_events"] == 1 and after["processed_events"] == 0
    assert after["activity"] == 1  # recorded at the upgrade: kept RETENTION_ACTIVITY_DAYS from it
    async with running_notifier(fresh_database_url, rabbitmq_url) as h:
        user, chat = new_user(), new_chat_id()
        await h.link(user, chat)
        event = await h.publish("post_failure", user, {"platform": "x", "error": "after 0005"})
        await h.wait_delivery(event, "sent")
        assert "after 0005" in h.texts(chat)[0]
