"""The scan's "who is due" read answered from one index: next_due_on with the holder's id, so
PostgreSQL reads the due ids by an index-only scan instead of visiting the heap for each (the
index is no bigger: a date and an integer pad to the date's 16-byte entry).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('holders') as batch_op:
        batch_op.create_index('ix_holders_due_id', ['next_due_on', 'id'], unique=False)
        batch_op.drop_index('ix_holders_next_due_on')


def downgrade() -> None:
    with op.batch_alter_table('holders') as batch_op:
        batch_op.create_index('ix_holders_next_due_on', ['next_due_on'], unique=False)
        batch_op.drop_index('ix_holders_due_id')
