"""Derivatives: recipes, the selection of work to do, version numbers and the current version.

A recipe says *what* makes a derivative: the operation, the kind of output, the model version
(by name, version and weights sha256) and the parameters that change the result. Its hash is the
identity used by the catalogue (unique per item and kind): running a recipe twice is a no-op.
How it ran (device, tile size, batch) is provenance, kept in the row's recipe detail and the
sidecar, but is not part of the hash: the same recipe on a CPU or a GPU is the same derivative.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, null, select, update
from sqlalchemy.orm import Session, aliased

from archive_db.engine import exclusive
from archive_db.models import Derivative, Item, ModelVersion


@dataclass(frozen=True)
class Recipe:
    operation: str  # "restore" or "style"
    kind: str  # the derivative kind: "restored", "style:albumen", ...
    model: str  # "name@version"
    weights_sha256: str
    params: dict[str, Any] = field(default_factory=dict)

    def canonical(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()


# A curator's corrected damage mask for an item: versioned and immutable like any derivative, no
# model (drawn by a person), its recipe hash the mask file's sha256 (the same mask twice is one).
MASK_KIND = "mask"


def masked_hash(recipe_hash: str, mask_sha256: str) -> str:
    """The recipe hash of a version made with a curator's mask: the recipe's with the mask's, so a
    new mask makes new work and the same mask again does not."""
    return hashlib.sha256(f"{recipe_hash}+mask:{mask_sha256}".encode()).hexdigest()


def current_masks(session: Session, item_ids: list[int]) -> dict[int, Derivative]:
    """The current curator's mask of each of ``item_ids`` that has one."""
    if not item_ids:
        return {}
    query = select(Derivative).where(
        Derivative.item_id.in_(item_ids), Derivative.kind == MASK_KIND, Derivative.is_current
    )
    return {d.item_id: d for d in session.scalars(query)}


def made_hashes(session: Session, item_ids: list[int], kind: str) -> set[tuple[int, str]]:
    """(item id, recipe hash) of every ``kind`` derivative of ``item_ids``."""
    if not item_ids:
        return set()
    query = select(Derivative.item_id, Derivative.recipe_hash).where(
        Derivative.item_id.in_(item_ids), Derivative.kind == kind
    )
    return set(session.execute(query).all())


def derivative_by_recipe(session: Session, item_id: int, kind: str, recipe_hash: str) -> Derivative | None:
    query = select(Derivative).where(
        Derivative.item_id == item_id, Derivative.kind == kind, Derivative.recipe_hash == recipe_hash
    )
    return session.scalars(query).one_or_none()


def items_needing(
    session: Session,
    collection_id: int,
    kind: str,
    recipe_hash: str,
    after_id: int = 0,
    limit: int | None = None,
    with_masks: bool = False,
    stale_of: ModelVersion | None = None,
    until_id: int | None = None,
) -> list[tuple[int, str, str, int, int]]:
    """Ingested items of a collection without a derivative of ``kind`` made by the recipe, as
    (id, source key, sha256, width, height), in id order from ``after_id`` (keyset paging).

    ``with_masks`` (a recipe whose model takes a curator's mask): an item with a current mask
    needs the version made with that mask (:func:`masked_hash`), not the plain recipe's.
    ``stale_of`` (a reprocess): only items whose current ``kind`` version that model's name made
    in an older version (:func:`stale_items`). ``until_id``: only items up to that id (a window)."""
    window = _window(Derivative.item_id, after_id, until_id)
    done = exists().where(
        Derivative.item_id == Item.id, Derivative.kind == kind, Derivative.recipe_hash == recipe_hash, *window
    )
    columns = (Item.id, Item.source_key, Item.sha256, Item.width, Item.height)
    where: tuple = (
        Item.collection_id == collection_id,
        Item.status == "ingested",
        *_window(Item.id, after_id, until_id),
    )
    if stale_of is not None:
        where += (_stale(kind, stale_of, window),)
    masked = aliased(Derivative)
    has_mask = exists().where(masked.item_id == Item.id, masked.kind == MASK_KIND, masked.is_current)
    query = (
        select(*columns)
        .where(*where, ~done, *((~has_mask,) if with_masks else ()))
        .order_by(Item.id)
        .limit(limit)
    )
    rows = [tuple(row) for row in session.execute(query)]
    if not with_masks:
        return rows
    # Items with a mask are few (a curator draws each): their hashes are computed here.
    candidates = session.execute(
        select(*columns, masked.sha256)
        .join(masked, and_(masked.item_id == Item.id, masked.kind == MASK_KIND, masked.is_current))
        .where(*where)
    ).all()
    wanted = {row[0]: masked_hash(recipe_hash, row[5]) for row in candidates}
    made = made_hashes(session, list(wanted), kind)
    rows += [tuple(row[:5]) for row in candidates if (row[0], wanted[row[0]]) not in made]
    return sorted(rows)[:limit] if limit is not None else sorted(rows)


