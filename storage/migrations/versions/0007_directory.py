"""the directory of organisations: HSDS 3.0 records, their services, the coverage index

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "directory_organizations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_organizations")),
    )
    op.create_table(
        "directory_services",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("open_24_7", sa.Boolean(), nullable=False),
        sa.Column("areas", sa.JSON(), nullable=False),
        sa.Column("listing", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["directory_organizations.id"],
            name=op.f("fk_directory_services_organization_id_directory_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_services")),
    )
    op.create_index(op.f("ix_directory_services_organization_id"), "directory_services",
                    ["organization_id"])
    op.create_table(
        "directory_coverage",
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("service_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"], ["directory_services.id"],
            name=op.f("fk_directory_coverage_service_id_directory_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("country", "kind", "service_id",
                                name=op.f("pk_directory_coverage")),
    )
    op.create_index(op.f("ix_directory_coverage_service_id"), "directory_coverage",
                    ["service_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_directory_coverage_service_id"), table_name="directory_coverage")
    op.drop_table("directory_coverage")
    op.drop_index(op.f("ix_directory_services_organization_id"), table_name="directory_services")
    op.drop_table("directory_services")
    op.drop_table("directory_organizations")
