"""City scale: scan slices, so several scheduler replicas share one day's scan; and three indexes
fewer on the hottest tables, which every scan's UPDATE of next_due_on, every import and every
outbox insert maintained: two duplicated the leading column of a unique key, and the holders'
expiry alone is never read (every read by expiry is a team's, through ix_holders_team_expiry).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'scan_slices',
        sa.Column('scan_id', sa.String(length=36), nullable=False),
        sa.Column('slice_no', sa.Integer(), nullable=False),
        sa.Column('scan_date', sa.Date(), nullable=False),
        sa.Column('first_id', sa.Integer(), nullable=False),
        sa.Column('last_id', sa.Integer(), nullable=False),
        sa.Column('holder_ids', sa.LargeBinary(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('done_by', sa.String(length=100), nullable=True),
        sa.Column('holders_seen', sa.Integer(), nullable=False),
        sa.Column('enqueued', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('scan_id', 'slice_no', name=op.f('pk_scan_slices')),
    )
    op.create_index('ix_scan_slices_day_status', 'scan_slices', ['scan_date', 'status'])
    with op.batch_alter_table('holders') as batch_op:
        batch_op.drop_index('ix_holders_team_id')
        batch_op.drop_index('ix_holders_expires_on')  # every read by expiry is a team's: ix_holders_team_expiry
    with op.batch_alter_table('notifications') as batch_op:
        batch_op.drop_index('ix_notifications_holder_id')


def downgrade() -> None:
    with op.batch_alter_table('notifications') as batch_op:
        batch_op.create_index('ix_notifications_holder_id', ['holder_id'], unique=False)
    with op.batch_alter_table('holders') as batch_op:
        batch_op.create_index('ix_holders_team_id', ['team_id'], unique=False)
        batch_op.create_index('ix_holders_expires_on', ['expires_on'], unique=False)
    op.drop_index('ix_scan_slices_day_status', table_name='scan_slices')
    op.drop_table('scan_slices')