def id_windows(
    fetch: Callable[[int, int], list[tuple]], bounds: Callable[[], tuple[int | None, int | None]], window: int
) -> Iterator[list[tuple]]:
    """The rows ``fetch(after, until)`` gives for each window of ``window`` ids (after < id <=
    until) from the first id ``bounds()`` gives to its last, the non-empty ones: rows in id order,
    each once, a window at most in memory. At the end the last id is read again, so items added
    meanwhile are reached too. Both ends bound every query (and its joins: PostgreSQL scanned
    every remaining derivative for a page bounded below only, 70 s to select 1,000,000 items)."""
    first, last = bounds()
    if first is None:
        return
    after = first - 1
    while True:
        while after < last:
            if rows := fetch(after, after + window):
                yield rows
            after += window
        _, now = bounds()
        if now is None or now <= last:
            return
        after, last = max(after, last), now


def item_id_bounds(session: Session, collection_id: int) -> tuple[int | None, int | None]:
    """The first and last item ids of a collection."""
    return tuple(
        session.execute(
            select(func.min(Item.id), func.max(Item.id)).where(Item.collection_id == collection_id)
        ).one()
    )


def _window(column, after_id: int, until_id: int | None) -> tuple:
    """``after_id < column <= until_id`` (no upper bound for None)."""
    return (column > after_id,) if until_id is None else (column > after_id, column <= until_id)


def _stale(kind: str, model: ModelVersion, window: tuple = ()) -> ColumnElement[bool]:
    """The item's current ``kind`` version was made by an older version of ``model``'s name."""
    older = aliased(ModelVersion)
    return exists().where(
        *window,
        Derivative.item_id == Item.id,
        Derivative.kind == kind,
        Derivative.is_current,
        older.id == Derivative.model_version_id,
        older.name == model.name,
        older.id < model.id,
    )


def stale_items(session: Session, collection_id: int, kind: str, model: ModelVersion) -> list[int]:
    """Items whose current ``kind`` derivative was made by an older version of ``model``'s name
    (registered before it), or by no model of that name at all: the work of a reprocess."""
    older = aliased(ModelVersion)
    query = (
        select(Derivative.item_id)
        .join(Item, Item.id == Derivative.item_id)
        .join(older, older.id == Derivative.model_version_id)
        .where(
            Item.collection_id == collection_id,
            Derivative.kind == kind,
            Derivative.is_current,
            older.name == model.name,
            older.id < model.id,
        )
        .order_by(Derivative.item_id)
    )
    return list(session.scalars(query))


