"""model versions that enlarge: task upscale

Revision ID: 0006
Revises: 0005

Enlargement (super-resolution) is a derivative operation with its own models: a model version's
task may now be ``upscale`` as well as ``restore`` and ``style``. Downgrade refuses while an
upscale model is registered (its derivatives would point at a version the old code cannot read).
"""

from alembic import op

from archive_db.migrate import replace_check

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BEFORE = "task IN ('restore', 'style')"
AFTER = "task IN ('restore', 'style', 'upscale')"


def upgrade() -> None:
    replace_check("model_versions", "task", BEFORE, AFTER)


def downgrade() -> None:
    found = (
        op.get_bind().exec_driver_sql("SELECT count(*) FROM model_versions WHERE task = 'upscale'").scalar()
    )
    if found:
        raise RuntimeError(
            f"{found} upscale model version(s) are registered: the old catalogue has no such task"
        )
    replace_check("model_versions", "task", AFTER, BEFORE)
