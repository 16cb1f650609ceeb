"""search: the case's latest verification result, and indexes for the quality search

Revision ID: 0012
Revises: 0005
Create Date: 2026-12-03 06:15:00

The query mix of ``services/search.py`` (see ``benchmarks/bench_search.py``): patient-code and
case-number prefixes (``text_pattern_ops`` on PostgreSQL, so ``LIKE 'ABC%'`` uses the index in any
collation), status + created range, device type + verification result, released range, cases
with held objects (a partial index over held objects only) and envelope versions used.
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0008'
branch_labels = None
depends_on = None

BACKFILL = """
UPDATE "case" SET verification_result = COALESCE((
    SELECT CASE WHEN r.passed THEN 'passed' ELSE 'failed' END
    FROM verification_report r
    WHERE r.iteration_id = (SELECT i.id FROM design_iteration i WHERE i.case_id = "case".id
                            ORDER BY i.number DESC LIMIT 1)
    ORDER BY r.id DESC LIMIT 1), 'none')
"""


def upgrade():
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'verification_result',
            sa.Enum('none', 'passed', 'failed', name='verificationresult', native_enum=False,
                    create_constraint=True, length=32),
            server_default='none', nullable=False))
    op.execute(BACKFILL)
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_released_at'), ['released_at'], unique=False)
        batch_op.create_index('ix_case_status_created_at', ['status', 'created_at'], unique=False)
        batch_op.create_index('ix_case_device_type_verification',
                              ['device_type_id', 'verification_result', 'created_at'],
                              unique=False)
        batch_op.create_index('ix_case_number_prefix', ['number'], unique=False,
                              postgresql_ops={'number': 'text_pattern_ops'})
    op.create_index('ix_patient_code_prefix', 'patient', ['code'], unique=False,
                    postgresql_ops={'code': 'text_pattern_ops'})
    op.create_index('ix_stored_file_held_case_id', 'stored_file', ['case_id'], unique=False,
                    postgresql_where=sa.text('legal_hold'), sqlite_where=sa.text('legal_hold'))
    op.create_index('ix_verification_report_envelope_case', 'verification_report',
                    ['envelope_version_id', 'case_id'], unique=False)


def downgrade():
    op.drop_index('ix_verification_report_envelope_case', table_name='verification_report')
    op.drop_index('ix_stored_file_held_case_id', table_name='stored_file')
    op.drop_index('ix_patient_code_prefix', table_name='patient')
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.drop_index('ix_case_number_prefix')
        batch_op.drop_index('ix_case_device_type_verification')
        batch_op.drop_index('ix_case_status_created_at')
        batch_op.drop_index(batch_op.f('ix_case_released_at'))
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_case_verificationresult'), type_='check')
        batch_op.drop_column('verification_result')
