"""Token scopes and session epochs: a token is for `events` (a door station) or `admin`
(everything), and remembers when it was last used; an account's session epoch ends every session
made before it (logout, password change).

Tokens made before scopes existed keep what they could do (`admin`); new ones default to
`events`. The `cli` token that `doormail event` made for itself only ever posted events.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scope", sa.String(length=16), nullable=False, server_default="admin")
        )
        batch_op.add_column(sa.Column("last_used_at", sa.Float(), nullable=True))
    op.execute("UPDATE tokens SET scope = 'events' WHERE name = 'cli'")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("session_epoch")
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("scope")
