"""Curators' queries on SQLite (FTS5) and PostgreSQL (tsvector): free text, filters, facets,
keyset pages, lineage and curation events; plus the written-date normaliser."""

from __future__ import annotations

import random
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from archive_db import curation, ledger
from archive_db.dates import normalise_date, parse_year_range
from archive_db.models import Derivative, Event, Item, ModelVersion
from archive_db.queries import events_since
from archive_db.search import (
    FACETS,
    SORTS,
    STATUSES,
    SearchError,
    SearchQuery,
    _sum_facets,
    next_query,
    search,
    where_clause,
)
from archive_db.types import utcnow

ITEMS = [  # key, status, descriptive fields, EXIF make
    (
        "box1/harbour_001.tif",
        "ingested",
        {
            "title": "Fishing boats in the harbour",
            "date_text": "c. 1925",
            "place": "Whitby",
            "subjects": "boats; harbours",
            "creator": "Frank Meadow Sutcliffe",
        },
        None,
    ),
    (
        "box1/harbour_002.tif",
        "ingested",
        {"title": "Harbour wall in a storm", "date_text": "1890s", "place": "Whitby"},
        "Kodak",
    ),
    (
        "box2/wedding.jpg",
        "ingested",
        {
            "title": "Wedding party",
            "description": "The Ellis wedding outside St Mary's",
            "date_text": "12 May 1936",
            "creator": "Studio Ellis",
        },
        None,
    ),
    ("box2/unknown.jpg", "ingested", {}, "Agfa"),
    ("box3/broken.jpg", "quarantined", {"title": "Torn harbour print"}, None),
]


@pytest.fixture
def catalogue(session):
    """Two collections; restored items made by v1 (now retired) and v2 (production); a styled one."""
    with session.begin():
        agent = ledger.get_or_create_agent(session, "person", "test curator")
        coll = ledger.get_or_create_collection(session, "whitby")
        other = ledger.get_or_create_collection(session, "letters")
        items = []
        for i, (key, status, fields, make) in enumerate(ITEMS):
            item = Item(
                collection_id=coll.id,
                source_uri="file:///scans",
                source_key=key,
                sha256=f"{i:064x}",
                size=1,
                status=status,
                make=make,
            )
            session.add(item)
            session.flush()
            curation.update_metadata(session, item, fields, agent)
            items.append(item)
        session.add(
            Item(
                collection_id=other.id,
                source_uri="file:///l",
                source_key="letter_harbour.png",
                sha256="f" * 64,
                size=1,
                status="ingested",
            )
        )
        v1, v2 = (
            ModelVersion(
                name="restore-unet",
                version=v,
                task="restore",
                architecture="unet_restorer",
                weights_uri=f"file:///m/{v}",
                weights_sha256=v * 32,
                status=s,
            )
            for v, s in (("v1", "retired"), ("v2", "production"))
        )
        session.add_all([v1, v2])
        session.flush()

        def derivative(item, kind, version, model, current):
            d = Derivative(
                item_id=item.id,
                kind=kind,
                version=version,
                recipe_hash=f"{kind}{version}{item.id}",
                model_version_id=model.id if model else None,
                storage_uri=f"file:///o/{item.id}/{kind}/v{version}",
                sha256="e" * 64,
                size=1,
                is_current=current,
            )
            session.add(d)
            session.flush()
            return d

        derivative(items[0], "restored", 1, v1, False)
        derivative(items[0], "restored", 2, v2, True)
        derivative(items[1], "restored", 1, v1, True)  # stale: v1 is retired
        parent = derivative(items[2], "restored", 1, v2, True)
        styled = derivative(items[2], "style:albumen", 1, None, True)
        styled.parent_id = parent.id
    return {k: item.id for (k, *_), item in zip(ITEMS, items, strict=True)}


def keys(page) -> list[str]:
    return [h.source_key for h in page.hits]


