"""What the catalogue-scale benchmarks share: bulk loading rows in chunks (COPY on PostgreSQL,
executemany on SQLite) and running one measurement on SQLite, then on a throwaway PostgreSQL."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Iterator

from sqlalchemy import insert

from archive_db.models import Derivative, Item

CHUNK = 50_000
MODELS = {"items": Item, "derivatives": Derivative}


def load(
    engine, n: int, tables: list[tuple[str, tuple[str, ...], Callable[[int, int], Iterator[tuple]]]]
) -> None:
    """Insert ids 1..n: for each chunk, each (table, columns, rows(start, stop)) in turn; then ANALYZE."""
    postgres = engine.dialect.name == "postgresql"
    for start in range(1, n + 1, CHUNK):
        stop = min(start + CHUNK, n + 1)
        for table, cols, rows in tables:
            if postgres:
                with engine.raw_connection() as raw:
                    with (
                        raw.cursor() as cur,
                        cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy,
                    ):
                        for row in rows(start, stop):
                            copy.write_row(row)
                    raw.commit()
            else:
                with engine.begin() as conn:
                    conn.execute(
                        insert(MODELS[table]),
                        [dict(zip(cols, row, strict=True)) for row in rows(start, stop)],
                    )
    with engine.begin() as conn:
        if postgres:
            conn.exec_driver_sql("SELECT setval('items_id_seq', (SELECT max(id) FROM items))")
        else:
            conn.exec_driver_sql("ANALYZE")
    if postgres:  # what autovacuum does soon after a bulk load: statistics, and the visibility map
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:  # for index-only scans
            conn.exec_driver_sql("VACUUM ANALYZE")


def on_each_database(doc: str, measure: Callable[[str, str, int], None]) -> int:
    """The benchmark's command line: ``--items N`` on SQLite, then PostgreSQL unless ``--no-postgres``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        measure("SQLite", f"sqlite:///{tmp}/catalogue.db", args.items)
    if not args.no_postgres:
        from tests.services import new_pg_database, throwaway_postgres

        try:
            with throwaway_postgres() as server:
                measure("PostgreSQL", new_pg_database(server), args.items)
        except FileNotFoundError as exc:
            print(f"PostgreSQL: skipped ({exc})")
    return 0
