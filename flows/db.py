"""One engine per database URL per process, created on first use (never at import)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, inspect
from sqlalchemy.orm import Session, sessionmaker

from archive_db.engine import make_engine, session_factory, write_first
from archive_db.migrate import current_revision, head_revision, upgrade
from flows.errors import ConfigError


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    try:
        engine = make_engine(url)
        if engine.url.get_backend_name() == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)  # a new catalogue's folder
        return engine
    except Exception as exc:
        raise ConfigError(f"invalid database URL: {exc}") from None


@lru_cache(maxsize=8)
def sessions_for(url: str) -> sessionmaker[Session]:
    return session_factory(engine_for(url))


@contextmanager
def writing(url: str) -> Iterator[Session]:
    """A transaction that reads, then writes, committed at the end. On SQLite it takes the writer
    lock at BEGIN (``archive_db.engine.write_first``): with another process writing, a deferred
    one fails with "database is locked" the moment it first writes."""
    with sessions_for(url).begin() as session:
        yield write_first(session)


def ensure_schema(url: str, create: bool = True) -> None:
    """Fail clearly on an outdated catalogue; build an empty one when ``create`` is set."""
    engine = engine_for(url)
    try:
        revision = current_revision(engine)
        empty = revision is None and not inspect(engine).get_table_names()
    except Exception as exc:
        raise ConfigError(f"cannot open the catalogue at {engine.url!r}: {exc}".splitlines()[0]) from None
    if revision == head_revision():
        return
    if empty and create:
        upgrade(engine)
        return
    if empty:
        raise ConfigError(
            f"there is no catalogue at {engine.url!r} yet: run `archive db upgrade` or ingest first"
        )
    raise ConfigError(
        f"the catalogue at {engine.url!r} is at revision {revision or 'none'}, "
        f"not {head_revision()}: run `archive db upgrade`"
    )


@contextmanager
def heartbeat(url: str, run_id: int, every: float | None = None) -> Iterator[None]:
    """While the block runs, record every ``every`` seconds that run ``run_id``'s process is alive
    (``archive_db.ledger.beat``): a run on another host whose heartbeats stopped is marked
    abandoned by the next run there. A failed beat is logged, never the run's failure."""
    import logging
    import threading

    from archive_db import ledger

    every = ledger.HEARTBEAT_SECONDS if every is None else every
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            try:
                with writing(url) as session:
                    ledger.beat(session, run_id)
            except Exception as exc:  # the catalogue is briefly unreachable: the next beat may do
                logging.getLogger(__name__).warning("run %s: heartbeat not recorded: %s", run_id, exc)

    thread = threading.Thread(target=beat, name=f"heartbeat-run-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def collection_named(session: Session, name: str):
    """The catalogue's collection ``name``; NotFound (one line for the CLI) when there is none."""
    from archive_db.queries import collection_by_name
    from flows.errors import NotFound

    found = collection_by_name(session, name)
    if found is None:
        raise NotFound(f"no collection {name!r} in the catalogue (see `archive collections`)")
    return found
