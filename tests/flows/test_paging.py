"""Runs select their work a window of ids at a time (memory flat with the collection's size): each item
once across page boundaries while other processes add items and make versions meanwhile, on
SQLite and PostgreSQL; and whole runs whose work spans several pages."""

from __future__ import annotations

import io
import itertools

import pytest
from PIL import Image
from sqlalchemy import select

from archive_db import ledger
from archive_db.derivatives import items_needing, stale_items
from archive_db.models import Derivative, Item, ModelVersion
from flows.db import sessions_for
from flows.restore import recipe_for, restore_collection, work_pages
from tests.flows.test_restore import archive, checkpoint, register, stored  # noqa: F401, F811 (a fixture)

_counter = itertools.count()


def add_items(settings, coll_id: int, n: int, status: str = "ingested") -> list[int]:
    """``n`` new items, as an ingest running beside the pager would add them."""
    with sessions_for(settings.db.url)() as s, s.begin():
        items = [
            Item(
                collection_id=coll_id,
                source_uri="file:///scans",
                source_key=f"box/scan-{next(_counter):05d}.tif",
                sha256=f"{next(_counter):064x}",
                size=1,
                status=status,
                width=10,
                height=10,
            )
            for _ in range(n)
        ]
        s.add_all(items)
        s.flush()
        return [i.id for i in items]


def add_version(settings, item_id: int, model_id: int, recipe_hash: str, current: bool = True) -> None:
    """A ``restored`` version of the item, as another run would record it."""
    with sessions_for(settings.db.url)() as s, s.begin():
        version = 1 + len(s.scalars(select(Derivative.id).where(Derivative.item_id == item_id)).all())
        if current:
            for d in s.scalars(
                select(Derivative).where(Derivative.item_id == item_id, Derivative.is_current)
            ):
                d.is_current = False
            s.flush()
        s.add(
            Derivative(
                item_id=item_id,
                kind="restored",
                version=version,
                recipe_hash=recipe_hash,
                model_version_id=model_id,
                storage_uri=f"file:///o/{item_id}/v{version}",
                sha256="e" * 64,
                size=1,
                is_current=current,
            )
        )


@pytest.fixture
def catalogue(settings):
    """Two collections and two versions of a restorer (v1 older than v2)."""
    from flows.db import ensure_schema

    ensure_schema(settings.db.url)
    with sessions_for(settings.db.url)() as s, s.begin():
        coll = ledger.get_or_create_collection(s, "prints")
        other = ledger.get_or_create_collection(s, "letters")
        models = [
            ModelVersion(
                name="restore-unet",
                version=v,
                task="restore",
                architecture="unet_restorer",
                weights_uri=f"file:///m/{v}",
                weights_sha256=v * 32,
                status="candidate",
            )
            for v in ("v1", "v2")
        ]
        s.add_all(models)
        s.flush()
        for m in models:
            s.expunge(m)
        return settings, coll.id, other.id, models


def test_each_item_once_across_pages_while_items_are_added_and_made_elsewhere(catalogue):
    settings, coll_id, other_id, (_, v2) = catalogue
    settings.restore.select_page = 3
    recipe = recipe_for(v2, "restored")
    before = add_items(settings, coll_id, 10)
    add_items(settings, coll_id, 2, status="quarantined")  # never work
    seen: list[int] = []
    added: list[int] = []
    made_elsewhere: list[int] = []
    for n, page in enumerate(work_pages(settings, coll_id, v2, recipe)):
        assert 0 < len(page) <= 3 and [r[0] for r in page] == sorted(r[0] for r in page)
        seen += [r[0] for r in page]
        if n >= 5:
            continue  # the ingest beside the run has ended
        added += add_items(settings, coll_id, 2)  # an ingest beside the run
        add_items(settings, other_id, 1)  # another collection's: never this run's work
        ahead = [i for i in before + added if i > seen[-1] and i not in made_elsewhere]
        if ahead:  # another run records this recipe's version of an item not reached yet
            add_version(settings, ahead[0], v2.id, recipe.hash)
            made_elsewhere.append(ahead[0])
        if len(seen) > 100:
            break  # a pager that never ends fails below rather than hanging
    assert len(seen) == len(set(seen)), "an item was given twice"
    assert sorted(seen) == sorted(set(before + added) - set(made_elsewhere))
    assert len(made_elsewhere) >= 3 and len(added) >= 10  # the pages really crossed such changes


def test_a_reprocess_pages_through_exactly_the_stale_items(catalogue):
    settings, coll_id, _, (v1, v2) = catalogue
    settings.restore.select_page = 2
    ids = add_items(settings, coll_id, 9)
    for i in ids[:7]:  # seven made by v1; of those, two already have v2's version beside them
        add_version(settings, i, v1.id, f"v1-{i}")
    recipe = recipe_for(v2, "restored")
    for i in ids[:2]:
        add_version(settings, i, v2.id, recipe.hash, current=False)
    paged = [r[0] for page in work_pages(settings, coll_id, v2, recipe, stale_only=True) for r in page]
    with sessions_for(settings.db.url)() as s:
        stale = set(stale_items(s, coll_id, "restored", v2))
        whole = [r[0] for r in items_needing(s, coll_id, "restored", recipe.hash) if r[0] in stale]
    assert paged == whole == ids[2:7]


def test_restore_style_and_reprocess_runs_spanning_many_pages(archive, tmp_path):  # noqa: F811
    from flows.reprocess import reprocess_collection
    from flows.stylize import stylize_collection

    settings = archive
    settings.restore.select_page = 2  # five items: three pages
    summary = restore_collection("letters", settings=settings)
    assert (summary.selected, summary.restored, summary.failed, summary.not_done) == (5, 5, 0, 0)
    styled = stylize_collection("letters", "albumen", limit=3, settings=settings)
    assert (styled.selected, styled.restored) == (3, 3)  # --limit holds across pages
    assert stylize_collection("letters", "albumen", settings=settings).selected == 2  # the rest
    register(settings, checkpoint(tmp_path, "v2", 2))
    report = reprocess_collection("letters", "restore-unet@v2", sample=2, settings=settings)
    assert (report.summary.selected, report.summary.restored, report.compared) == (5, 5, 5)
    rows = stored(settings, f"{report.report_prefix}/changes.csv").decode().splitlines()
    assert len(rows) == 6 and len({r.split(",")[0] for r in rows[1:]}) == 5  # each item once
    assert [c.mean_abs_change for c in report.changes] == sorted(
        (c.mean_abs_change for c in report.changes), reverse=True
    )
    sheet = Image.open(io.BytesIO(stored(settings, f"{report.report_prefix}/contact-sheet.jpg")))
    assert 2 * 256 <= sheet.height < 3 * 256  # the sample: the two largest changes
    assert reprocess_collection("letters", "restore-unet@v2", settings=settings).summary.selected == 0
