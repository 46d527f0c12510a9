"""Several processes on one database, and bounded storage: a change counter per kind of shared
state (settings, certificates, users), which every process reads instead of the whole state to
see that another one changed it; indexes for pruning old events and mail in small batches and
for the outbox listing by state.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("topic", sa.String(length=32), primary_key=True),
        sa.Column("counter", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_index("ix_events_received", "events", ["received_at"])
    op.create_index("ix_outbox_status_created", "outbox", ["status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_status_created", table_name="outbox")
    op.drop_index("ix_events_received", table_name="events")
    op.drop_table("changes")
