"""Writes to the provenance ledger. Callers own the transaction: nothing here commits."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from archive_db.models import Agent, Collection, Event, Item, Run
from archive_db.types import utcnow


def _get_or_create(session: Session, model: type, **keys: Any):
    """The row with these unique ``keys``, inserted if missing. Safe when another process inserts
    the same row at the same moment: the insert runs in a savepoint, and if the unique constraint
    refuses it (PostgreSQL waits for the other transaction to end first), the row the other
    process committed is read instead."""
    query = select(model).filter_by(**keys)
    found = session.scalars(query).one_or_none()
    if found is not None:
        return found
    try:
        with session.begin_nested():
            found = model(**keys)
            session.add(found)
    except IntegrityError:
        found = session.scalars(query).one()
    return found


def get_or_create_collection(session: Session, name: str) -> Collection:
    return _get_or_create(session, Collection, name=name)


def get_or_create_agent(session: Session, kind: str, name: str, version: str = "") -> Agent:
    return _get_or_create(session, Agent, kind=kind, name=name, version=version)


def add_event(
    session: Session,
    type: str,
    agent: Agent,
    outcome: str = "success",
    detail: dict[str, Any] | None = None,
    item_id: int | None = None,
    derivative_id: int | None = None,
    run_id: int | None = None,
    item: Item | None = None,
) -> Event:
    """Append an event; pass ``item`` (not yet flushed is fine) or ``item_id``."""
    event = Event(
        type=type,
        agent_id=agent.id,
        outcome=outcome,
        detail=detail,
        item_id=item_id,
        derivative_id=derivative_id,
        run_id=run_id,
        occurred_at=utcnow(),
    )
    if item is not None:  # setting the relationship to None would also clear item_id
        event.item = item
    session.add(event)
    return event


def start_run(
    session: Session,
    flow: str,
    parameters: dict[str, Any],
    code_version: str,
    collection_id: int | None = None,
    flow_run_id: str | None = None,
) -> Run:
    abandon_dead_runs(session, collection_id)
    run = Run(
        flow=flow,
        parameters=parameters,
        code_version=code_version,
        collection_id=collection_id,
        flow_run_id=flow_run_id,
        # So that a later run can tell it died: on this host by its pid, from another by its heartbeat.
        timings={"host": socket.gethostname(), "pid": os.getpid(), "heartbeat": utcnow().isoformat()},
    )
    session.add(run)
    session.flush()
    return run


HEARTBEAT_SECONDS = 60  # a running flow's process records it is alive this often (flows.db.heartbeat)
STALE_AFTER = timedelta(minutes=10)  # ten missed heartbeats: the run's process is gone


def beat(session: Session, run_id: int) -> None:
    """Record that a run's process is alive (while the run is ``running``)."""
    run = session.get(Run, run_id)
    if run is not None and run.status == "running":
        run.timings = (run.timings or {}) | {"heartbeat": utcnow().isoformat()}


def abandon_dead_runs(session: Session, collection_id: int | None) -> list[int]:
    """Mark ``abandoned`` the collection's runs still ``running`` whose process is gone (killed, or
    its machine restarted): they would otherwise stay running for good. On this host a run's pid
    tells; a run started on another host is gone when its heartbeat is older than
    ``STALE_AFTER`` (a run from older code, without one, is left alone)."""
    host, now = socket.gethostname(), utcnow()
    found = []
    for run in session.scalars(
        select(Run).where(Run.status == "running", Run.collection_id == collection_id)
    ):
        where = run.timings or {}
        if where.get("host") == host and isinstance(where.get("pid"), int):
            if _alive(where["pid"]):
                continue
            reason = "its process was gone when a later run started"
        else:
            last = _when(where.get("heartbeat"))
            if last is None or now - last <= STALE_AFTER:
                continue
            reason = f"no heartbeat from {where.get('host')} since {last.isoformat(timespec='seconds')}"
        run.status, run.finished_at = "abandoned", now
        run.timings = where | {"abandoned": reason}
        found.append(run.id)
    return found


def _when(text: Any) -> datetime | None:
    try:
        found = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process of that number: alive
        return True
    return True


def finish_run(session: Session, run_id: int, status: str, counts: dict, timings: dict) -> None:
    run = session.get(Run, run_id)
    run.status, run.counts, run.timings, run.finished_at = (
        status,
        counts,
        (run.timings or {}) | timings,
        utcnow(),
    )


def insert_items(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert many items in one statement; their ids come back in the order of ``rows``."""
    if not rows:
        return []
    stmt = insert(Item).returning(Item.id, sort_by_parameter_order=True)
    return list(session.scalars(stmt, rows))


def insert_rows(session: Session, model: type, rows: list[dict[str, Any]]) -> None:
    """Append many rows (events, duplicates) in one executemany."""
    if rows:
        session.execute(insert(model), rows)


def update_items(session: Session, rows: list[dict[str, Any]]) -> None:
    """Bulk UPDATE of items by primary key; each row holds ``id`` and the columns to set."""
    if rows:
        session.execute(update(Item), rows)
