"""post images: whether a notification that carries a post's image is sent as a photo

Revision ID: 0009
Revises: 0008
"""

from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMN = "post_images"
"""Owner: linker. True (every existing link): a post notification with an `image_url` is sent
as a photo with the text as its caption; False: always as a text message."""


def upgrade() -> None:
    op.add_column(
        "telegram_links",
        sa.Column(COLUMN, sa.Boolean(), nullable=False, server_default=sa.true()),
    )


def downgrade() -> None:
    op.drop_column("telegram_links", COLUMN)
