"""security: lock-out and TOTP replay columns on user, case assignee

Revision ID: 0009
Revises: 0005
Create Date: 2026-12-03 06:20:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tf_totp_last_counter', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('failed_auth_count', sa.Integer(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assigned_engineer_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_case_assigned_engineer_id'),
                              ['assigned_engineer_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_case_assigned_engineer_id_user'), 'user',
                                    ['assigned_engineer_id'], ['id'])


def downgrade():
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_case_assigned_engineer_id_user'),
                                 type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_case_assigned_engineer_id'))
        batch_op.drop_column('assigned_engineer_id')
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('locked_until')
        batch_op.drop_column('failed_auth_count')
        batch_op.drop_column('tf_totp_last_counter')
