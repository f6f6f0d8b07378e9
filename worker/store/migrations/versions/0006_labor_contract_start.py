"""The labour contract's start date, so the points check can judge a term under one year.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('holders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('labor_contract_starts_on', sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('holders', schema=None) as batch_op:
        batch_op.drop_column('labor_contract_starts_on')
