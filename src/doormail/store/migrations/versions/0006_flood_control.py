"""Flood control (SPEC section 9): an outbox mail can be `held` for a digest or a burst summary
(`hold_group`), and names its digest once that is made (`digest_id`); the denied accesses of
the last minutes per device, and the burst each device is collecting.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hold_group", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("digest_id", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_outbox_recipient_created", ["recipient", "created_at"])
        batch_op.create_index("ix_outbox_hold_group", ["hold_group"])
        batch_op.create_index("ix_outbox_digest", ["digest_id"])
    op.create_table(
        "denied_accesses",
        sa.Column("device", sa.String(length=256), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
    )
    op.create_index("ix_denied_accesses_device_at", "denied_accesses", ["device", "at"])
    op.create_table(
        "bursts",
        sa.Column("device", sa.String(length=256), primary_key=True),
        sa.Column("hold_group", sa.String(length=512), nullable=False),
        sa.Column("first_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("bursts")
    op.drop_index("ix_denied_accesses_device_at", table_name="denied_accesses")
    op.drop_table("denied_accesses")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_digest")
        batch_op.drop_index("ix_outbox_hold_group")
        batch_op.drop_index("ix_outbox_recipient_created")
        batch_op.drop_column("digest_id")
        batch_op.drop_column("hold_group")
