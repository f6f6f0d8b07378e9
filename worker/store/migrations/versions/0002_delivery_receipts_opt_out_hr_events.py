"""Delivery receipts, SMS opt-out, segment counts and HR events (issue 3).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('hr_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('holder_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.String(length=300), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('claimed_until', sa.DateTime(), nullable=True),
    sa.Column('reported_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['holder_id'], ['holders.id'], name=op.f('fk_hr_events_holder_id_holders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_hr_events_team_id_teams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hr_events'))
    )
    with op.batch_alter_table('hr_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hr_events_holder_id'), ['holder_id'], unique=False)
        batch_op.create_index('ix_hr_events_pending', ['team_id', 'reported_at'], unique=False)

    with op.batch_alter_table('delivery_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_attempts_provider_message_id'), ['provider_message_id'], unique=False)

    with op.batch_alter_table('holders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sms_opted_out_at', sa.DateTime(), nullable=True))

    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('segments', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('rendered_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('delivery_status', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('delivery_error_code', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('delivery_updated_at', sa.DateTime(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_column('delivery_updated_at')
        batch_op.drop_column('delivery_error_code')
        batch_op.drop_column('delivery_status')
        batch_op.drop_column('rendered_on')
        batch_op.drop_column('segments')

    with op.batch_alter_table('holders', schema=None) as batch_op:
        batch_op.drop_column('sms_opted_out_at')

    with op.batch_alter_table('delivery_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_attempts_provider_message_id'))

    with op.batch_alter_table('hr_events', schema=None) as batch_op:
        batch_op.drop_index('ix_hr_events_pending')
        batch_op.drop_index(batch_op.f('ix_hr_events_holder_id'))

    op.drop_table('hr_events')
