"""descriptive metadata, derivative review, full-text search

Revision ID: 0002
Revises: 0001

Items get the descriptive fields curators search by (title, description, date as written and its
normalised years, creator, place, subjects, rights) and two columns that triggers keep from
their current derivatives (the restoring model, whether styled), so facets need no join;
derivatives get a review state. Full-text
search uses each database's own facility: an FTS5 table kept by triggers on SQLite, a generated
tsvector column with a GIN index on PostgreSQL. Neither is in the ORM models
(``archive_db.migrate.SEARCH_OBJECTS`` keeps autogenerate from seeing them).
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# What free-text search looks in, in this order (the FTS5 columns, the tsvector's parts).
TEXT_COLUMNS = ("title", "description", "subjects", "place", "creator", "source_key", "make", "model")


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        for name in ("title", "description"):
            batch.add_column(sa.Column(name, sa.Text(), nullable=True))
        batch.add_column(sa.Column("date_text", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("date_from", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("date_to", sa.Integer(), nullable=True))
        for name in ("creator", "place", "subjects", "rights"):
            batch.add_column(sa.Column(name, sa.Text(), nullable=True))
        batch.add_column(sa.Column("restored_model_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("styled", sa.Boolean(), server_default=sa.text("false"), nullable=False))
        batch.create_foreign_key(
            "fk_items_restored_model_id_model_versions", "model_versions", ["restored_model_id"], ["id"]
        )
        facets = ["collection_id", "status", "date_from", "restored_model_id", "styled"]
        batch.create_index("ix_items_facets", facets, unique=False)
        batch.create_index("ix_items_id_facets", ["id", *facets], unique=False)
        batch.create_index(
            "ix_items_dates", ["date_from", "date_to", *(c for c in facets if c != "date_from")], unique=False
        )
    # The widest date range in the catalogue, read from an index: it bounds date-range scans.
    op.execute("CREATE INDEX ix_items_date_span ON items ((date_to - date_from))")
    with op.batch_alter_table("derivatives") as batch:
        batch.add_column(sa.Column("review", sa.String(length=20), nullable=True))
        batch.create_index("ix_derivatives_current_kind", ["is_current", "kind", "item_id"], unique=False)
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_fts()
        _sqlite_current_triggers()
    elif op.get_bind().dialect.name == "postgresql":
        _postgres_fts()
        _postgres_current_triggers()
    op.execute(f"UPDATE items SET {CURRENT_COLUMNS.format(item='items.id')}")


# items.restored_model_id and items.styled, recomputed from the item's current derivatives.
CURRENT_COLUMNS = (
    "restored_model_id = (SELECT d.model_version_id FROM derivatives d WHERE d.item_id = {item} "
    "AND d.kind = 'restored' AND d.is_current), "
    "styled = EXISTS (SELECT 1 FROM derivatives d WHERE d.item_id = {item} AND d.kind LIKE 'style:%' AND d.is_current)"
)


def _sqlite_current_triggers() -> None:
    for name, when, row in (
        ("insert", "AFTER INSERT", "new"),
        ("delete", "AFTER DELETE", "old"),
        ("update", "AFTER UPDATE OF is_current, kind, model_version_id, item_id", "new"),
    ):
        op.execute(
            f"CREATE TRIGGER derivatives_current_{name} {when} ON derivatives BEGIN "
            f"UPDATE items SET {CURRENT_COLUMNS.format(item=row + '.item_id')} WHERE id = {row}.item_id; END"
        )


def _postgres_current_triggers() -> None:
    op.execute(f"""CREATE FUNCTION items_current_derivatives() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE target integer := CASE WHEN TG_OP = 'DELETE' THEN OLD.item_id ELSE NEW.item_id END;
        BEGIN
            UPDATE items SET {CURRENT_COLUMNS.format(item="target")} WHERE id = target;
            RETURN NULL;
        END $$""")
    op.execute(
        "CREATE TRIGGER derivatives_current AFTER INSERT OR DELETE OR UPDATE OF is_current, kind, "
        "model_version_id, item_id ON derivatives FOR EACH ROW EXECUTE FUNCTION items_current_derivatives()"
    )


def _sqlite_fts() -> None:
    cols = ", ".join(TEXT_COLUMNS)
    new = ", ".join(f"new.{c}" for c in TEXT_COLUMNS)
    old = ", ".join(f"old.{c}" for c in TEXT_COLUMNS)
    op.execute(
        f"CREATE VIRTUAL TABLE items_fts USING fts5({cols}, content='items', content_rowid='id', "
        "tokenize='unicode61 remove_diacritics 2')"
    )
    op.execute(
        f"CREATE TRIGGER items_fts_insert AFTER INSERT ON items BEGIN "
        f"INSERT INTO items_fts(rowid, {cols}) VALUES (new.id, {new}); END"
    )
    op.execute(
        f"CREATE TRIGGER items_fts_delete AFTER DELETE ON items BEGIN "
        f"INSERT INTO items_fts(items_fts, rowid, {cols}) VALUES ('delete', old.id, {old}); END"
    )
    op.execute(
        f"CREATE TRIGGER items_fts_update AFTER UPDATE OF {cols} ON items BEGIN "
        f"INSERT INTO items_fts(items_fts, rowid, {cols}) VALUES ('delete', old.id, {old}); "
        f"INSERT INTO items_fts(rowid, {cols}) VALUES (new.id, {new}); END"
    )
    op.execute("INSERT INTO items_fts(items_fts) VALUES ('rebuild')")


def _postgres_fts() -> None:
    # 'simple': no stemming, no stop words; archives hold many languages. Punctuation in keys
    # ("box3/harbour_012.tif") becomes spaces so each part is a word.
    parts = " || ' ' || ".join(
        f"regexp_replace(coalesce({c}, ''), '[^[:alnum:]]+', ' ', 'g')" for c in TEXT_COLUMNS
    )
    op.execute(
        f"ALTER TABLE items ADD COLUMN search_doc tsvector GENERATED ALWAYS AS "
        f"(to_tsvector('simple'::regconfig, {parts})) STORED"
    )
    op.execute("CREATE INDEX ix_items_search_doc ON items USING gin (search_doc)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS items_fts_{trigger}")
            op.execute(f"DROP TRIGGER IF EXISTS derivatives_current_{trigger}")
        op.execute("DROP TABLE IF EXISTS items_fts")
    elif op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS derivatives_current ON derivatives")
        op.execute("DROP FUNCTION IF EXISTS items_current_derivatives()")
        op.execute("DROP INDEX IF EXISTS ix_items_search_doc")
        op.execute("ALTER TABLE items DROP COLUMN IF EXISTS search_doc")
    op.execute("DROP INDEX IF EXISTS ix_items_date_span")
    with op.batch_alter_table("derivatives") as batch:
        batch.drop_index("ix_derivatives_current_kind")
        batch.drop_column("review")
    with op.batch_alter_table("items") as batch:
        for index in ("ix_items_dates", "ix_items_id_facets", "ix_items_facets"):
            batch.drop_index(index)
        batch.drop_constraint("fk_items_restored_model_id_model_versions", type_="foreignkey")
        for name in (
            "styled",
            "restored_model_id",
            "rights",
            "subjects",
            "place",
            "creator",
            "date_to",
            "date_from",
            "date_text",
            "description",
            "title",
        ):
            batch.drop_column(name)
