"""The manifest import (matching, unmatched rows, malformed files, re-import) and the curators'
commands' output formats (table, --json, --csv), through the ``archive`` entry point."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import func, select

from archive_db import ledger
from archive_db.models import Event, Item
from flows.cli.main import main
from flows.db import ensure_schema, sessions_for


@pytest.fixture
def catalogue(settings):
    ensure_schema(settings.db.url)
    with sessions_for(settings.db.url)() as s, s.begin():
        coll = ledger.get_or_create_collection(s, "postcards")
        for i, key in enumerate(("scans/pier.tif", "scans/promenade.tif", "scans/tram <b>.tif")):
            s.add(
                Item(
                    collection_id=coll.id,
                    source_uri="file:///in",
                    source_key=key,
                    sha256=f"{i + 10:064x}",
                    size=1,
                    status="ingested",
                    width=800,
                    height=600,
                )
            )
    return settings


def run(settings, capsys, *args: str) -> tuple[int, str, str]:
    code = main(["--db", settings.db.url, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def events(settings) -> int:
    with sessions_for(settings.db.url)() as s:
        return s.scalar(select(func.count()).select_from(Event).where(Event.type == "metadata modification"))


MANIFEST = """Filename,Title,Date,Photographer,Place,Subjects,Shelf mark
scans/pier.tif,The pier at dusk,c. 1905,A. Robinson,Brighton,piers; seaside,PC-001
scans/promenade.tif,On the promenade,1920s,,Brighton,,PC-002
scans/ferry.tif,The ferry,1910,,,,PC-003
"""


def test_manifest_matches_rows_reports_the_rest_and_reimport_changes_nothing(catalogue, capsys, tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text(MANIFEST)
    code, out, err = run(
        catalogue, capsys, "import-metadata", str(path), "--collection", "postcards", "--user", "ada"
    )
    assert code == 0, err
    assert "3 rows: 2 items changed, 0 unchanged, 1 unmatched" in out
    assert "line 4: no item with key 'scans/ferry.tif'" in err and "unknown columns: shelf_mark" in err
    with sessions_for(catalogue.db.url)() as s:
        pier = s.scalar(select(Item).where(Item.source_key == "scans/pier.tif"))
        assert (pier.title, pier.date_from, pier.date_to, pier.creator) == (
            "The pier at dusk",
            1900,
            1910,
            "A. Robinson",
        )
        event = s.scalar(select(Event).where(Event.item_id == pier.id))
        assert event.agent.name == "ada" and event.detail["changes"]["title"] == {
            "old": None,
            "new": "The pier at dusk",
        }
        assert event.detail["manifest"] == "manifest.csv" and len(event.detail["manifest_sha256"]) == 64
    assert events(catalogue) == 2
    code, out, _ = run(catalogue, capsys, "import-metadata", str(path), "-c", "postcards")
    assert "0 items changed, 2 unchanged" in out and events(catalogue) == 2  # no new events either
    path.write_text(MANIFEST.replace("The pier at dusk", "The pier at night"))
    run(catalogue, capsys, "import-metadata", str(path), "-c", "postcards")
    assert events(catalogue) == 3


def test_a_manifest_row_keyed_by_a_duplicates_key_describes_its_item(catalogue, capsys, tmp_path):
    from archive_db.models import Duplicate

    with sessions_for(catalogue.db.url)() as s, s.begin():
        pier = s.scalar(select(Item).where(Item.source_key == "scans/pier.tif"))
        s.add(
            Duplicate(
                item_id=pier.id, collection_id=pier.collection_id, source_key="copies/pier-again.tif", size=1
            )
        )
    path = tmp_path / "manifest.csv"
    path.write_text("Filename,Title\n copies/pier-again.tif ,The pier twice\n")
    code, out, err = run(catalogue, capsys, "import-metadata", str(path), "--collection", "postcards")
    assert code == 0 and "1 items changed" in out and "0 unmatched" in out, (out, err)
    with sessions_for(catalogue.db.url)() as s:
        assert s.scalar(select(Item.title).where(Item.source_key == "scans/pier.tif")) == "The pier twice"


def test_manifest_by_identifier_and_strict_mode(catalogue, capsys, tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text(
        f"identifier;title\n{11:064x};Promenade\n999;Nobody\n"
    )  # semicolons, as some spreadsheets save
    code, _, err = run(catalogue, capsys, "import-metadata", str(path), "-c", "postcards", "--strict")
    assert code == 1 and "nothing was imported" in err and events(catalogue) == 0
    code, out, _ = run(catalogue, capsys, "import-metadata", str(path), "-c", "postcards")
    assert code == 0 and "1 items changed" in out


@pytest.mark.parametrize(
    "content,message",
    [
        (
            b"Filename,Title\nscans/pier.tif,Changed first\nscans/promenade.tif,Prom,extra\n",
            "line 3 has 3 fields, the header 2",
        ),
        (b"Title,Date\nPier,1900\n", "no key column"),
        (b"Filename,Title\nscans/pier.tif,\xff\xfe broken\n", "not UTF-8"),
        (b"", "empty"),
        (b"Filename,Title,Title\nscans/pier.tif,a,b\n", "repeated column"),
    ],
)
def test_a_malformed_manifest_is_refused_whole(catalogue, capsys, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    code, out, err = run(catalogue, capsys, "import-metadata", str(path), "-c", "postcards")
    assert code != 0 and out == ""
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert events(catalogue) == 0  # not even the good first row


def test_search_formats(catalogue, capsys, tmp_path):
    (tmp_path / "m.csv").write_text(MANIFEST)
    run(catalogue, capsys, "import-metadata", str(tmp_path / "m.csv"), "-c", "postcards")
    code, out, _ = run(catalogue, capsys, "search", "brighton", "--json")
    data = json.loads(out)
    assert (
        code == 0
        and data["total"] == 2
        and [h["source_key"] for h in data["hits"]] == ["scans/pier.tif", "scans/promenade.tif"]
    )
    assert {"value": 1900, "count": 1} in data["facets"]["decade"] and data["next_cursor"] is None
    code, out, _ = run(catalogue, capsys, "search", "--csv", "--sort", "key")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["source_key"] for r in rows] == ["scans/pier.tif", "scans/promenade.tif", "scans/tram <b>.tif"]
    assert rows[0]["title"] == "The pier at dusk"
    code, out, _ = run(catalogue, capsys, "search", "--limit", "2")
    assert "3 items" in out and "scans/tram" not in out and "next page: --after " in out
    cursor = out.split("--after ")[1].split()[0]
    code, out, _ = run(catalogue, capsys, "search", "--limit", "2", "--after", cursor)
    assert "scans/tram <b>.tif" in out  # shown as written, not read as markup


@pytest.mark.parametrize(
    "args,message",
    [
        (["search", "--date", "soon"], "not a year"),
        (["search", "--sort", "relevance"], "relevance"),
        (["search", "--json", "--csv"], "one of --json and --csv"),
        (["search", "--after", "garbage"], "cursor"),
        (["events", "--since", "yesterday"], "neither an ISO date"),
        (["lineage", "nope/nothing"], "no item matches"),
        (["import-metadata", "/no/such.csv", "-c", "postcards"], "cannot read"),
    ],
)
def test_bad_curator_arguments_print_one_line(catalogue, capsys, args, message):
    code, _, err = run(catalogue, capsys, *args)
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1


def test_events_and_lineage(catalogue, capsys, tmp_path):
    (tmp_path / "m.csv").write_text(MANIFEST)
    run(catalogue, capsys, "import-metadata", str(tmp_path / "m.csv"), "-c", "postcards")
    code, out, _ = run(
        catalogue, capsys, "events", "--since", "1h", "--type", "metadata modification", "--json"
    )
    assert code == 0 and [e["item_id"] for e in json.loads(out)] == [1, 2]
    code, out, _ = run(catalogue, capsys, "lineage", "postcards/scans/pier.tif")
    assert code == 0 and "master scans/pier.tif" in out and "metadata modification" in out
    code, out, _ = run(catalogue, capsys, "show", "1", "--json")
    assert json.loads(out)["title"] == "The pier at dusk"


@pytest.mark.parametrize("ref", [str(2**31), str(2**63), str(2**70)])
def test_an_id_past_any_column_is_not_found_in_one_line(catalogue, capsys, ref):
    code, out, err = run(catalogue, capsys, "show", ref)
    assert (
        code == 1
        and err.strip() == f"error: no item matches '{ref}' (give an id, a sha256 prefix or COLLECTION/KEY)"
    )
