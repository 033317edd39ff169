"""Migrations: the models and the migrated schema agree, and migrate is idempotent."""

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
