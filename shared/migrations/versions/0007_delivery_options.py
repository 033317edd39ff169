"""delivery options of a link: silent types, the quiet-hours mode, link previews

Revision ID: 0007
Revises: 0006
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _columns() -> list[sa.Column]:
    """Owner: linker. Each with a server default, so existing links keep today's behaviour."""
    silent = postgresql.ARRAY(sa.Text())
    return [
        # Types delivered without a sound (`disable_notification`); a type also in `muted_types`
        # is muted. Daily reports are silent unless the user makes them loud.
        sa.Column("silent_types", silent, nullable=False, server_default="{daily_summary}"),
        # Quiet hours `hold` (keep, then fold when they end) or deliver `silent`ly at once.
        sa.Column("quiet_mode", sa.String(length=8), nullable=False, server_default="hold"),
        # Whether a notification with a post link shows a small preview of the post.
        sa.Column("link_previews", sa.Boolean(), nullable=False, server_default=sa.true()),
    ]


def upgrade() -> None:
    for column in _columns():
        op.add_column("telegram_links", column)


def downgrade() -> None:
    for column in reversed(_columns()):
        op.drop_column("telegram_links", column.name)
