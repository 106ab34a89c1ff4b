"""Engines and sessions. SQLite gets WAL, foreign keys and a busy timeout on every connection."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, echo: bool = False) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT; SQLAlchemy's documented fix is to
    # turn it off here and emit BEGIN ourselves (see _sqlite_begin).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    # A catalogue of a million items is a few hundred MB: SQLite's default 2 MB page cache makes
    # every search re-read its indexes from the OS.
    cur.execute("PRAGMA cache_size=-131072")  # 128 MiB
    cur.execute("PRAGMA mmap_size=1073741824")
    cur.close()


# A connection execution option: begin SQLite's transaction IMMEDIATE, taking the database's
# writer lock at once (``archive_db.derivatives.version_lock``), not at the first write.
IMMEDIATE = "sqlite_immediate"


def write_first(session: Session) -> Session:
    """Call first in a transaction that reads, then writes. On SQLite it begins IMMEDIATE: a
    deferred transaction that read before another process committed cannot take the writer lock
    ("database is locked" at once, whatever the busy timeout); an immediate one waits its turn."""
    session.connection(execution_options={IMMEDIATE: True})
    return session


def exclusive(session: Session, *what: object) -> None:
    """Call first in a transaction: until it ends, no other transaction that asks for the same
    ``what`` (across processes) runs. PostgreSQL: a transaction-level advisory lock keyed by
    ``what``, released when the transaction ends or its process dies; SQLite: the database's
    writer lock, taken at BEGIN (IMMEDIATE), which every writer shares."""
    import hashlib

    from sqlalchemy import text

    write_first(session)
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.sha256(" ".join(map(str, what)).encode()).digest()
        session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"),
            {"key": int.from_bytes(digest[:8], "big", signed=True)},
        )


def _sqlite_begin(conn) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(IMMEDIATE) else "BEGIN")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
