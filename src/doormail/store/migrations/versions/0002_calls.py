"""Calls: when each call started ringing, so that a call's snapshots span ringing to its end.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("device", sa.String(length=256), nullable=False),
        sa.Column("call_id", sa.String(length=256), nullable=False),
        sa.Column("ringing_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("device", "call_id"),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index("ix_calls_ringing_at", ["ringing_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_ringing_at")
    op.drop_table("calls")
