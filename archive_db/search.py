"""Curators' search: free text, filters, facets with counts, sorts and keyset pages.

Every value reaches the database as a bound parameter. Free text uses the database's own index:
the FTS5 table on SQLite, the tsvector column on PostgreSQL (both made by migration 0002).
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, literal_column, or_, select, text, union_all
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
    # None: the total and the facets are exact. Else they are estimated from a 1-in-SAMPLE sample
    # of the matches (PostgreSQL, a full-text search above ESTIMATE_ABOVE), and the total is
    # within this fraction of the exact one at 95% confidence.
    estimate: float | None = None


# -- filters --------------------------------------------------------------------------------


def fts_terms(text_query: str) -> list[str]:
    """The words of a free-text query (letters and digits only: no query syntax gets through)."""
    return re.findall(r"\w+", text_query.lower())


def typing_last_word(text_query: str) -> bool:
    """Whether the query's last word may still be being typed (searched as a prefix): it is, unless
    a space or punctuation follows it."""
    return bool(re.search(r"\w$", text_query))


def _text_filter(session: Session, words: list[str], prefix_last: bool) -> ColumnElement[bool]:
    """Items matching every word: whole words, but the last as a prefix while it is being typed
    ("harbour whi" finds "Whitby harbour"; "harb" finds "harbour", "harb whitby" does not)."""
    prefix = [prefix_last and i == len(words) - 1 for i in range(len(words))]
    if session.get_bind().dialect.name == "postgresql":
        query = " & ".join(f"{w}:*" if p else w for w, p in zip(words, prefix, strict=True))
        return text("items.search_doc @@ to_tsquery('simple', :fts)").bindparams(fts=query)
    if session.get_bind().dialect.name == "sqlite":
        query = " ".join(f'"{w}"*' if p else f'"{w}"' for w, p in zip(words, prefix, strict=True))
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
        where.append(_text_filter(session, words, typing_last_word(q.text)))
    if q.collection:
        cid = session.scalar(select(Collection.id).where(Collection.name == q.collection))
        if cid is None:
            return None
        where.append(Item.collection_id == cid)
    if q.year_from is not None:
        where.append(Item.date_to >= q.year_from)
        # No item's range is wider than the widest one: this bound lets the date_from index
        # narrow the scan (an overlap test alone cannot use an index).
        span = _widest_span(session)
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


def _widest_span(session: Session) -> int | None:
    """The widest date range of any item, in years (read from the ix_items_date_span index)."""
    return session.scalar(select(func.max(Item.date_to - Item.date_from)))


# -- sorting and cursors --------------------------------------------------------------------

_NO_DATE = 99999  # undated items sort after dated ones


def _sort_key(sort: str) -> tuple[ColumnElement, bool]:
    """(expression, descending) of the primary sort; the item id breaks ties the same way."""
    return {
        "id": (Item.id, False),
        "newest": (Item.id, True),
        # the constant written into the SQL (not a parameter): the expression index ix_items_date_order
        # matches it only so, on SQLite always, on PostgreSQL once a statement is prepared
        "date": (func.coalesce(Item.date_from, literal_column(str(_NO_DATE))), False),
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


def _page_query(q: SearchQuery, where: list[ColumnElement[bool]], walk_dates: bool = False) -> Select:
    """The page's items. ``walk_dates`` (PostgreSQL): a date-sorted search with a first year, in two parts (below)."""
    key, desc = _sort_key(q.sort)
    ids = select(Item.id).where(*where)
    if walk_dates and q.sort == "date" and q.year_to is not None:  # implied by the date filters:
        ids = ids.where(key <= q.year_to)  # a bound on the sort's expression, where a walk can stop
    if q.after:
        last, last_id = decode_cursor(q.after, q.sort)
        if q.sort in ("id", "newest"):
            ids = ids.where(Item.id < last_id if desc else Item.id > last_id)
        else:
            ids = ids.where(or_(key > last, and_(key == last, Item.id > last_id)))
    order = (key.desc(), Item.id.desc()) if desc else (key, Item.id)
    n = q.limit + 1
    if walk_dates and q.sort == "date" and q.year_from is not None:
        # Ranges that begin before the search's first year (the few that reach into it: found by
        # the date index) sort before all those that begin in it, which a walk along the date
        # sort's index (ix_items_date_order) gives in order from its first year, stopping after a
        # page. One walk from the earliest possible start would pass every range that ends early.
        # (SQLite's planner does better without: the full-text matches, then a sort.)
        parts = [
            ids.add_columns(key.label("k")).where(w).order_by(*order).limit(n).subquery()
            for w in (Item.date_from < q.year_from, key >= q.year_from)
        ]
        both = union_all(*(select(p.c.id, p.c.k) for p in parts)).subquery()
        page_ids = select(both.c.id).order_by(both.c.k, both.c.id).limit(n)
    else:
        page_ids = ids.order_by(*order).limit(n)
    # The page's ids first, then their items: the rows of all the other matches are never read.
    # Items alone: joined to the collections, SQLite may loop over them outside and scan the date
    # index once per collection (147 ms a page at 1,000,000 items instead of 18).
    return select(Item).where(Item.id.in_(page_ids)).order_by(*order)


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
    postgres = session.get_bind().dialect.name == "postgresql"
    query = _page_query(q, where, walk_dates=postgres)
    items = session.scalars(query).all()
    more = len(items) > q.limit
    items = items[: q.limit]
    names = dict(session.execute(select(Collection.id, Collection.name)).all())
    hits = [_hit(item, names[item.collection_id]) for item in items]
    cursor = _cursor_of(items[-1], q.sort) if more else None
    page = Page(hits, cursor)
    if with_facets:
        page.facets, page.estimate = counted_facets(session, q, where)
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
# decade, restoring model, styled): a small "cube" summed up in Python. Two caches keep the
# scans off most pages, both valid until the catalogue changes (a new event, item or
# derivative moves its change marker):
# - the cube of the whole catalogue, by collection, status, exact date range, model and styled,
#   from which every search without text, model or kind is summed (dates by overlap), and
# - each search's facets, so its next pages (and the same search again) count nothing.

