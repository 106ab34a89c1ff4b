"""Curators' search: free text, filters, facets with counts, sorts and keyset pages.

Every value reaches the database as a bound parameter. Free text uses the database's own index:
the FTS5 table on SQLite, the tsvector column on PostgreSQL (both made by migration 0002).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, literal_column, or_, select, text
from sqlalchemy.orm import Session

from archive_db.models import MAX_ID, Collection, Derivative, Event, Item, ModelVersion

STATUSES = ("ingested", "quarantined", "restored", "styled", "stale")
SORTS = ("id", "newest", "date", "key")
MAX_LIMIT = 500
MAX_YEAR = 99999


class SearchError(ValueError):
    """A search the caller asked for that cannot be run (unknown sort, bad cursor ...)."""


@dataclass(frozen=True)
class SearchQuery:
    text: str | None = None
    collection: str | None = None
    year_from: int | None = None  # items whose date range overlaps [year_from, year_to]
    year_to: int | None = None
    status: str | None = None
    model: str | None = None  # NAME@VERSION of the model that made a current derivative
    kind: str | None = None  # has a current derivative of this kind ("restored", "style:albumen")
    sort: str = "id"
    limit: int = 50
    after: str | None = None  # the cursor of the previous page

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise SearchError(f"unknown sort {self.sort!r} (one of {', '.join(SORTS)})")
        if self.status is not None and self.status not in STATUSES:
            raise SearchError(f"unknown status {self.status!r} (one of {', '.join(STATUSES)})")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise SearchError(f"limit must be between 1 and {MAX_LIMIT}")
        for name in ("year_from", "year_to"):
            year = getattr(self, name)
            if year is not None and not -MAX_YEAR <= year <= MAX_YEAR:
                raise SearchError(f"{name} must be a year between {-MAX_YEAR} and {MAX_YEAR}")
        for name in ("text", "collection", "status", "model", "kind", "after"):
            if "\x00" in (getattr(self, name) or ""):
                raise SearchError(f"{name} must not contain a NUL byte")
        if self.after:
            decode_cursor(self.after, self.sort)  # a damaged cursor is the caller's error, found here

    def filters(self) -> dict[str, Any]:
        """The filters that are set, as they appear in a shareable URL."""
        keys = ("text", "collection", "year_from", "year_to", "status", "model", "kind")
        return {k: getattr(self, k) for k in keys if getattr(self, k) not in (None, "")}


@dataclass(frozen=True)
class Hit:
    id: int
    collection: str
    source_key: str
    title: str | None
    date_text: str | None
    creator: str | None
    place: str | None
    status: str
    width: int | None
    height: int | None
    thumbnail_key: str | None
    sha256: str
    restored: bool  # has a current restored version
    styled: bool = False  # has a current styled version


@dataclass
class Page:
    hits: list[Hit]
    next_cursor: str | None
    facets: dict[str, list[tuple[Any, int]]] = field(default_factory=dict)
    total: int | None = None


# -- filters --------------------------------------------------------------------------------


def fts_terms(text_query: str) -> list[str]:
    """The words of a free-text query (letters and digits only: no query syntax gets through)."""
    return re.findall(r"\w+", text_query.lower())


def _text_filter(session: Session, words: list[str]) -> ColumnElement[bool]:
    """Items matching every word, as a prefix ("harb" finds "harbour")."""
    if session.get_bind().dialect.name == "postgresql":
        query = " & ".join(f"{w}:*" for w in words)
        return text("items.search_doc @@ to_tsquery('simple', :fts)").bindparams(fts=query)
    if session.get_bind().dialect.name == "sqlite":
        query = " ".join(f'"{w}"*' for w in words)
        matching = (
            select(literal_column("rowid"))
            .select_from(text("items_fts"))
            .where(text("items_fts MATCH :fts").bindparams(fts=query))
        )
        return Item.id.in_(matching)
    # Any other database: a plain substring match on each word (slow, but right).
    cols = (
        Item.title,
        Item.description,
        Item.subjects,
        Item.place,
        Item.creator,
        Item.source_key,
        Item.make,
        Item.model,
    )
    return and_(*(or_(*(func.lower(c).contains(w) for c in cols)) for w in words))


def _current(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """The item has a current derivative meeting ``conditions``."""
    return exists().where(Derivative.item_id == Item.id, Derivative.is_current, *conditions)


def stale_model_ids(session: Session) -> list[int]:
    """Model versions whose outputs are stale: retired ones, and older versions of a model that
    has another version in production."""
    rows = session.execute(select(ModelVersion.id, ModelVersion.name, ModelVersion.status)).all()
    production = {name for _, name, status in rows if status == "production"}
    return [
        i
        for i, name, status in rows
        if status == "retired" or (status != "production" and name in production)
    ]


def _status_filter(session: Session, status: str) -> ColumnElement[bool]:
    if status in ("ingested", "quarantined"):
        return Item.status == status
    if status == "restored":
        return Item.restored_model_id.is_not(None)
    if status == "styled":
        return Item.styled
    return Item.restored_model_id.in_(stale_model_ids(session))


def where_clause(session: Session, q: SearchQuery) -> list[ColumnElement[bool]] | None:
    """The WHERE clause of a search, or None if it cannot match anything (unknown collection)."""
    where: list[ColumnElement[bool]] = []
    if q.text and (words := fts_terms(q.text)):
        where.append(_text_filter(session, words))
    if q.collection:
        cid = session.scalar(select(Collection.id).where(Collection.name == q.collection))
        if cid is None:
            return None
        where.append(Item.collection_id == cid)
    if q.year_from is not None:
        where.append(Item.date_to >= q.year_from)
        # No item's range is wider than the widest one: this bound lets the date_from index
        # narrow the scan (an overlap test alone cannot use an index).
        span = session.scalar(select(func.max(Item.date_to - Item.date_from)))
        if span is not None:
            where.append(Item.date_from >= q.year_from - span)
    if q.year_to is not None:
        where.append(Item.date_from <= q.year_to)
    if q.status:
        where.append(_status_filter(session, q.status))
    if q.kind:
        where.append(_current(Derivative.kind == q.kind))
    if q.model:
        name, _, version = q.model.partition("@")
        mv = session.execute(
            select(ModelVersion.id, ModelVersion.task).where(
                ModelVersion.name == name, ModelVersion.version == version
            )
        ).first()
        if mv is None:
            return None
        # A restorer's current output is on the item itself (kept by triggers); others need a look.
        where.append(
            Item.restored_model_id == mv.id
            if mv.task == "restore"
            else _current(Derivative.model_version_id == mv.id)
        )
    return where


# -- sorting and cursors --------------------------------------------------------------------

_NO_DATE = 99999  # undated items sort after dated ones


def _sort_key(sort: str) -> tuple[ColumnElement, bool]:
    """(expression, descending) of the primary sort; the item id breaks ties the same way."""
    return {
        "id": (Item.id, False),
        "newest": (Item.id, True),
        "date": (func.coalesce(Item.date_from, _NO_DATE), False),
        "key": (Item.source_key, False),
    }[sort]


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str = "id") -> list[Any]:
    """The [sort value, item id] a cursor holds, each of the type and range the sort's column
    takes (a damaged or hand-made cursor is a SearchError, never a database error)."""
    damaged = SearchError("the page cursor is damaged; start the search again")
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError) as exc:
        raise damaged from exc
    if not isinstance(values, list) or len(values) != 2:
        raise damaged
    value, last_id = values
    if isinstance(last_id, bool) or not isinstance(last_id, int) or not 0 <= last_id <= MAX_ID:
        raise damaged
    if sort == "key":
        if not isinstance(value, str) or "\x00" in value:
            raise damaged
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise damaged from None
    elif isinstance(value, bool) or not isinstance(value, int) or not -MAX_ID <= value <= MAX_ID:
        raise damaged
    return values


def _page_query(q: SearchQuery, where: list[ColumnElement[bool]]) -> Select:
    key, desc = _sort_key(q.sort)
    query = select(Item, Collection.name).join(Collection, Collection.id == Item.collection_id).where(*where)
    if q.after:
        last, last_id = decode_cursor(q.after, q.sort)
        if q.sort in ("id", "newest"):
            query = query.where(Item.id < last_id if desc else Item.id > last_id)
        else:
            query = query.where(or_(key > last, and_(key == last, Item.id > last_id)))
    order = (key.desc(), Item.id.desc()) if desc else (key, Item.id)
    return query.order_by(*order).limit(q.limit + 1)


def _cursor_of(item: Item, sort: str) -> str:
    value = {
        "id": item.id,
        "newest": item.id,
        "key": item.source_key,
        "date": item.date_from if item.date_from is not None else _NO_DATE,
    }[sort]
    return encode_cursor([value, item.id])


# -- the search -----------------------------------------------------------------------------


def search(session: Session, q: SearchQuery, with_facets: bool = True) -> Page:
    """One page of items matching ``q``, the cursor of the next page, and the facets of the
    whole matching set (their collection counts add up to ``total``)."""
    where = where_clause(session, q)
    if where is None:
        return Page(
            [], None, {name: [] for name in FACETS} if with_facets else {}, 0 if with_facets else None
        )
    rows = session.execute(_page_query(q, where)).all()
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    hits = [_hit(item, name) for item, name in rows]
    cursor = _cursor_of(rows[-1][0], q.sort) if more else None
    page = Page(hits, cursor)
    if with_facets:
        page.facets = facets(session, q, where)
        page.total = sum(n for _, n in page.facets["collection"])
    return page


def _hit(item: Item, collection: str) -> Hit:
    return Hit(
        item.id,
        collection,
        item.source_key,
        item.title,
        item.date_text,
        item.creator,
        item.place,
        item.status,
        item.width,
        item.height,
        item.thumbnail_key,
        item.sha256,
        item.restored_model_id is not None,
        bool(item.styled),
    )


# -- facets ---------------------------------------------------------------------------------
#
# All four facets come from one grouped scan of the matching items over (collection, status,
# decade, restoring model, styled): a small "cube" summed up in Python. The cube of the whole
# catalogue is kept per process and reused until the catalogue changes (a new event, item or
# derivative), so browsing by collection and status does not rescan a million rows each time.

FACETS = ("collection", "decade", "status", "model")
_DIMS = ("collection_id", "status", "decade", "model_id", "styled")


def _cube(session: Session, where: list[ColumnElement[bool]]) -> list[tuple]:
    decade = (Item.date_from // 10) * 10
    query = (
        select(Item.collection_id, Item.status, decade, Item.restored_model_id, Item.styled, func.count())
        .where(*where)
        .group_by(Item.collection_id, Item.status, decade, Item.restored_model_id, Item.styled)
    )
    return [tuple(r) for r in session.execute(query)]


@dataclass
class _CubeCache:
    marker: tuple | None = None
    rows: list[tuple] = field(default_factory=list)


_whole: dict[str, _CubeCache] = {}


def _change_marker(session: Session) -> tuple:
    """Moves whenever the catalogue changes: every write appends an event, item or derivative."""
    return tuple(session.scalar(select(func.max(col))) for col in (Event.id, Item.id, Derivative.id))


def _whole_cube(session: Session) -> list[tuple]:
    key = session.get_bind().url.render_as_string(hide_password=True)
    cache = _whole.setdefault(key, _CubeCache())
    marker = _change_marker(session)
    if cache.marker != marker:
        cache.rows, cache.marker = _cube(session, []), marker
    return cache.rows


def facets(
    session: Session, q: SearchQuery, where: list[ColumnElement[bool]]
) -> dict[str, list[tuple[Any, int]]]:
    """Counts per collection, decade, status and model version over the matching items."""
    cube_only = not (q.text or q.year_from is not None or q.year_to is not None or q.model or q.kind)
    if cube_only:  # collection and status filters select rows of the cached whole-catalogue cube
        rows = _whole_cube(session)
        stale = set(stale_model_ids(session))
        cid = (
            session.scalar(select(Collection.id).where(Collection.name == q.collection))
            if q.collection
            else None
        )
        rows = [
            r
            for r in rows
            if (cid is None or r[0] == cid) and (not q.status or _has_status(r, q.status, stale))
        ]
    else:
        rows = _cube(session, where)
    return _sum_facets(session, rows)


def _has_status(row: tuple, status: str, stale: set[int]) -> bool:
    _, item_status, _, model_id, styled, _ = row
    return {
        "ingested": item_status == "ingested",
        "quarantined": item_status == "quarantined",
        "restored": model_id is not None,
        "styled": bool(styled),
        "stale": model_id in stale,
    }[status]


def _sum_facets(session: Session, rows: list[tuple]) -> dict[str, list[tuple[Any, int]]]:
    stale = set(stale_model_ids(session))
    by: dict[str, dict[Any, int]] = {name: {} for name in FACETS}
    for row in rows:
        coll, _, decade, model_id, _, n = row
        by["collection"][coll] = by["collection"].get(coll, 0) + n
        if decade is not None:
            by["decade"][int(decade)] = by["decade"].get(int(decade), 0) + n
        for status in STATUSES:
            if _has_status(row, status, stale):
                by["status"][status] = by["status"].get(status, 0) + n
        if model_id is not None:
            by["model"][model_id] = by["model"].get(model_id, 0) + n
    names = dict(session.execute(select(Collection.id, Collection.name)).all())
    labels = {m.id: f"{m.name}@{m.version}" for m in session.scalars(select(ModelVersion))}
    return {
        "collection": sorted(
            ((names[c], n) for c, n in by["collection"].items()), key=lambda x: (-x[1], x[0])
        ),
        "decade": sorted(by["decade"].items()),
        "status": [(s, by["status"][s]) for s in STATUSES if by["status"].get(s)],
        "model": sorted((labels[m], n) for m, n in by["model"].items()),
    }


def next_query(q: SearchQuery, page: Page) -> SearchQuery | None:
    return replace(q, after=page.next_cursor) if page.next_cursor else None
