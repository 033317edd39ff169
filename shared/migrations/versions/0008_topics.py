"""forum topics: the topic of a forum supergroup a link's notifications go to

Revision ID: 0008
Revises: 0007
"""

from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TOPIC = "message_thread_id"
"""Owner: linker. NULL (every existing link): the chat itself, or a forum's General topic."""


def upgrade() -> None:
    op.add_column("telegram_links", sa.Column(TOPIC, sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("telegram_links", TOPIC)