FACETS = ("collection", "decade", "status", "model")
SEARCHES_KEPT = 256  # searches whose facets are kept, per catalogue
# PostgreSQL reads each full-text match's row from the table to count it (about 3 µs each, 150 ms
# for 50,000): above ESTIMATE_ABOVE matches, a search's facets and total are estimated from one
# item in SAMPLE, chosen by a hash of the id (not its residue: scans alternating recto and verso
# must not all fall on one side), through the partial index ix_items_sample (migration 0005), and
# the page says so. The condition must read exactly as the index's.
SAMPLE = 16
SAMPLED = "(hashint4(items.id) & 15) = 0"
ESTIMATE_ABOVE = 10_000


def _cube(session: Session, where: list[ColumnElement[bool]]) -> list[tuple]:
    """(collection id, status, decade, model id, styled, count) over the matching items, grouped by
    the one integer that packs them (``items.facet_key``, migration 0005)."""
    key = literal_column("items.facet_key")
    query = select(key, func.count()).select_from(Item).where(*where).group_by(key)
    return [(*unpack_facet_key(k), n) for k, n in session.execute(query)]


_MODEL_BITS, _DECADE_BITS, _STATUS_BITS = 20, 15, 3
_STATUS_CODES = {1: "ingested", 2: "quarantined", 0: "other"}


def unpack_facet_key(key: int) -> tuple[int, str, int | None, int | None, bool]:
    """(collection id, status, decade, model id, styled) of a facet key (migration 0005)."""
    styled, key = bool(key & 1), key >> 1
    model, key = (key & ((1 << _MODEL_BITS) - 1)) - 1, key >> _MODEL_BITS
    decade, key = key & ((1 << _DECADE_BITS) - 1), key >> _DECADE_BITS
    status, collection = key & ((1 << _STATUS_BITS) - 1), key >> _STATUS_BITS
    return (
        collection,
        _STATUS_CODES[status],
        None if decade == 0 else (decade - 10001) * 10,
        None if model < 0 else model,
        styled,
    )


def _whole_rows(session: Session) -> list[tuple]:
    """(collection id, status, date_from, date_to, model id, styled, count) of the whole catalogue."""
    cols = (
        Item.collection_id,
        Item.status,
        Item.date_from,
        Item.date_to,
        Item.restored_model_id,
        Item.styled,
    )
    return [tuple(r) for r in session.execute(select(*cols, func.count()).group_by(*cols))]


def _decade(year: int | None) -> int | None:
    """The decade the database's ``(date_from / 10) * 10`` gives: integer division truncates."""
    return None if year is None else int(year / 10) * 10


@dataclass
class _Cache:
    """What a catalogue's searches keep, each value with the change marker it was counted at."""

    whole: tuple[tuple, list[tuple]] | None = None
    searches: OrderedDict = field(default_factory=OrderedDict)  # key -> (when, facets, estimate)
    lock: threading.Lock = field(default_factory=threading.Lock)
    building: threading.Lock = field(default_factory=threading.Lock)  # the whole cube's count


_caches: dict[str, _Cache] = {}


def _cache_of(session: Session) -> _Cache:
    return _caches.setdefault(session.get_bind().url.render_as_string(hide_password=True), _Cache())


