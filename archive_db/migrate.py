"""Apply the Alembic migrations programmatically (``archive db upgrade`` and the tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")
# Search objects the migrations make per database (FTS5 tables, the tsvector column, the facet key
# and its index): not in the ORM models, so autogenerate must not see them.
SEARCH_OBJECTS = (
    "items_fts",
    "search_doc",
    "ix_items_search_doc",
    "ix_items_date_span",
    "facet_key",
    "ix_items_facet_key",
    "ix_items_date_order",
    "ix_items_sample",
)


def include_object(obj, name: str | None, type_: str, reflected: bool, compare_to) -> bool:
    """Alembic's filter: everything but the search objects."""
    return not (reflected and name and name.startswith(SEARCH_OBJECTS))


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def is_up_to_date(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()


def replace_check(table: str, name: str, old: str, new: str) -> None:
    """In a migration: replace the CHECK constraint ``ck_<table>_<name>`` (``old``) with ``new``.

    On SQLite the CHECK is rewritten in the table's stored definition. Recreating the table
    (Alembic's batch mode) fails on a catalogue whose rows are referenced from other tables:
    SQLite's foreign keys are on, and cannot be turned off inside the migration's transaction. A
    CHECK constraint is not part of the stored rows, so SQLite documents editing the schema text
    for such changes ("Making Other Kinds Of Table Schema Changes",
    https://www.sqlite.org/lang_altertable.html)."""
    from alembic import op

    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        op.drop_constraint(op.f(f"ck_{table}_{name}"), table, type_="check")
        op.create_check_constraint(op.f(f"ck_{table}_{name}"), table, new)
        return
    sql = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar()
    if old not in sql:
        raise RuntimeError(f"the {table} table's definition lacks the expected CHECK ({old})")
    version = conn.exec_driver_sql("PRAGMA schema_version").scalar()
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    conn.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", (sql.replace(old, new), table)
    )
    conn.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    conn.exec_driver_sql("PRAGMA writable_schema = OFF")
