"""runs whose process died: status abandoned

Revision ID: 0003
Revises: 0002

A run whose process was killed stayed ``running`` for good. The next run of the same flow and
collection now marks it ``abandoned`` (``archive_db.ledger.start_run``), which the runs' status
check must allow.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BEFORE = ("running", "completed", "partial", "failed")
AFTER = (*BEFORE, "abandoned")


def _status_check(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_check(f"status IN {old!r}", f"status IN {new!r}")
        return
    op.drop_constraint(op.f("ck_runs_status"), "runs", type_="check")
    op.create_check_constraint(op.f("ck_runs_status"), "runs", f"status IN {new!r}")


def _sqlite_check(old: str, new: str) -> None:
    """Rewrite the CHECK in the table's stored definition. Recreating the table (Alembic's batch
    mode) fails on a catalogue whose events and derivatives reference its runs: SQLite's foreign
    keys are on, and cannot be turned off inside the migration's transaction. A CHECK constraint
    is not part of the stored rows, so SQLite documents editing the schema text for such changes
    ("Making Other Kinds Of Table Schema Changes", https://www.sqlite.org/lang_altertable.html)."""
    conn = op.get_bind()
    sql = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'runs'"
    ).scalar()
    if old not in sql:
        raise RuntimeError(f"the runs table's definition lacks the expected CHECK ({old})")
    version = conn.exec_driver_sql("PRAGMA schema_version").scalar()
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    conn.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'runs'", (sql.replace(old, new),)
    )
    conn.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    conn.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    _status_check(BEFORE, AFTER)


def downgrade() -> None:
    op.execute("UPDATE runs SET status = 'failed' WHERE status = 'abandoned'")
    _status_check(AFTER, BEFORE)