def test_free_text_matches_whole_words_and_the_last_as_a_prefix_across_fields(session, catalogue):
    assert keys(search(session, SearchQuery(text="harbour"))) == [
        "box1/harbour_001.tif",
        "box1/harbour_002.tif",
        "box3/broken.jpg",
        "letter_harbour.png",
    ]
    assert keys(search(session, SearchQuery(text="Harbour WHITBY sto"))) == ["box1/harbour_002.tif"]
    assert keys(search(session, SearchQuery(text="whitby harb"))) == [
        "box1/harbour_001.tif",
        "box1/harbour_002.tif",
    ]
    assert keys(search(session, SearchQuery(text="harb whitby"))) == []  # only the last word is a prefix
    assert keys(search(session, SearchQuery(text="whitby harb "))) == []  # a space ends the typing
    assert keys(search(session, SearchQuery(text="sutcliffe"))) == ["box1/harbour_001.tif"]  # creator
    assert keys(search(session, SearchQuery(text="ellis mary"))) == ["box2/wedding.jpg"]  # description
    assert keys(search(session, SearchQuery(text="agfa"))) == ["box2/unknown.jpg"]  # EXIF make
    assert keys(search(session, SearchQuery(text="box2"))) == [
        "box2/wedding.jpg",
        "box2/unknown.jpg",
    ]  # key parts
    assert keys(search(session, SearchQuery(text="harbour", collection="letters"))) == ["letter_harbour.png"]
    assert search(session, SearchQuery(text="zeppelin")).hits == []


@pytest.mark.parametrize(
    "hostile", ['"', "harbour OR 1=1", "a' --", "NEAR(x y)", "*", "harbour)", "\\", "::*&|!"]
)
def test_query_syntax_is_never_passed_through(session, catalogue, hostile):
    """Only the words count: no syntax error, no operator, no injection."""
    words = " ".join(re.findall(r"\w+", hostile)) + (
        "" if re.search(r"\w$", hostile) else " "
    )  # typing or not
    assert keys(search(session, SearchQuery(text=hostile))) == keys(search(session, SearchQuery(text=words)))
    if hostile == "harbour)":
        assert len(search(session, SearchQuery(text=hostile)).hits) == 4


def test_date_range_overlaps_the_normalised_years(session, catalogue):
    assert keys(search(session, SearchQuery(year_from=1920, year_to=1929))) == ["box1/harbour_001.tif"]
    assert keys(search(session, SearchQuery(year_from=1928, year_to=1940))) == [
        "box1/harbour_001.tif",
        "box2/wedding.jpg",
    ]
    assert keys(search(session, SearchQuery(year_to=1899))) == ["box1/harbour_002.tif"]


def test_status_model_and_kind_filters(session, catalogue):
    restored = keys(search(session, SearchQuery(status="restored")))
    assert restored == ["box1/harbour_001.tif", "box1/harbour_002.tif", "box2/wedding.jpg"]
    assert keys(search(session, SearchQuery(status="stale"))) == ["box1/harbour_002.tif"]
    assert keys(search(session, SearchQuery(status="styled"))) == ["box2/wedding.jpg"]
    assert keys(search(session, SearchQuery(status="quarantined"))) == ["box3/broken.jpg"]
    # v1 made two versions, but only one of them is current
    assert keys(search(session, SearchQuery(model="restore-unet@v1"))) == ["box1/harbour_002.tif"]
    assert keys(search(session, SearchQuery(model="restore-unet@v9"))) == []
    assert keys(search(session, SearchQuery(kind="style:albumen"))) == ["box2/wedding.jpg"]
    assert search(session, SearchQuery(collection="no-such")).total == 0


def test_facets_count_the_whole_matching_set(session, catalogue):
    page = search(session, SearchQuery(limit=2))
    assert page.total == 6 and len(page.hits) == 2
    f = page.facets
    assert f["collection"] == [("whitby", 5), ("letters", 1)]
    assert f["decade"] == [(1890, 1), (1920, 1), (1930, 1)]
    assert dict(f["status"]) == {"ingested": 5, "quarantined": 1, "restored": 3, "styled": 1, "stale": 1}
    assert f["model"] == [("restore-unet@v1", 1), ("restore-unet@v2", 2)]
    narrowed = search(session, SearchQuery(text="whitby")).facets
    assert narrowed["collection"] == [("whitby", 2)]
    assert dict(narrowed["status"]) == {"ingested": 2, "restored": 2, "stale": 1}


@pytest.mark.parametrize("sort", ["id", "newest", "date", "key"])
def test_keyset_pages_visit_every_item_once_in_order(session, catalogue, sort):
    seen, q = [], SearchQuery(sort=sort, limit=2)
    while True:
        page = search(session, q, with_facets=False)
        seen += page.hits
        if not page.next_cursor:
            break
        q = SearchQuery(sort=sort, limit=2, after=page.next_cursor)
    assert len(seen) == 6 and len({h.id for h in seen}) == 6
    everything = search(session, SearchQuery(sort=sort, limit=100), with_facets=False).hits
    assert [h.id for h in seen] == [h.id for h in everything]
    if sort == "date":  # dated first, oldest first; undated last
        assert [h.date_text for h in seen][:3] == ["1890s", "c. 1925", "12 May 1936"]
    if sort == "newest":
        assert [h.id for h in seen] == sorted((h.id for h in seen), reverse=True)


