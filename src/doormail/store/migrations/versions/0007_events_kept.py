"""Events kept with their outcome: when each happened (`at`), at which device, its fields, and
the addresses it concerns (its mails' recipients, or those it would have reached), so that the
events list answers "which events mailed this address, and which did not, and why".

Events stored before keep their answer; their `at` is when they were received.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("device", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("fields", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("addresses", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("mails", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE events SET at = received_at WHERE at IS NULL")
    # The stored answer says whether mail was queued (json.dumps writes an empty list as []).
    op.execute("""UPDATE events SET mails = 1 WHERE result NOT LIKE '%"emails": []%'""")
    op.create_index("ix_events_at", "events", ["at", "id"])


def downgrade() -> None:
    op.drop_index("ix_events_at", table_name="events")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("mails")
        batch_op.drop_column("addresses")
        batch_op.drop_column("fields")
        batch_op.drop_column("device")
        batch_op.drop_column("at")
