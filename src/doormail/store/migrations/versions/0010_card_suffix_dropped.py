"""A card's Wiegand tail is no longer kept in its own column: an event's look-ups are answered
from the users list in memory (users/index.py), so `user_identifiers.suffix` and its index were
written and never read.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user_identifiers") as batch:
        batch.drop_index("ix_user_identifiers_kind_suffix")
        batch.drop_column("suffix")


def downgrade() -> None:
    with op.batch_alter_table("user_identifiers") as batch:
        batch.add_column(sa.Column("suffix", sa.String(16), nullable=False, server_default=""))
        batch.create_index("ix_user_identifiers_kind_suffix", ["kind", "suffix"])
    # The last 6 characters of each card, upper case, as the earlier look-ups expect.
    tail = (
        "right(upper(value), 6)"
        if op.get_bind().dialect.name == "postgresql"
        else ("substr(upper(value), -6)")
    )
    op.execute(f"UPDATE user_identifiers SET suffix = {tail} WHERE kind = 'card'")
