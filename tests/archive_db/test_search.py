"""Curators' queries on SQLite (FTS5) and PostgreSQL (tsvector): free text, filters, facets,
keyset pages, lineage and curation events; plus the written-date normaliser."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from archive_db import curation, ledger
from archive_db.dates import normalise_date, parse_year_range
from archive_db.models import Derivative, Event, Item, ModelVersion
from archive_db.queries import events_since
from archive_db.search import SearchError, SearchQuery, search
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


def test_free_text_matches_words_as_prefixes_across_fields(session, catalogue):
    assert keys(search(session, SearchQuery(text="harbour"))) == [
        "box1/harbour_001.tif",
        "box1/harbour_002.tif",
        "box3/broken.jpg",
        "letter_harbour.png",
    ]
    assert keys(search(session, SearchQuery(text="Harb WHITBY storm"))) == ["box1/harbour_002.tif"]
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
    words = " ".join(re.findall(r"\w+", hostile))
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
