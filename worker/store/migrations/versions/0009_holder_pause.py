"""Pausing one holder's reminders (parental leave, a secondment abroad): until when, and why.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('holders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paused_until', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('pause_reason', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('holders', schema=None) as batch_op:
        batch_op.drop_column('pause_reason')
        batch_op.drop_column('paused_until')
