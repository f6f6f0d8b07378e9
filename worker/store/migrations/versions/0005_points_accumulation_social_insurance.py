"""Points status, accumulated holding and social-insurance months (issue 6).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('social_insurance_months',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('holder_id', sa.Integer(), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('paid', sa.Boolean(), nullable=False),
    sa.Column('base_multiple', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['holder_id'], ['holders.id'], name=op.f('fk_social_insurance_months_holder_id_holders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_social_insurance_months')),
    sa.UniqueConstraint('holder_id', 'month', name='uq_social_insurance_months_holder_month')
    )
    with op.batch_alter_table('holders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('accumulation_started_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('points_basis', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('points_valid_until', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('labor_contract_ends_on', sa.Date(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('holders', schema=None) as batch_op:
        batch_op.drop_column('labor_contract_ends_on')
        batch_op.drop_column('points_valid_until')
        batch_op.drop_column('points_basis')
        batch_op.drop_column('accumulation_started_on')

    op.drop_table('social_insurance_months')
