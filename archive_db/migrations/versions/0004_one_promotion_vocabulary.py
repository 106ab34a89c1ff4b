"""promotion and rollback events: one vocabulary for the CLI and the web catalogue

Revision ID: 0004
Revises: 0003

Two paths moved the ``current`` mark and recorded it two ways. The web catalogue (and now the
CLI too, through ``archive_db.curation.set_current``) puts the event on the version made current,
with ``{kind, version, note, replaced, replaced_version}``. ``archive promote`` used to write
``{to_version, from_version, from_derivative_id}`` and ``archive rollback`` put its event on the
version rolled back *from*, with ``{from_version, to_version, to_derivative_id}``; a rollback read
only the first spelling, so after a promotion made in the web catalogue it went to the wrong
version. This rewrites the old CLI events in the one vocabulary (the rollback's event moves to the
version it made current). Nothing else about the events changes; downgrade writes them back.
"""

import sqlalchemy as sa
from alembic import op

from archive_db.types import JsonType

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

events = sa.table(
    "events",
    sa.column("id", sa.Integer),
    sa.column("type", sa.String),
    sa.column("derivative_id", sa.Integer),
    sa.column("detail", JsonType),
)
derivatives = sa.table("derivatives", sa.column("id", sa.Integer), sa.column("kind", sa.String))


def _moves(conn):
    query = (
        sa.select(events.c.id, events.c.type, events.c.derivative_id, events.c.detail, derivatives.c.kind)
        .join(derivatives, derivatives.c.id == events.c.derivative_id)
        .where(events.c.type.in_(("promotion", "rollback")))
    )
    return conn.execute(query).all()


def upgrade() -> None:
    conn = op.get_bind()
    for id_, type_, derivative_id, detail, kind in _moves(conn):
        detail = detail or {}
        if "to_version" not in detail:  # the web catalogue's spelling already
            continue
        if type_ == "promotion":
            made_current, replaced = derivative_id, detail.get("from_derivative_id")
        else:
            made_current, replaced = detail.get("to_derivative_id"), derivative_id
        new = {
            "kind": kind,
            "version": detail["to_version"],
            "note": "",
            "replaced": replaced,
            "replaced_version": detail.get("from_version"),
        }
        conn.execute(events.update().where(events.c.id == id_).values(derivative_id=made_current, detail=new))


def downgrade() -> None:
    conn = op.get_bind()
    for id_, type_, derivative_id, detail, _kind in _moves(conn):
        detail = detail or {}
        if "replaced_version" not in detail or detail.get("note"):  # a curator's move: kept as it is
            continue
        if type_ == "promotion":
            old = {
                "to_version": detail["version"],
                "from_version": detail["replaced_version"],
                "from_derivative_id": detail["replaced"],
            }
            conn.execute(events.update().where(events.c.id == id_).values(detail=old))
        elif detail.get("replaced") is not None:
            old = {
                "from_version": detail["replaced_version"],
                "to_version": detail["version"],
                "to_derivative_id": derivative_id,
            }
            conn.execute(
                events.update().where(events.c.id == id_).values(derivative_id=detail["replaced"], detail=old)
            )
