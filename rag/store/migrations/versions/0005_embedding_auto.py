"""Knowledge bases remember whether their embedding model was chosen or defaulted.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing bases keep their model: they count as chosen.
    with op.batch_alter_table("knowledge_bases") as batch:
        batch.add_column(
            sa.Column("embedding_auto", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("knowledge_bases") as batch:
        batch.drop_column("embedding_auto")
