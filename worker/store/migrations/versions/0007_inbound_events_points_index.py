"""Provider receipts and replies seen, so a replayed one changes nothing; an index for the points
scan's date range, so it reads only the holders whose points touch falls due.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'inbound_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('provider', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('message_id', sa.String(length=100), nullable=False),
        sa.Column('status', sa.String(length=32), nullable=False),
        sa.Column('received_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_events')),
        sa.UniqueConstraint('provider', 'kind', 'message_id', 'status', name='uq_inbound_events_message'),
    )
    with op.batch_alter_table('inbound_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_events_received_at'), ['received_at'], unique=False)
    with op.batch_alter_table('holders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_holders_points_valid_until'), ['points_valid_until'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('holders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_holders_points_valid_until'))
    with op.batch_alter_table('inbound_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_events_received_at'))
    op.drop_table('inbound_events')
