"""Indexes for big teams' HR reads: holders by (team, expiry, time zone), so a team's stage counts
and expiry windows read an index and not the table; and the outbox's delivery status, so the
overview finds a team's failed deliveries (rare) without reading every notification.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_holders_team_expiry', 'holders', ['team_id', 'expires_on', 'timezone'])
    op.create_index('ix_notifications_delivery_status', 'notifications', ['delivery_status'])


def downgrade() -> None:
    op.drop_index('ix_notifications_delivery_status', table_name='notifications')
    op.drop_index('ix_holders_team_expiry', table_name='holders')
