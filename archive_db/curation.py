"""Curators' writes and the lineage view. Every change is an event naming who made it, with the
old and new values; nothing here commits (the caller owns the transaction)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive_db.dates import normalise_date
from archive_db.derivatives import derivatives_by_model, item_derivatives, make_current
from archive_db.ledger import add_event
from archive_db.models import (
    DESCRIPTIVE_FIELDS,
    MOVES,
    REVIEW_STATES,
    Agent,
    Derivative,
    Event,
    Item,
    ModelVersion,
)


class CurationError(ValueError):
    """A curator's request that cannot be applied (unknown field, bad review state ...)."""


def update_metadata(
    session: Session,
    item: Item,
    values: dict[str, str | None],
    agent: Agent,
    source: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Set descriptive fields of ``item``; returns {field: {old, new}} of what really changed,
    recorded as one ``metadata modification`` event (none when nothing changed)."""
    unknown = set(values) - set(DESCRIPTIVE_FIELDS)
    if unknown:
        raise CurationError(f"unknown descriptive fields: {', '.join(sorted(unknown))}")
    changes = {}
    for name, new in values.items():
        new = (new or "").strip() or None
        old = getattr(item, name)
        if new != old:
            changes[name] = {"old": old, "new": new}
            setattr(item, name, new)
    if "date_text" in changes:
        item.date_from, item.date_to = normalise_date(item.date_text)
        changes["date_text"]["range"] = [item.date_from, item.date_to]
    if changes:
        add_event(
            session, "metadata modification", agent, detail={"changes": changes, **(source or {})}, item=item
        )
    return changes


def review(session: Session, derivative: Derivative, state: str, note: str, agent: Agent) -> Event:
    """Mark a derivative version approved or rejected, with the curator's note."""
    if state not in REVIEW_STATES:
        raise CurationError(f"review must be one of {', '.join(REVIEW_STATES)}, not {state!r}")
    old, derivative.review = derivative.review, state
    detail = {
        "review": state,
        "previous": old,
        "note": note.strip(),
        "kind": derivative.kind,
        "version": derivative.version,
    }
    return add_event(
        session, "review", agent, detail=detail, item_id=derivative.item_id, derivative_id=derivative.id
    )


def set_current(session: Session, derivative: Derivative, agent: Agent, note: str = "") -> Event:
    """Make ``derivative`` the current version of its kind: a ``promotion`` when it is newer than
    the one it replaces, a ``rollback`` when older. Refused if it is current already. The one
    implementation behind the web catalogue's button and ``archive promote``/``rollback``: the
    event is on the version made current, and names the version it replaced (``replaced``,
    ``replaced_version``), so either path can undo the other's move."""
    if derivative.is_current:
        raise CurationError(f"{derivative.kind} v{derivative.version} is already the current version")
    previous = make_current(session, derivative)
    action = "rollback" if previous is not None and previous.version > derivative.version else "promotion"
    detail = {
        "kind": derivative.kind,
        "version": derivative.version,
        "note": note.strip(),
        "replaced": previous.id if previous else None,
        "replaced_version": previous.version if previous else None,
    }
    return add_event(
        session, action, agent, detail=detail, item_id=derivative.item_id, derivative_id=derivative.id
    )


def replaced_by(session: Session, derivative: Derivative) -> Derivative | None:
    """The version ``derivative`` replaced when it was last made current (by whichever path), or,
    never made current by a person, the latest earlier version of its kind."""
    moved = session.scalars(
        select(Event)
        .where(Event.type.in_(MOVES), Event.derivative_id == derivative.id)
        .order_by(Event.id.desc())
        .limit(1)
    ).one_or_none()
    if moved is not None and (moved.detail or {}).get("replaced"):
        return session.get(Derivative, moved.detail["replaced"])
    earlier = (
        select(Derivative)
        .where(
            Derivative.item_id == derivative.item_id,
            Derivative.kind == derivative.kind,
            Derivative.version < derivative.version,
        )
        .order_by(Derivative.version.desc())
        .limit(1)
    )
    return session.scalars(earlier).one_or_none()


def promote_model(session: Session, collection_id: int, kind: str, model: ModelVersion, agent: Agent) -> int:
    """Make current, for each item of the collection, the newest ``kind`` version ``model`` made;
    returns how many changed (a ``promotion`` event each)."""
    moved = 0
    for d in _latest_per_item(derivatives_by_model(session, collection_id, kind, model.id)):
        if not d.is_current:
            set_current(session, d, agent)
            moved += 1
    return moved


def rollback_model(session: Session, collection_id: int, kind: str, model: ModelVersion, agent: Agent) -> int:
    """Where ``model``'s version is current, make current again the version it replaced; returns
    how many changed (a ``rollback`` event each, on the version made current again)."""
    moved = 0
    for d in _latest_per_item(derivatives_by_model(session, collection_id, kind, model.id)):
        target = replaced_by(session, d) if d.is_current else None
        if target is not None:
            set_current(session, target, agent)
            moved += 1
    return moved


def _latest_per_item(derivatives: list[Derivative]) -> list[Derivative]:
    """One version per item: the newest a model made (a style restyled after a newer restored
    version became current has two versions by the same model; promotion means the newer)."""
    latest: dict[int, Derivative] = {}
    for d in derivatives:
        if d.item_id not in latest or d.version > latest[d.item_id].version:
            latest[d.item_id] = d
    return list(latest.values())


def lineage(session: Session, item: Item) -> dict[str, Any]:
    """The item as a tree: the master, then each derivative version under its parent (the master
    or another derivative), with its recipe, model and events."""
    derivatives = item_derivatives(session, item.id)
    models = {
        m.id: m
        for m in session.scalars(
            select(ModelVersion).where(
                ModelVersion.id.in_({d.model_version_id for d in derivatives if d.model_version_id})
            )
        )
    }
    events: dict[int | None, list[Event]] = {}
    query = select(Event).where(Event.item_id == item.id).order_by(Event.occurred_at, Event.id)
    for event in session.scalars(query):
        events.setdefault(event.derivative_id, []).append(event)
    nodes = {d.id: _node(d, models.get(d.model_version_id), events.get(d.id, [])) for d in derivatives}
    root = {
        "type": "master",
        "id": item.id,
        "sha256": item.sha256,
        "source_uri": item.source_uri,
        "source_key": item.source_key,
        "status": item.status,
        "events": [event_dict(e) for e in events.get(None, [])],
        "children": [],
    }
    for d in derivatives:
        parent = nodes.get(d.parent_id, root) if d.parent_id else root
        parent["children"].append(nodes[d.id])
    return root


def _node(d: Derivative, model: ModelVersion | None, events: list[Event]) -> dict[str, Any]:
    return {
        "type": "derivative",
        "id": d.id,
        "kind": d.kind,
        "version": d.version,
        "current": d.is_current,
        "review": d.review,
        "sha256": d.sha256,
        "storage_uri": d.storage_uri,
        "recipe_hash": d.recipe_hash,
        "recipe": d.recipe,
        "model": f"{model.name}@{model.version}" if model else None,
        "model_weights_sha256": model.weights_sha256 if model else None,
        "created_at": d.created_at.isoformat(),
        "events": [event_dict(e) for e in events],
        "children": [],
    }


def event_dict(e: Event) -> dict[str, Any]:
    """An event as plain data: for the lineage tree, the item page, the API and ``archive events``."""
    agent = e.agent
    return {
        "id": e.id,
        "type": e.type,
        "at": e.occurred_at.isoformat(),
        "outcome": e.outcome,
        "agent": f"{agent.name} {agent.version}".strip(),
        "agent_kind": agent.kind,
        "item_id": e.item_id,
        "derivative_id": e.derivative_id,
        "detail": e.detail,
    }