def current_derivatives(
    session: Session, collection_id: int, kind: str, after_id: int = 0, limit: int = 100
) -> list[Derivative]:
    """One page of the current derivatives of a collection, in item order (keyset paging:
    pass the last item id of a page to get the next)."""
    query = (
        select(Derivative)
        .join(Item, Item.id == Derivative.item_id)
        # The bound on both sides of the join: PostgreSQL merge-joins, and without Item.id > after
        # it walks the items index from the start (156 ms a page 800,000 items in; 2.2 ms with it).
        .where(
            Item.collection_id == collection_id,
            Derivative.kind == kind,
            Derivative.is_current,
            Derivative.item_id > after_id,
            Item.id > after_id,
        )
        .order_by(Derivative.item_id)
        .limit(limit)
    )
    return list(session.scalars(query))


def versions_of(session: Session, item_id: int, kind: str) -> list[Derivative]:
    query = select(Derivative).where(Derivative.item_id == item_id, Derivative.kind == kind)
    return list(session.scalars(query.order_by(Derivative.version)))


def item_derivatives(session: Session, item_id: int) -> list[Derivative]:
    """Every version of every kind of one item."""
    query = select(Derivative).where(Derivative.item_id == item_id)
    return list(session.scalars(query.order_by(Derivative.kind, Derivative.version)))


def version_lock(session: Session, item_id: int, kind: str) -> None:
    """Call first in a transaction that decides an item's next version of ``kind`` and writes its
    files: until the transaction ends, no other process (or thread) can do the same, so no two
    writers claim one version and none overwrites the other's files (see ``engine.exclusive``)."""
    exclusive(session, "derivative version", item_id, kind)


def next_version(session: Session, item_id: int, kind: str) -> int:
    latest = session.scalar(
        select(func.max(Derivative.version)).where(Derivative.item_id == item_id, Derivative.kind == kind)
    )
    return (latest or 0) + 1


def make_current(session: Session, derivative: Derivative) -> Derivative | None:
    """Mark ``derivative`` current for its item and kind; returns the one it replaces, if any.
    The old flag is cleared first, so the partial unique index never sees two current rows."""
    previous = session.scalars(
        select(Derivative).where(
            Derivative.item_id == derivative.item_id,
            Derivative.kind == derivative.kind,
            Derivative.is_current,
            Derivative.id != derivative.id,
        )
    ).one_or_none()
    if previous is not None:
        session.execute(update(Derivative).where(Derivative.id == previous.id).values(is_current=False))
    session.execute(update(Derivative).where(Derivative.id == derivative.id).values(is_current=True))
    session.expire_all()
    return previous


def derivatives_by_model(
    session: Session, collection_id: int, kind: str, model_version_id: int
) -> list[Derivative]:
    """The derivatives of a collection and kind made by one model version, in item order."""
    query = (
        select(Derivative)
        .join(Item, and_(Item.id == Derivative.item_id, Item.collection_id == collection_id))
        .where(Derivative.kind == kind, Derivative.model_version_id == model_version_id)
        .order_by(Derivative.item_id)
    )
    return list(session.scalars(query))


def made_beside_current(
    session: Session,
    collection_id: int,
    kind: str,
    run_id: int,
    after_id: int = 0,
    until_id: int | None = None,
) -> list[tuple[Item, Derivative, Derivative]]:
    """(item, current version, the version run ``run_id`` made) for each item of the collection
    that has both, in item order, of the items after ``after_id`` up to ``until_id`` (a window of
    :func:`id_windows`): what a reprocessing run compares."""
    current, new = aliased(Derivative), aliased(Derivative)
    query = (
        select(Item, current, new)
        .join(new, and_(new.item_id == Item.id, new.kind == kind, new.run_id == run_id, ~new.is_current))
        .join(current, and_(current.item_id == Item.id, current.kind == kind, current.is_current))
        .where(Item.collection_id == collection_id, *_window(Item.id, after_id, until_id))
        .where(*_window(new.item_id, after_id, until_id), *_window(current.item_id, after_id, until_id))
        .order_by(Item.id)
    )
    return [tuple(r) for r in session.execute(query)]


