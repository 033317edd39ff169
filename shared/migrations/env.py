"""Alembic environment: runs migrations synchronously over psycopg 3."""

from alembic import context
from sqlalchemy import create_engine, pool
from sqlmodel import SQLModel

import shared.models

target_metadata = SQLModel.metadata


def run_migrations() -> None:
    url = context.config.get_main_option("sqlalchemy.url") or ""
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            # Serialise concurrent `migrate` runs (several replicas starting at once).
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7305150101)")
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations()