def test_bad_searches_are_refused_clearly(session, catalogue):
    with pytest.raises(SearchError, match="unknown sort"):
        SearchQuery(sort="relevance")
    with pytest.raises(SearchError, match="cursor"):
        search(session, SearchQuery(after="not-a-cursor"))


def test_metadata_changes_are_events_with_old_and_new_values(session, catalogue):
    with session.begin():
        item = session.get(Item, catalogue["box1/harbour_002.tif"])
        agent = ledger.get_or_create_agent(session, "person", "ada")
        changes = curation.update_metadata(session, item, {"date_text": "1894", "place": "Whitby"}, agent)
        assert changes == {"date_text": {"old": "1890s", "new": "1894", "range": [1894, 1894]}}
        assert (
            curation.update_metadata(session, item, {"place": "Whitby"}, agent) == {}
        )  # no change, no event
    events = session.scalars(
        select(Event).where(Event.item_id == item.id, Event.type == "metadata modification")
    ).all()
    assert [e.detail["changes"] for e in events][-1]["date_text"]["old"] == "1890s"
    assert events[-1].agent.name == "ada"
    assert keys(search(session, SearchQuery(year_from=1894, year_to=1894))) == ["box1/harbour_002.tif"]
    with pytest.raises(curation.CurationError, match="unknown"):
        curation.update_metadata(session, item, {"sha256": "x"}, agent)


def test_lineage_is_a_tree_from_the_master(session, catalogue):
    tree = curation.lineage(session, session.get(Item, catalogue["box2/wedding.jpg"]))
    assert tree["type"] == "master" and tree["sha256"] == f"{2:064x}"
    [restored] = tree["children"]
    assert (restored["kind"], restored["model"], restored["current"]) == ("restored", "restore-unet@v2", True)
    [styled] = restored["children"]  # the style was made from the restored version
    assert styled["kind"] == "style:albumen" and styled["children"] == []
    assert [e["type"] for e in tree["events"]] == ["metadata modification"]


def test_review_and_rollback_are_recorded(session, catalogue):
    with session.begin():
        agent = ledger.get_or_create_agent(session, "person", "ada")
        versions = session.scalars(
            select(Derivative)
            .where(Derivative.item_id == catalogue["box1/harbour_001.tif"])
            .order_by(Derivative.version)
        ).all()
        event = curation.review(session, versions[1], "rejected", "haloes round the masts", agent)
        assert event.detail["note"] == "haloes round the masts" and versions[1].review == "rejected"
        assert curation.set_current(session, versions[0], agent).type == "rollback"
        with pytest.raises(curation.CurationError, match="already"):
            curation.set_current(session, versions[0], agent)
        with pytest.raises(curation.CurationError, match="review"):
            curation.review(session, versions[0], "maybe", "", agent)
    assert keys(search(session, SearchQuery(model="restore-unet@v1"))) == [
        "box1/harbour_001.tif",
        "box1/harbour_002.tif",
    ]
    # the database's triggers moved the item's restoring model back to v1 (retired): stale now
    assert keys(search(session, SearchQuery(status="stale"))) == [
        "box1/harbour_001.tif",
        "box1/harbour_002.tif",
    ]
    assert dict(search(session, SearchQuery()).facets["model"]) == {
        "restore-unet@v1": 2,
        "restore-unet@v2": 1,
    }
    recent = events_since(session, utcnow() - timedelta(minutes=5), ["review", "rollback"])
    assert [e.type for e in recent] == ["review", "rollback"]


@pytest.mark.parametrize(
    "text,years",
    [
        ("c. 1925", (1920, 1930)),
        ("circa 1900", (1895, 1905)),
        ("1890s", (1890, 1899)),
        ("1920-29", (1920, 1929)),
        ("1920–1935", (1920, 1935)),
        ("late 1890s", (1896, 1899)),
        ("19th century", (1800, 1899)),
        ("12 May 1936", (1936, 1936)),
        ("1936-05-12", (1936, 1936)),
        ("1925?", (1925, 1925)),
        ("unknown", (None, None)),
        ("Paris 1925", (None, None)),
        ("1930-1920", (None, None)),
        ("", (None, None)),
    ],
)
def test_written_dates_normalise_to_year_ranges(text, years):
    assert normalise_date(text) == years


