"""Outbox messages in a table of their own: claiming and recording outcomes rewrite the outbox
row, and with the message bytes inside it every state change rewrote the whole message.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No foreign key to outbox: SQLite rebuilds `outbox` below to drop its column, and a
    # cascading key would empty this table with it.
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("message", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO outbox_messages (id, message) SELECT id, message FROM outbox")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("message")


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE outbox SET message = "
        "(SELECT message FROM outbox_messages WHERE outbox_messages.id = outbox.id)"
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column("message", existing_type=sa.LargeBinary(), nullable=False)
    op.drop_table("outbox_messages")
