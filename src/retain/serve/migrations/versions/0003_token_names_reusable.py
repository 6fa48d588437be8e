"""Token names: unique among live tokens only, so a revoked token's name can be given again.

0001 made ``api_tokens.name`` unique over every row, revoked ones included, so after
``retain tokens revoke alice`` a new token for alice failed on the constraint. The name is now
unique only where ``revoked_at`` is null (a partial unique index on SQLite and PostgreSQL).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _api_tokens(unique_name: bool) -> sa.Table:
    return sa.Table(
        "api_tokens",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=unique_name),
        sa.Column("role", sa.String(50), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("revoked_at", sa.DateTime),
    )


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # SQLite cannot drop a constraint: the table is copied (no other table refers to it).
        with op.batch_alter_table("api_tokens", copy_from=_api_tokens(unique_name=False), recreate="always"):
            pass
    else:
        for constraint in sa.inspect(bind).get_unique_constraints("api_tokens"):
            if constraint["column_names"] == ["name"]:
                op.drop_constraint(constraint["name"], "api_tokens", type_="unique")
    op.create_index(
        "ux_api_tokens_live_name", "api_tokens", ["name"], unique=True,
        sqlite_where=sa.text("revoked_at IS NULL"), postgresql_where=sa.text("revoked_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ux_api_tokens_live_name", "api_tokens")
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("api_tokens", copy_from=_api_tokens(unique_name=True), recreate="always"):
            pass
    else:
        op.create_unique_constraint("api_tokens_name_key", "api_tokens", ["name"])
