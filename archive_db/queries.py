"""Read queries for flows and the CLI. They take a Session and never commit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from archive_db.models import MAX_ID, Collection, Derivative, Duplicate, Event, Item, ModelVersion


def collection_by_name(session: Session, name: str) -> Collection | None:
    return session.scalars(select(Collection).where(Collection.name == name)).one_or_none()


def known_sources(session: Session, collection_id: int) -> dict[str, tuple[str | None, int]]:
    """Every catalogued source key of a collection (items and duplicates) -> (etag, item id)."""
    rows = session.execute(
        select(Item.source_key, Item.etag, Item.id).where(Item.collection_id == collection_id)
    ).all()
    dups = session.execute(
        select(Duplicate.source_key, Duplicate.etag, Duplicate.item_id).where(
            Duplicate.collection_id == collection_id
        )
    ).all()
    return {key: (etag, item_id) for key, etag, item_id in [*rows, *dups]}


def keys_lacking_thumbnails(session: Session, collection_id: int) -> set[str]:
    """Source keys of ingested items without a thumbnail (its write failed): the next ingest
    fetches them again, unchanged as they are, to make it."""
    query = select(Item.source_key).where(
        Item.collection_id == collection_id, Item.status == "ingested", Item.thumbnail_key.is_(None)
    )
    return set(session.scalars(query))


def _by_column(session: Session, model: type, column, collection_id: int, values: Iterable[str]) -> dict:
    """Rows of ``model`` in a collection whose ``column`` is one of ``values``, keyed by it."""
    values = sorted(set(values))
    found = {}
    for start in range(0, len(values), 500):  # stay under bind-parameter limits
        chunk = values[start : start + 500]
        query = select(model).where(model.collection_id == collection_id, column.in_(chunk))
        found |= {getattr(row, column.key): row for row in session.scalars(query)}
    return found


def items_by_sha256(session: Session, collection_id: int, digests: Iterable[str]) -> dict[str, Item]:
    return _by_column(session, Item, Item.sha256, collection_id, digests)


def items_by_key(session: Session, collection_id: int, keys: Iterable[str]) -> dict[str, Item]:
    return _by_column(session, Item, Item.source_key, collection_id, keys)


def duplicates_by_key(session: Session, collection_id: int, keys: Iterable[str]) -> dict[str, Duplicate]:
    return _by_column(session, Duplicate, Duplicate.source_key, collection_id, keys)


@dataclass(frozen=True)
class CollectionSummary:
    name: str
    items: int
    ingested: int
    quarantined: int
    duplicates: int
    bytes: int
    created_at: object


def collection_summaries(session: Session) -> list[CollectionSummary]:
    dup_counts = (
        select(Duplicate.collection_id, func.count().label("n")).group_by(Duplicate.collection_id).subquery()
    )
    query = (
        select(
            Collection.name,
            func.count(Item.id),
            func.count(Item.id).filter(Item.status == "ingested"),
            func.count(Item.id).filter(Item.status == "quarantined"),
            func.coalesce(func.max(dup_counts.c.n), 0),
            func.coalesce(func.sum(Item.size), 0),
            Collection.created_at,
        )
        .outerjoin(Item, Item.collection_id == Collection.id)
        .outerjoin(dup_counts, dup_counts.c.collection_id == Collection.id)
        .group_by(Collection.id)
        .order_by(Collection.name)
    )
    return [CollectionSummary(*row) for row in session.execute(query)]


def find_item(session: Session, ref: str) -> Item | None:
    """An item by numeric id, by sha256 (or a unique prefix of 8+ hex digits), or by 'collection/key'."""
    if ref.isdigit() and int(ref) <= MAX_ID:
        return session.get(Item, int(ref))
    lowered = ref.lower()
    if len(ref) >= 8 and all(c in "0123456789abcdef" for c in lowered):
        hits = session.scalars(select(Item).where(Item.sha256.startswith(lowered)).limit(2)).all()
        if len(hits) == 1:
            return hits[0]
    collection, _, key = ref.partition("/")
    if key:
        query = select(Item).join(Collection).where(Collection.name == collection, Item.source_key == key)
        return session.scalars(query).one_or_none()
    return None


def run_events(
    session: Session, run_id: int, event_type: str, item_ids: list[int]
) -> list[tuple[int, str, dict | None]]:
    """(item id, outcome, detail) of a run's events of one type on the given items, in order."""
    query = (
        select(Event.item_id, Event.outcome, Event.detail)
        .where(Event.run_id == run_id, Event.type == event_type, Event.item_id.in_(item_ids))
        .order_by(Event.id)
    )
    return [tuple(row) for row in session.execute(query)]


