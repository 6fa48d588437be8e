"""The first schema: score runs, the current-run pointer, scored customers, evidence, outreach log, API tokens.

A migration is a frozen copy of the schema at its time, not an import of ``retain.serve.db``:
later changes to the tables come as new migrations, and this one keeps creating what it created.
``tests/test_serve_db.py`` checks that the migrated schema matches ``db.metadata``.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "score_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("as_of", sa.DateTime, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model_versions", sa.JSON, nullable=False),
        sa.Column("customers", sa.Integer, nullable=False),
        sa.Column("value_basis", sa.String(200)),
        sa.Column("summary", sa.JSON),
        sa.CheckConstraint(
            "status IN ('pending', 'published', 'superseded', 'rolled_back')",
            name="ck_score_runs_status",
        ),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "current_run",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("score_runs.id"), nullable=False),
        sa.Column("switched_at", sa.DateTime, nullable=False),
        sa.CheckConstraint("id = 1", name="ck_current_run_single"),
    )
    op.create_table(
        "scored_customers",
        sa.Column(
            "run_id", sa.Integer, sa.ForeignKey("score_runs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("customer_id", sa.String(200), primary_key=True),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("churn_probability", sa.Float, nullable=False),
        sa.Column("monthly_value", sa.Float, nullable=False),
        sa.Column("value_at_risk", sa.Float, nullable=False),
        sa.Column("risk_tier", sa.String(50), nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("recommended_action", sa.Text, nullable=False),
        sa.Column("owner", sa.String(200)),
        sa.Column("team", sa.String(200)),
        # The outreach plan of the run (retain.outreach.playbook): status, the control flag, last contact.
        sa.Column("outreach_status", sa.String(20)),
        sa.Column("control", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("last_contacted_at", sa.DateTime),
        sa.Column("segment", sa.String(200)),
        sa.Column("region", sa.String(200)),
        sa.Column("plan", sa.String(200)),
        sa.Column("themes", sa.JSON),
    )
    op.create_index("ix_scored_customers_run_rank", "scored_customers", ["run_id", "rank"], unique=True)
    op.create_index(
        "ix_scored_customers_run_tier", "scored_customers", ["run_id", "risk_tier", "rank"]
    )
    op.create_index("ix_scored_customers_customer", "scored_customers", ["customer_id", "run_id"])
    op.create_table(
        "evidence",
        sa.Column(
            "run_id", sa.Integer, sa.ForeignKey("score_runs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("customer_id", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("evidence_id", sa.String(200), primary_key=True),
        sa.Column("occurred_at", sa.DateTime, nullable=False),
        sa.Column("channel", sa.String(100)),
        sa.Column("status", sa.String(50)),
        sa.Column("sentiment", sa.String(20)),
        sa.Column("themes", sa.JSON),
        sa.Column("csat", sa.Float),
        sa.Column("nps", sa.Float),
        sa.Column("ces", sa.Float),
        sa.Column("rating", sa.Float),
        sa.Column("text", sa.Text),
        sa.CheckConstraint("kind IN ('ticket', 'feedback')", name="ck_evidence_kind"),
    )
    op.create_table(
        "outreach_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(200), nullable=False),
        sa.Column("run_id", sa.Integer),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("contacted_by", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(50), nullable=False),
        sa.Column("outcome", sa.String(100)),
        sa.Column("notes", sa.Text),
        sa.Column("action", sa.Text),
        sa.Column("control", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_outreach_log_customer_id", "outreach_log", ["customer_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("role", sa.String(50), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("revoked_at", sa.DateTime),
    )


def downgrade() -> None:
    for table in ("api_tokens", "outreach_log", "evidence", "scored_customers", "current_run", "score_runs"):
        op.drop_table(table)
