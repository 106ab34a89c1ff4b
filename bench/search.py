"""Curators' search at archive scale: 1,000,000 described items.

Builds the schema with the project's migrations (SQLite; PostgreSQL too when its binaries are on
PATH) and fills it, not timed: ten collections; titles, places, creators, subjects and written
dates drawn from word lists; 2% quarantined; 70% restored (a tenth of those by a retired model,
so stale), 5% styled. Then runs ten representative searches, each with its facets (collection,
decade, status, model), 7 times as a new search (no search's facets kept from before: the
first time anyone runs it since the catalogue last changed) followed by its next page, and
prints the median and p95 latency of each page:
- through the query layer (archive_db.search), and
- through the HTTP API (GET /api/search on a real uvicorn server, one keep-alive client).
The whole catalogue's facet cube is computed once before (a catalogue that is not being written
to keeps it); its cost, paid by the first search after each change, is printed too.
Baseline measured in the same run: counting the matches of the text searches with a plain LIKE
scan over the text columns (what a catalogue without a full-text index does); ratio = LIKE / index.
Goal: p95 under 100 ms through the API.

    .venv/bin/python bench/search.py [--items 1000000] [--no-postgres]
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, or_, select  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

import archive_db.search  # noqa: E402
from archive_db.engine import make_engine  # noqa: E402
from archive_db.migrate import upgrade  # noqa: E402
from archive_db.models import Collection, Item, ModelVersion  # noqa: E402
from archive_db.search import SearchQuery, fts_terms, next_query, search, where_clause  # noqa: E402
from bench._bulk import load, on_each_database  # noqa: E402

REPEAT = 7
PLACES = [
    "Whitby",
    "Brighton",
    "Glasgow",
    "Cardiff",
    "Belfast",
    "York",
    "Bristol",
    "Dundee",
    "Leeds",
    "Hull",
    "Liverpool",
    "Swansea",
    "Oban",
    "Penzance",
    "Durham",
    "Bath",
    "Norwich",
    "Exeter",
    "Inverness",
    "Derry",
]
THINGS = [
    "harbour",
    "wedding",
    "school",
    "market",
    "pier",
    "church",
    "mill",
    "street",
    "station",
    "farm",
    "regatta",
    "parade",
    "colliery",
    "promenade",
    "bridge",
    "shipyard",
    "funeral",
    "picnic",
    "choir",
    "football team",
]
WORDS = [
    "boats",
    "crowd",
    "family",
    "workers",
    "children",
    "horses",
    "tram",
    "snow",
    "flood",
    "fire",
    "band",
    "soldiers",
    "nurses",
    "fishermen",
    "miners",
    "dancers",
    "cyclists",
    "the mayor",
    "a dog",
    "bunting",
]
CREATORS = [
    "Frank Meadow Sutcliffe",
    "Studio Ellis",
    "A. Robinson",
    "Unknown",
    "J. Valentine & Sons",
    "M. Hardy",
]

SEARCHES = [  # (label, query)
    ("browse everything", SearchQuery()),
    ("text: harbour", SearchQuery(text="harbour")),
    ("text: two words", SearchQuery(text="harbour whitby")),
    ("text: prefix 'shipy'", SearchQuery(text="shipy")),
    ("collection", SearchQuery(collection="collection-3")),
    ("decade 1920s", SearchQuery(year_from=1920, year_to=1929)),
    ("restored in a collection", SearchQuery(collection="collection-5", status="restored")),
    ("stale", SearchQuery(status="stale")),
    ("text + model", SearchQuery(text="wedding", model="restore-unet@v2")),
    ("text + dates, by date", SearchQuery(text="regatta", year_from=1900, year_to=1939, sort="date")),
]


def fill(engine, n: int) -> None:
    now = datetime.now(UTC)
    with Session(engine) as s:
        s.add_all([Collection(name=f"collection-{c}") for c in range(10)])
        s.add_all(
            [
                ModelVersion(
                    name="restore-unet",
                    version=v,
                    task="restore",
                    architecture="unet_restorer",
                    weights_uri=f"models/restore-unet/{v}",
                    weights_sha256=v * 32,
                    status=st,
                )
                for v, st in (("v1", "retired"), ("v2", "production"))
            ]
        )
        s.commit()
        coll_ids = [c.id for c in s.scalars(select(Collection).order_by(Collection.id))]
        v1, v2 = (m.id for m in s.scalars(select(ModelVersion).order_by(ModelVersion.id)))
    item_cols = (
        "id",
        "collection_id",
        "source_uri",
        "source_key",
        "sha256",
        "size",
        "status",
        "created_at",
        "title",
        "place",
        "creator",
        "subjects",
        "date_text",
        "date_from",
        "date_to",
        "make",
    )
    der_cols = (
        "item_id",
        "kind",
        "version",
        "recipe_hash",
        "recipe",
        "model_version_id",
        "storage_uri",
        "sha256",
        "size",
        "is_current",
        "created_at",
    )

    def items(start, stop):
        r = np.random.default_rng(start)
        for i in range(start, stop):
            place, thing, word = PLACES[r.integers(20)], THINGS[r.integers(20)], WORDS[r.integers(20)]
            year = int(r.integers(1850, 1980))
            decade = r.random() < 0.3
            date_text, span = (
                (f"{year // 10 * 10}s", (year // 10 * 10, year // 10 * 10 + 9))
                if decade
                else (str(year), (year, year))
            )
            if r.random() < 0.1:
                date_text, span = None, (None, None)
            status = "quarantined" if r.random() < 0.02 else "ingested"
            yield (
                i,
                coll_ids[i % 10],
                "s3://scans/inbox",
                f"box{i // 1000}/scan-{i:07d}.tif",
                f"{i:064x}",
                1_000_000,
                status,
                now,
                f"The {thing} at {place} with {word}",
                place,
                CREATORS[r.integers(len(CREATORS))],
                f"{thing}; {word}",
                date_text,
                *span,
                ("Kodak", "Agfa", "Ilford", None)[r.integers(4)],
            )

    def derivatives(start, stop):
        r = np.random.default_rng([start, 1])
        for i in range(start, stop):
            u = r.random()
            if u < 0.7:
                model = v1 if u < 0.07 else v2
                yield (
                    i,
                    "restored",
                    1,
                    f"{model:064x}",
                    "{}",
                    model,
                    f"s3://archive/d/{i}/restored/v1/s.png",
                    f"{i:064x}",
                    5_000_000,
                    True,
                    now,
                )
            if r.random() < 0.05:
                yield (
                    i,
                    "style:albumen",
                    1,
                    "a" * 64,
                    "{}",
                    None,
                    f"s3://archive/d/{i}/style/v1/s.png",
                    f"{i:064x}",
                    5_000_000,
                    True,
                    now,
                )

    load(engine, n, [("items", item_cols, items), ("derivatives", der_cols, derivatives)])


def times_of(fn, repeat: int = REPEAT) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def pages_of(first, following, repeat: int = REPEAT) -> tuple[list[float], list[float]]:
    """Seconds of ``repeat`` new searches' first pages (no search's facets kept: a curator who has
    not run it since the catalogue last changed) and of each one's next page (``following``
    gives None where there is none)."""
    firsts, nexts = [], []
    for _ in range(repeat):
        forget_searches()
        started = time.perf_counter()
        page = first()
        firsts.append(time.perf_counter() - started)
        started = time.perf_counter()
        if following(page) is not None:  # a search with one page has no next page to time
            nexts.append(time.perf_counter() - started)
    return firsts, nexts


def forget_searches() -> None:
    for cache in archive_db.search._caches.values():
        with cache.lock:
            cache.searches.clear()


def fmt(times: list[float]) -> str:
    if not times:
        return f"{'-':>6s} {'-':>6s}"
    return f"{statistics.median(times) * 1e3:6.1f} {p95(times) * 1e3:6.1f}"


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def like_count(session: Session, text: str) -> int:
    """The baseline: count the items with every word as a case-insensitive substring of a text
    column (the total and the facets need every match, not only the first page)."""
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
    where = [or_(*(func.lower(c).contains(w) for c in cols)) for w in fts_terms(text)]
    return session.scalar(select(func.count()).select_from(Item).where(*where))


def fts_count(session: Session, text: str) -> int:
    return session.scalar(
        select(func.count()).select_from(Item).where(*where_clause(session, SearchQuery(text=text)))
    )


def serve(sessions: sessionmaker) -> tuple[str, object]:
    import uvicorn

    from archive_db.web.app import create_app
    from tests.services import free_port

    app = create_app(sessions, media=None, token=None)  # images are not part of this benchmark
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def measure(label: str, url: str, n: int) -> None:
    import httpx

    engine = make_engine(url)
    upgrade(engine)
    started = time.perf_counter()
    fill(engine, n)
    print(f"{label}: filled {n:,} items in {time.perf_counter() - started:.0f} s (not timed below)")
    sessions = sessionmaker(engine)
    base, server = serve(sessions)
    with sessions() as s:
        started = time.perf_counter()
        search(s, SearchQuery())  # the whole catalogue's cube: once per change of the catalogue
        whole = time.perf_counter() - started
    layer_all, api_all = [], []
    print(
        f"  {'search':28s} {'hits':>9s}   query layer: new search / next page   "
        f"HTTP API: new search / next page  (median, p95 ms)"
    )
    with httpx.Client(base_url=base, timeout=60) as client:
        for name, q in SEARCHES:
            with sessions() as s:
                first = search(s, q)
                total = f"{'~' if first.estimate else ''}{first.total:,d}"  # ~: estimated from a sample
                layer = pages_of(
                    lambda q=q, s=s: search(s, q),
                    lambda p, q=q, s=s: search(s, nq) if (nq := next_query(q, p)) else None,
                )
            params = q.filters() | {"sort": q.sort}
            api = pages_of(
                lambda params=params: client.get("/api/search", params=params).raise_for_status().json(),
                lambda p, params=params: (
                    client.get("/api/search", params=params | {"after": p["next_cursor"]})
                    .raise_for_status()
                    .json()
                    if p["next_cursor"]
                    else None
                ),
            )
            layer_all += layer[0] + layer[1]
            api_all += api[0] + api[1]
            print(
                f"  {name:28s} {total:>9s}   {fmt(layer[0])} / {fmt(layer[1])}   {fmt(api[0])} / {fmt(api[1])}"
            )
        with sessions() as s:
            text_queries = [q.text for _, q in SEARCHES if q.text]
            fts = [t for text in text_queries for t in times_of(lambda text=text: fts_count(s, text), 3)]
            like = [t for text in text_queries for t in times_of(lambda text=text: like_count(s, text), 3)]
    server.should_exit = True
    print(
        f"  all ten, first and next pages: query layer p95 {p95(layer_all) * 1e3:.1f} ms; "
        f"HTTP API p95 {p95(api_all) * 1e3:.1f} ms (goal < 100 ms)"
    )
    print(
        f"  the whole catalogue's cube (the first search after the catalogue changes, then kept): "
        f"{whole * 1e3:.0f} ms"
    )
    print(
        f"  counting the matches of the text searches: full-text index median {statistics.median(fts) * 1e3:.1f} ms, "
        f"LIKE scan median {statistics.median(like) * 1e3:.1f} ms; ratio {statistics.median(like) / statistics.median(fts):.1f}x"
    )
    engine.dispose()


def main() -> int:
    return on_each_database(__doc__, measure)


if __name__ == "__main__":
    sys.exit(main())
