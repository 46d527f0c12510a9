"""The SMTP server's state shared by every worker process: up or unreachable since a moment,
its last error and hint, how many probes the outage has taken and when the next one is due.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "smtp_server",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("since", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("hint", sa.Text(), nullable=True),
        sa.Column("probes", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_probe_at", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("smtp_server")
