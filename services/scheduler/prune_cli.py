"""`sns-telegram prune [--dry-run]`: one prune (`retention.prune`) from the command line."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from services.scheduler.retention import PruneReport, prune
from services.scheduler.retention_settings import RetentionSettings
from shared.db import create_engine
from shared.settings import ConfigurationError


def run(*, dry_run: bool, say: Callable[..., None]) -> int:
    """Prune once (or count, with `dry_run`) and print one line per table; the exit status:
    2 for a configuration error, 1 if the database failed."""
    try:
        settings = RetentionSettings()
    except ConfigurationError as exc:
        say(f"sns-telegram prune: {exc}", error=True)
        return 2

    async def once() -> PruneReport:
        engine = create_engine(settings.database_url.get_secret_value(), pool_size=1)
        try:
            return await prune(engine, settings, dry_run=dry_run)
        finally:
            await engine.dispose()

    try:
        report = asyncio.run(once())
    except (SQLAlchemyError, OSError) as exc:
        say(f"sns-telegram prune: the database failed: {type(exc).__name__}: {exc}", error=True)
        return 1
    for line in report.lines():
        say(line)
    return 0
