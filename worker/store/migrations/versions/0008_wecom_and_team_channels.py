"""WeCom: a holder's WeCom userid (企业微信账号); a team's channel order and the WeCom group robot
its daily digest also goes to; room for Aliyun's and Tencent's receipt codes
("MOBILE_NOT_ON_SERVICE" is 21 characters; PostgreSQL refused it in 16).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('holders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('wecom_userid', sa.String(length=64), nullable=True))
    with op.batch_alter_table('teams', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channels', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hr_wecom_webhook', sa.String(length=500), nullable=True))
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.alter_column('delivery_error_code', existing_type=sa.String(length=16), type_=sa.String(length=64),
                              existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.alter_column('delivery_error_code', existing_type=sa.String(length=64), type_=sa.String(length=16),
                              existing_nullable=True)
    with op.batch_alter_table('teams', schema=None) as batch_op:
        batch_op.drop_column('hr_wecom_webhook')
        batch_op.drop_column('channels')
    with op.batch_alter_table('holders', schema=None) as batch_op:
        batch_op.drop_column('wecom_userid')