def style_candidates(
    session: Session,
    source: str,
    collection_id: int | None = None,
    item_ids: list[int] | None = None,
) -> tuple[list[tuple], int]:
    """(id, key, sha256, width, height, parent id, parent URI, parent sha256) for the ingested items
    of a collection (or of ``item_ids``), with the current version of kind ``source`` (None for
    ``"master"``); items without one are left out of the rows and counted."""
    rows = style_candidate_rows(session, source, collection_id, item_ids)
    if source == "master":
        return rows, 0
    with_parent = [r for r in rows if r[5] is not None]
    return with_parent, len(rows) - len(with_parent)


def style_candidate_rows(
    session: Session,
    source: str,
    collection_id: int | None = None,
    item_ids: list[int] | None = None,
    after_id: int = 0,
    until_id: int | None = None,
) -> list[tuple]:
    """The rows of :func:`style_candidates` in id order, of the items after ``after_id`` up to
    ``until_id``, those without a current ``source`` version included (parent columns None)."""
    cols = [Item.id, Item.source_key, Item.sha256, Item.width, Item.height]
    where = [Item.status == "ingested", *_window(Item.id, after_id, until_id)]
    where.append(Item.collection_id == collection_id if item_ids is None else Item.id.in_(item_ids))
    if source == "master":
        query = select(*cols, *(null() for _ in range(3)))
    else:
        parent = (
            select(Derivative.item_id, Derivative.id, Derivative.storage_uri, Derivative.sha256)
            .where(Derivative.kind == source, Derivative.is_current)
            .where(*_window(Derivative.item_id, after_id, until_id))
            .subquery()
        )
        query = select(*cols, parent.c.id, parent.c.storage_uri, parent.c.sha256).outerjoin(
            parent, parent.c.item_id == Item.id
        )
    return [tuple(r) for r in session.execute(query.where(*where).order_by(Item.id))]


def _scope(query, collection_id: int | None, item_ids: list[int] | None):
    """Derivatives of one collection (a join: collections are too big for IN lists), or of a batch."""
    if item_ids is not None:
        return query.where(Derivative.item_id.in_(item_ids))
    return query.join(Item, Item.id == Derivative.item_id).where(Item.collection_id == collection_id)


def recipe_hashes_made(
    session: Session, kind: str, collection_id: int | None = None, item_ids: list[int] | None = None
) -> set[tuple[int, str]]:
    """(item id, recipe hash) of every ``kind`` version of a collection's items (or of ``item_ids``)."""
    query = _scope(
        select(Derivative.item_id, Derivative.recipe_hash).where(Derivative.kind == kind),
        collection_id,
        item_ids,
    )
    return {tuple(r) for r in session.execute(query)}


def stale_styled(
    session: Session,
    collection_id: int,
    kind: str,
    model: ModelVersion,
    source: str,
    item_ids: list[int] | None = None,
) -> set[int]:
    """Items whose current ``kind`` version was made by an older version of the model, or from a
    parent that is no longer the current ``source`` version (of a collection, or of ``item_ids``)."""
    older_ids = set(
        session.scalars(
            select(ModelVersion.id).where(ModelVersion.name == model.name, ModelVersion.id < model.id)
        )
    )
    current = session.execute(
        _scope(
            select(Derivative.item_id, Derivative.model_version_id, Derivative.parent_id).where(
                Derivative.kind == kind, Derivative.is_current
            ),
            collection_id,
            item_ids,
        )
    ).all()
    parents = (
        {}
        if source == "master"
        else dict(
            session.execute(
                _scope(
                    select(Derivative.item_id, Derivative.id).where(
                        Derivative.kind == source, Derivative.is_current
                    ),
                    collection_id,
                    item_ids,
                )
            ).all()
        )
    )
    return {i for i, model_id, parent in current if model_id in older_ids or parents.get(i) != parent}


def current_version_id(session: Session, item_id: int, kind: str) -> int | None:
    """The id of the item's current ``kind`` version, if any."""
    return session.scalar(
        select(Derivative.id).where(
            Derivative.item_id == item_id, Derivative.kind == kind, Derivative.is_current
        )
    )