def items_by_id(session: Session, item_ids: list[int]) -> list[Item]:
    """The items with these ids, in id order."""
    return list(session.scalars(select(Item).where(Item.id.in_(item_ids)).order_by(Item.id)))


def masters_to_read(
    session: Session, item_ids: list[int]
) -> list[tuple[int, str, str, str, str, int | None]]:
    """(id, collection name, source URI, key, sha256, EXIF orientation) of the ingested ``item_ids``."""
    query = (
        select(Item.id, Collection.name, Item.source_uri, Item.source_key, Item.sha256, Item.orientation)
        .join(Collection, Collection.id == Item.collection_id)
        .where(Item.id.in_(item_ids), Item.status == "ingested")
        .order_by(Item.id)
    )
    return [tuple(r) for r in session.execute(query)]


def item_events(session: Session, item_id: int) -> list[Event]:
    query = select(Event).where(Event.item_id == item_id).order_by(Event.occurred_at, Event.id)
    return list(session.scalars(query))


def items_for_audit(session: Session, collection_id: int) -> list[tuple[int, str, str, str]]:
    """(id, source_uri, source_key, sha256) of every master in a collection, by id."""
    query = (
        select(Item.id, Item.source_uri, Item.source_key, Item.sha256)
        .where(Item.collection_id == collection_id)
        .order_by(Item.id)
    )
    return [tuple(row) for row in session.execute(query)]


def derivatives_for_audit(session: Session, collection_id: int) -> list[tuple[int, str, str, int]]:
    """(item id, storage uri, sha256, derivative id) of every recorded derivative of a collection."""
    query = (
        select(Derivative.item_id, Derivative.storage_uri, Derivative.sha256, Derivative.id)
        .join(Item, Item.id == Derivative.item_id)
        .where(Item.collection_id == collection_id)
        .order_by(Derivative.item_id, Derivative.id)
    )
    return [tuple(row) for row in session.execute(query)]


def model_versions(session: Session, task: str | None = None) -> list[ModelVersion]:
    query = select(ModelVersion).order_by(ModelVersion.task, ModelVersion.name, ModelVersion.created_at)
    if task:
        query = query.where(ModelVersion.task == task)
    return list(session.scalars(query))


def resolve_model(session: Session, ref: str) -> ModelVersion | None:
    """``TASK@production``, ``TASK@VERSION``, ``NAME@production`` or ``NAME@VERSION``: one version.

    Returns None when nothing matches; raises LookupError when the reference is ambiguous.
    """
    who, _, which = ref.partition("@")
    if not which:
        raise LookupError(f"model reference {ref!r} must be NAME@VERSION or TASK@production")
    query = select(ModelVersion).where((ModelVersion.task == who) | (ModelVersion.name == who))
    query = (
        query.where(ModelVersion.status == "production")
        if which == "production"
        else query.where(ModelVersion.version == which)
    )
    found = list(session.scalars(query.limit(2)))
    if len(found) > 1:
        raise LookupError(f"model reference {ref!r} matches several versions; name the model: NAME@{which}")
    return found[0] if found else None


def events_since(
    session: Session, since, types: list[str] | None = None, collection: str | None = None, limit: int = 200
) -> list[Event]:
    """Events from ``since`` on, oldest first (at most ``limit``)."""
    query = select(Event).where(Event.occurred_at >= since)
    if types:
        query = query.where(Event.type.in_(types))
    if collection:
        query = (
            query.join(Item, Item.id == Event.item_id).join(Collection).where(Collection.name == collection)
        )
    return list(session.scalars(query.order_by(Event.occurred_at, Event.id).limit(limit)))


def export_page(
    session: Session,
    *,
    collection_id: int | None = None,
    item_ids: list[int] | None = None,
    run_id: int | None = None,
    after_id: int = 0,
    limit: int = 200,
) -> list[Item]:
    """The next page (by id, after ``after_id``) of the items an export takes: a collection's, the
    ones listed, or those a run touched (it recorded an event on them)."""
    query = select(Item).where(Item.id > after_id)
    if collection_id is not None:
        query = query.where(Item.collection_id == collection_id)
    if item_ids is not None:
        query = query.where(Item.id.in_(item_ids))
    if run_id is not None:
        query = query.where(Item.id.in_(select(Event.item_id).where(Event.run_id == run_id)))
    return list(session.scalars(query.order_by(Item.id).limit(limit)))
