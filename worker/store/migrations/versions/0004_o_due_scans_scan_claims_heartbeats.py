"""O(due) scans (holders.next_due_on), scan claims across replicas, worker heartbeats (issue 5).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('worker_heartbeats',
    sa.Column('worker_id', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=False),
    sa.Column('last_dispatch_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('worker_id', name=op.f('pk_worker_heartbeats'))
    )
    with op.batch_alter_table('holders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_due_on', sa.Date(), server_default='1900-01-01', nullable=False))
        batch_op.create_index(batch_op.f('ix_holders_next_due_on'), ['next_due_on'], unique=False)

    with op.batch_alter_table('scan_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=16), server_default='finished', nullable=False))
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(), nullable=True))
        batch_op.alter_column('finished_at',
               existing_type=sa.DateTime(),
               nullable=True)



def downgrade() -> None:
    with op.batch_alter_table('scan_runs', schema=None) as batch_op:
        batch_op.alter_column('finished_at',
               existing_type=sa.DateTime(),
               nullable=False)
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('claimed_by')
        batch_op.drop_column('status')

    with op.batch_alter_table('holders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_holders_next_due_on'))
        batch_op.drop_column('next_due_on')

    op.drop_table('worker_heartbeats')
