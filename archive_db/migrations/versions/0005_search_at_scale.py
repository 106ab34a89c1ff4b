"""search at scale: a packed facet key, the date sort's order, and a sample of the items

Revision ID: 0005
Revises: 0004

A search's facets count the matching items by collection, status, decade, restoring model and
whether styled. Grouped by those five columns, SQLite spends about 65 ms per 50,000 matches;
grouped by one integer that packs them (``items.facet_key``), read with the item id from one
covering index, which also holds the dates and the restoring model, about half that.
``archive_db.search.unpack_facet_key`` unpacks it.

PostgreSQL computes the key as a stored generated column. SQLite cannot add a stored generated
column to an existing table, so triggers keep it (after an insert, and after an update of any of
its parts, including the updates the derivative triggers of 0002 make). A later migration that
rebuilds the items table on SQLite (a batch operation) must make these triggers again.

Two more indexes: the date sort's expression with the id (a date-sorted page walks it and stops
after a page of matches), and on PostgreSQL a partial index of one item in 16 (by a hash of the
id), the sample a large full-text search's facets are estimated from (archive_db.search).
Like the full-text objects, none of these is in the ORM models.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Bits, low to high: styled (1), restoring model id + 1 (20; 0: none), decade code (15: the
# database's truncating date_from / 10, plus 10001; 0: undated), status (3: 1 ingested,
# 2 quarantined, 0 other), collection id (the rest). The same 64-bit arithmetic on both databases.
FACET_KEY = (
    "(CAST(collection_id AS BIGINT) * 549755813888"
    " + CAST(CASE status WHEN 'ingested' THEN 1 WHEN 'quarantined' THEN 2 ELSE 0 END AS BIGINT) * 68719476736"
    " + CAST(CASE WHEN date_from IS NULL THEN 0 ELSE date_from / 10 + 10001 END AS BIGINT) * 2097152"
    " + CAST(COALESCE(restored_model_id, -1) + 1 AS BIGINT) * 2"
    " + CASE WHEN styled THEN 1 ELSE 0 END)"
)
NO_DATE = 99999  # archive_db.search's: undated items sort after dated ones
PARTS = "collection_id, status, date_from, restored_model_id, styled"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE items ADD COLUMN facet_key bigint GENERATED ALWAYS AS {FACET_KEY} STORED")
    else:
        op.execute("ALTER TABLE items ADD COLUMN facet_key INTEGER")
        op.execute(f"UPDATE items SET facet_key = {FACET_KEY}")
        for name, when in (("insert", "AFTER INSERT"), ("update", f"AFTER UPDATE OF {PARTS}")):
            op.execute(
                f"CREATE TRIGGER items_facet_key_{name} {when} ON items BEGIN "
                f"UPDATE items SET facet_key = {FACET_KEY} WHERE id = new.id; END"
            )
    # With the columns a text search's other filters and its date sort read, so that its pages
    # and its facets are read from this index alone, and the table only for the page's items.
    op.execute(
        "CREATE INDEX ix_items_facet_key ON items (id, facet_key, date_from, date_to, restored_model_id)"
    )
    # The date sort's own order (undated items last), so a search sorted by date can walk it and
    # stop at a page's worth of matches instead of sorting them all.
    op.execute(f"CREATE INDEX ix_items_date_order ON items ((COALESCE(date_from, {NO_DATE})), id)")
    if op.get_bind().dialect.name == "postgresql":
        # One item in 16, by a hash of its id: the sample PostgreSQL estimates a large full-text
        # search's facets from (archive_db.search.SAMPLED reads the same condition).
        op.execute("CREATE INDEX ix_items_sample ON items (id) WHERE (hashint4(id) & 15) = 0")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_items_sample")
    op.execute("DROP INDEX IF EXISTS ix_items_date_order")
    op.execute("DROP INDEX IF EXISTS ix_items_facet_key")
    if op.get_bind().dialect.name != "postgresql":
        for name in ("insert", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS items_facet_key_{name}")
    op.execute("ALTER TABLE items DROP COLUMN facet_key")
