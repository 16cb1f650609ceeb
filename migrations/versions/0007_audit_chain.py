"""hash-chained, append-only audit trail and its checkpoints

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-03 06:10:00

Adds ``seq``, ``prev_hash`` and ``hash`` to ``audit_event``, computes the chain for the events
that already exist (in id order), creates the chain-head row and the checkpoint index, and only
then installs the triggers that refuse UPDATE and DELETE on ``audit_event`` and
``audit_checkpoint`` (SQLite and PostgreSQL). See docs/audit-trail.md.

The hash is computed here with a frozen copy of ``pdm_records.audit_chain.event_content`` /
``event_hash`` (chain version 1), so this migration means the same thing in ten years whatever
the package does then; tests verify the migrated chain with the product's verifier.
"""
import hashlib
from datetime import UTC, datetime

import rfc8785
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

GENESIS_HASH = "0" * 64
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
APPEND_ONLY = ("audit_event", "audit_checkpoint")


def _utc_iso(moment):
    if isinstance(moment, str):  # SQLite without type information
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _event_hash(row, seq, prev_hash):
    content = {
        "seq": seq, "prev_hash": prev_hash, "occurred_at": _utc_iso(row.occurred_at),
        "actor_id": row.actor_id, "actor_label": row.actor_label, "action": row.action,
        "target_type": row.target_type, "target_id": row.target_id, "case_id": row.case_id,
        "before": row.before, "after": row.after, "remote_addr": row.remote_addr,
    }
    return hashlib.sha256(rfc8785.dumps(content)).hexdigest()


def upgrade():
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))

    # The chain of the events recorded before this migration, in the order they were written.
    bind = op.get_bind()
    events = sa.table(
        'audit_event', sa.column('id', sa.Integer()),
        sa.column('occurred_at', sa.DateTime(timezone=True)), sa.column('actor_id', sa.Integer()),
        sa.column('actor_label', sa.String()), sa.column('action', sa.String()),
        sa.column('target_type', sa.String()), sa.column('target_id', sa.String()),
        sa.column('case_id', sa.Integer()), sa.column('before', JSON), sa.column('after', JSON),
        sa.column('remote_addr', sa.String()), sa.column('seq', sa.BigInteger()),
        sa.column('prev_hash', sa.String()), sa.column('hash', sa.String()))
    seq, prev, last_id = 0, GENESIS_HASH, None
    while True:  # in batches of 1000 by id, so no cursor stays open over the updates
        query = sa.select(events).order_by(events.c.id).limit(1000)
        if last_id is not None:
            query = query.where(events.c.id > last_id)
        rows = bind.execute(query).fetchall()
        if not rows:
            break
        updates = []
        for row in rows:
            seq += 1
            digest = _event_hash(row, seq, prev)
            updates.append({"row_id": row.id, "seq": seq, "prev_hash": prev, "hash": digest})
            prev, last_id = digest, row.id
        _apply(bind, events, updates)

    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.alter_column('seq', existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_audit_event_seq'), ['seq'])

    head = op.create_table('audit_chain_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_chain_head'))
    )
    op.bulk_insert(head, [{"id": 1, "seq": seq, "hash": prev}])
    op.create_table('audit_checkpoint',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('key', sa.String(length=512), nullable=False),
    sa.Column('version_id', sa.String(length=128), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_checkpoint')),
    sa.UniqueConstraint('seq', name=op.f('uq_audit_checkpoint_seq'))
    )
    _create_triggers(bind.dialect.name)


def _apply(bind, events, updates):
    bind.execute(events.update().where(events.c.id == sa.bindparam('row_id')).values(
        seq=sa.bindparam('seq'), prev_hash=sa.bindparam('prev_hash'),
        hash=sa.bindparam('hash')), updates)


def trigger_sql(dialect):
    """The statements that make audit_event and audit_checkpoint append-only."""
    if dialect == 'postgresql':
        statements = ["""
            CREATE OR REPLACE FUNCTION pdm_refuse_audit_change() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% is append-only: % refused (21 CFR Part 11 §11.10(e))',
                    TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
            END $$"""]
        statements += [f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION pdm_refuse_audit_change()"
                       for table in APPEND_ONLY]
        return statements
    return [f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
            for table in APPEND_ONLY for verb in ("UPDATE", "DELETE")]


def drop_trigger_sql(dialect):
    if dialect == 'postgresql':
        return [f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}"
                for table in APPEND_ONLY] + ["DROP FUNCTION IF EXISTS pdm_refuse_audit_change()"]
    return [f"DROP TRIGGER IF EXISTS {table}_no_{verb}"
            for table in APPEND_ONLY for verb in ("update", "delete")]


def _create_triggers(dialect):
    for statement in trigger_sql(dialect):
        op.execute(statement)


def _drop_triggers(dialect):
    for statement in drop_trigger_sql(dialect):
        op.execute(statement)


def downgrade():
    _drop_triggers(op.get_bind().dialect.name)
    op.drop_table('audit_checkpoint')
    op.drop_table('audit_chain_head')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_audit_event_seq'), type_='unique')
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')
        batch_op.drop_column('seq')