def test_year_range_filters():
    assert parse_year_range("1920..1929") == (1920, 1929)
    assert parse_year_range("..1950") == (None, 1950)
    assert parse_year_range("1920s") == (1920, 1929)
    with pytest.raises(ValueError, match="not a year"):
        parse_year_range("soon")


FILTERS = {  # each filter's values in the test catalogue, None for unset
    "text": [None, "harbour", "harb", "whitby harbour", "box2", "wedding ellis ", "zeppelin"],
    "collection": [None, "whitby", "letters", "no-such"],
    "years": [
        None,
        (1920, 1929),
        (None, 1899),
        (1928, 1940),
        (1936, None),
        (1899, 1899),
        (None, 1890),
        (1700, 1800),
    ],
    "status": [None, *STATUSES],
    "model": [None, "restore-unet@v1", "restore-unet@v2", "restore-unet@v9"],
    "kind": [None, "restored", "style:albumen"],
}


def queries(sort: str) -> list[SearchQuery]:
    """Each filter's every value alone, and 40 seeded combinations of all of them."""
    rng = random.Random(sort)

    def make(choice: dict) -> SearchQuery:
        year_from, year_to = choice["years"] or (None, None)
        fields = {k: v for k, v in choice.items() if k != "years"}
        return SearchQuery(**fields, year_from=year_from, year_to=year_to, sort=sort, limit=2)

    alone = [make({**dict.fromkeys(FILTERS), name: v}) for name, values in FILTERS.items() for v in values]
    mixed = [make({name: rng.choice(values) for name, values in FILTERS.items()}) for _ in range(40)]
    return alone + mixed