def _change_marker(session: Session) -> tuple:
    """Moves whenever the catalogue changes: every write appends an event, item or derivative.
    On PostgreSQL ids are taken before commit, so a transaction holding a lower id can commit
    after a higher one was seen: the snapshot (which writing transactions are running, and the
    next transaction id) is part of the marker there, so that commit moves it too."""
    marker = tuple(session.scalar(select(func.max(col))) for col in (Event.id, Item.id, Derivative.id))
    if session.get_bind().dialect.name == "postgresql":
        marker += (session.scalar(text("SELECT pg_current_snapshot()::text")),)
    return marker


def _whole_cube(session: Session, marker: tuple) -> tuple[list[tuple], list[tuple]]:
    """The whole catalogue's cube, by exact date range and (summed up) by decade."""
    cache = _cache_of(session)
    with cache.building:  # concurrent requests after a change wait for one count, not each their own
        whole = cache.whole
        if whole is not None and whole[0] == marker:
            return whole[1]
        by_dates = _whole_rows(session)
        sums: dict[tuple, int] = {}
        for coll, status, date_from, _, model_id, styled, n in by_dates:
            key = (coll, status, _decade(date_from), model_id, styled)
            sums[key] = sums.get(key, 0) + n
        cache.whole = (marker, (by_dates, [(*k, n) for k, n in sums.items()]))
        return cache.whole[1]


def _search_key(q: SearchQuery) -> tuple:
    words = tuple(fts_terms(q.text or ""))
    typing = bool(words) and typing_last_word(q.text or "")
    return (words, typing, q.collection, q.year_from, q.year_to, q.status, q.model, q.kind)


def counted_facets(
    session: Session, q: SearchQuery, where: list[ColumnElement[bool]]
) -> tuple[dict[str, list[tuple[Any, int]]], float | None]:
    """Counts per collection, decade, status and model version over the matching items, and None
    if they are exact, else their estimate's margin (see Page.estimate)."""
    cache, key, marker = _cache_of(session), _search_key(q), _change_marker(session)
    # A model version retired or put in production moves no marker, but changes what is stale.
    counted_at = (marker, tuple(sorted(stale_model_ids(session))))
    with cache.lock:
        kept = cache.searches.get(key)
        if kept is not None and kept[0] == counted_at:
            cache.searches.move_to_end(key)
            return {name: list(counts) for name, counts in kept[1].items()}, kept[2]
    rows, estimate = _facet_rows(session, q, where, marker)
    result = _sum_facets(session, rows)
    with cache.lock:
        cache.searches[key] = (counted_at, result, estimate)
        cache.searches.move_to_end(key)
        while len(cache.searches) > SEARCHES_KEPT:
            cache.searches.popitem(last=False)
    return result, estimate


def _facet_rows(
    session: Session, q: SearchQuery, where: list[ColumnElement[bool]], marker: tuple
) -> tuple[list[tuple], float | None]:
    """(collection id, status, decade, model id, styled, count) of the matching items, and the
    estimate's margin if they were estimated: summed from the whole catalogue's cube where the
    filters are its dimensions, else counted (or, see ESTIMATE_ABOVE, estimated)."""
    if (full_text := bool(fts_terms(q.text or ""))) or q.model or q.kind:
        if full_text and session.get_bind().dialect.name == "postgresql":
            sample = _cube(session, [*where, text(SAMPLED)])
            seen = sum(r[-1] for r in sample)
            if seen * SAMPLE > ESTIMATE_ABOVE:
                margin = 1.96 * math.sqrt((1 - 1 / SAMPLE) / seen)  # binomial, 95%
                return [(*r[:-1], r[-1] * SAMPLE) for r in sample], round(margin, 4)
        return _cube(session, where), None
    stale = set(stale_model_ids(session))
    cid = (
        session.scalar(select(Collection.id).where(Collection.name == q.collection)) if q.collection else None
    )
    by_dates, by_decade = _whole_cube(session, marker)

    def wanted(row: tuple) -> bool:
        return (cid is None or row[0] == cid) and (not q.status or _has_status(row, q.status, stale))

    if q.year_from is None and q.year_to is None:
        return [row for row in by_decade if wanted(row)], None
    rows = []
    for coll, status, date_from, date_to, model_id, styled, n in by_dates:  # the WHERE clause's tests
        if q.year_from is not None and (date_to is None or date_to < q.year_from):
            continue
        if q.year_to is not None and (date_from is None or date_from > q.year_to):
            continue
        row = (coll, status, _decade(date_from), model_id, styled, n)
        if wanted(row):
            rows.append(row)
    return rows, None


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
