"""runs whose process died: status abandoned

Revision ID: 0003
Revises: 0002

A run whose process was killed stayed ``running`` for good. The next run of the same flow and
collection now marks it ``abandoned`` (``archive_db.ledger.start_run``), which the runs' status
check must allow.
"""

from alembic import op

from archive_db.migrate import replace_check

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BEFORE = ("running", "completed", "partial", "failed")
AFTER = (*BEFORE, "abandoned")


def _status_check(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    replace_check("runs", "status", f"status IN {old!r}", f"status IN {new!r}")


def upgrade() -> None:
    _status_check(BEFORE, AFTER)


def downgrade() -> None:
    op.execute("UPDATE runs SET status = 'failed' WHERE status = 'abandoned'")
    _status_check(AFTER, BEFORE)