def reference(session, q: SearchQuery) -> tuple[list[int], int, dict]:
    """What the previous implementation gave: every matching item in the sort's order, and the
    facets by one grouped count over the search's own WHERE clause, nothing cached."""
    where = where_clause(session, q)
    if where is None:
        return [], 0, {name: [] for name in FACETS}
    order = {
        "id": lambda i: i.id,
        "newest": lambda i: -i.id,
        "date": lambda i: (99999 if i.date_from is None else i.date_from, i.id),
        "key": lambda i: (i.source_key, i.id),
    }[q.sort]
    ids = [i.id for i in sorted(session.scalars(select(Item).where(*where)), key=order)]
    decade = (Item.date_from // 10) * 10
    cols = (Item.collection_id, Item.status, decade, Item.restored_model_id, Item.styled)
    cube = session.execute(select(*cols, func.count()).where(*where).group_by(*cols)).all()
    facets = _sum_facets(session, [tuple(r) for r in cube])
    return ids, sum(n for _, n in facets["collection"]), facets


def paged(session, q: SearchQuery) -> tuple[list[int], int, dict]:
    first = page = search(session, q)
    ids = [h.id for h in page.hits]
    while (q := next_query(q, page)) is not None:
        page = search(session, q)
        assert (page.total, page.facets) == (first.total, first.facets)  # the next pages agree
        ids += [h.id for h in page.hits]
    return ids, first.total, first.facets


@pytest.mark.parametrize("sort", SORTS)
def test_results_and_facets_equal_a_plain_count_for_every_sort_and_filter(session, catalogue, sort):
    """The cached whole-catalogue cube (dates by overlap, status and collection summed in Python)
    and the per-search facet cache give exactly what a grouped count over the WHERE clause gives,
    before and after the catalogue changes."""
    for step in ("before", "after a write", "after a model is retired"):
        for q in queries(sort):
            assert paged(session, q) == reference(session, q), (step, q)
        if step == "after a write":  # nothing else written: what is stale changes all the same
            session.scalars(select(ModelVersion).where(ModelVersion.version == "v2")).one().status = "retired"
            session.commit()
        if step == "before":  # a write moves the change marker: nothing cached may survive it
            item = session.get(Item, catalogue["box2/unknown.jpg"])
            item.status = "quarantined"  # each part of the facets changes alone, on its own item
            dated = session.get(Item, catalogue["box1/harbour_002.tif"])
            dated.date_from, dated.date_to = 1921, 1925
            agent = ledger.get_or_create_agent(session, "person", "test curator")
            ledger.add_event(session, "metadata", agent, "success", {}, item_id=item.id)
            v1 = session.scalars(select(ModelVersion).where(ModelVersion.version == "v1")).one()
            session.add(  # a restoration the triggers carry to the item (and its facet key)
                Derivative(
                    item_id=catalogue["box2/wedding.jpg"],
                    kind="restored",
                    version=9,
                    recipe_hash="later",
                    model_version_id=v1.id,
                    storage_uri="file:///o/later",
                    sha256="e" * 64,
                    size=1,
                    is_current=False,
                )
            )
            session.flush()
            session.execute(
                update(Derivative)
                .where(Derivative.item_id == catalogue["box2/wedding.jpg"], Derivative.kind == "restored")
                .values(is_current=Derivative.version == 9)
            )
            session.commit()


def test_a_large_full_text_search_on_postgresql_is_estimated_from_a_sample_and_says_so(
    session, catalogue, monkeypatch
):
    """Above the threshold PostgreSQL estimates the facets from one item in 16 (by a hash of the
    id) and marks the page; SQLite counts exactly; both give the same hits. Items alternate
    between two collections, as recto and verso scans would: a sample by id residue would put
    every sampled item in one of them."""
    import archive_db.search as searching

    monkeypatch.setattr(searching, "ESTIMATE_ABOVE", 200)
    other = session.scalars(select(Item.collection_id).where(Item.source_key == "letter_harbour.png")).one()
    whitby = session.get(Item, catalogue["box2/wedding.jpg"]).collection_id
    for i in range(640):
        session.add(
            Item(
                collection_id=(whitby, other)[i % 2],
                source_uri="file:///scans",
                source_key=f"regattas/{i:04d}.tif",
                sha256=f"{i + 100:064x}",
                size=1,
                status="ingested",
                title="Regatta day",
            )
        )
    session.commit()
    page = search(session, SearchQuery(text="regatta", limit=5))
    exact = reference(session, SearchQuery(text="regatta", limit=5))
    assert [h.id for h in page.hits] == exact[0][:5]
    if session.get_bind().dialect.name == "sqlite":
        assert (page.estimate, page.total, page.facets) == (None, 640, exact[2])
        return
    assert page.estimate is not None and 0.05 < page.estimate < 0.5
    assert abs(page.total - 640) <= page.estimate * 640 * 1.5  # within the stated margin (and some)
    counts = dict(page.facets["collection"])
    assert set(counts) == {"whitby", "letters"} and all(n % 16 == 0 for n in counts.values())
    assert all(abs(n - 320) <= 0.5 * 320 for n in counts.values())  # both sides of the alternation
    assert search(session, next_query(SearchQuery(text="regatta", limit=5), page)).estimate == page.estimate
    monkeypatch.setattr(searching, "ESTIMATE_ABOVE", 10_000)
    session.add(
        Item(
            collection_id=whitby,
            source_uri="file:///x",
            source_key="x",
            sha256="9" * 64,
            size=1,
            status="ingested",
        )
    )
    session.commit()  # the catalogue changed: counted again, exactly this time
    page = search(session, SearchQuery(text="regatta", limit=5))
    assert (page.estimate, page.total, page.facets) == (None, 640, exact[2])


def test_a_write_committed_after_a_later_one_moves_the_change_marker(db_url, session, catalogue):
    """PostgreSQL hands out ids before commit: a transaction holding a lower id may commit after a
    higher one was seen. Its item must be counted all the same (by the whole-catalogue cube and
    by a search's kept facets)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: ids are committed in the order they are taken")
    from sqlalchemy.orm import Session

    from archive_db.engine import make_engine

    engine = make_engine(db_url)
    whitby = session.get(Item, catalogue["box2/wedding.jpg"]).collection_id

    def item(key: str) -> Item:
        return Item(
            collection_id=whitby,
            source_uri="file:///scans",
            source_key=key,
            sha256=key.encode().hex().ljust(64, "0")[:64],
            size=1,
            status="ingested",
            title="Zeppelin over the pier",
        )

    searches = (SearchQuery(collection="whitby"), SearchQuery(text="zeppelin"))
    with Session(engine) as slow, Session(engine) as fast:
        slow.add(item("late.tif"))
        slow.flush()  # takes its id, and holds its transaction open
        fast.add(item("early.tif"))
        fast.commit()  # a higher id, committed first
        seen = [search(session, q).total for q in searches]
        session.commit()
        slow.commit()
    assert [search(session, q).total for q in searches] == [n + 1 for n in seen]
    engine.dispose()
