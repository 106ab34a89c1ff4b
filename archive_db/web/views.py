"""What each page of the web catalogue shows, as plain data: the HTML pages render it and the
JSON API returns it, so every page has an API behind it that says the same thing."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from archive_db.curation import event_dict, lineage
from archive_db.derivatives import item_derivatives
from archive_db.disclosure import disclosure_of
from archive_db.models import DESCRIPTIVE_FIELDS, Collection, Derivative, Item, ModelVersion, Run
from archive_db.queries import collection_summaries, item_events
from archive_db.search import SAMPLE, Page, SearchQuery, search

STRIP = 8  # thumbnails per collection on the overview


def collections_view(session: Session) -> list[dict[str, Any]]:
    restored = dict(
        session.execute(
            select(Item.collection_id, func.count(func.distinct(Derivative.item_id)))
            .join(Derivative, Derivative.item_id == Item.id)
            .where(Derivative.is_current, Derivative.kind == "restored")
            .group_by(Item.collection_id)
        ).all()
    )
    ids = dict(session.execute(select(Collection.name, Collection.id)).all())
    out = []
    for s in collection_summaries(session):
        cid = ids[s.name]
        strip = session.scalars(
            select(Item.id)
            .where(Item.collection_id == cid, Item.thumbnail_key.is_not(None))
            .order_by(Item.id)
            .limit(STRIP)
        ).all()
        out.append(
            {
                "name": s.name,
                "items": s.items,
                "ingested": s.ingested,
                "quarantined": s.quarantined,
                "restored": restored.get(cid, 0),
                "duplicates": s.duplicates,
                "bytes": s.bytes,
                "created_at": s.created_at.isoformat(),
                "thumbnails": list(strip),
            }
        )
    return out


def search_view(session: Session, q: SearchQuery) -> dict[str, Any]:
    page: Page = search(session, q)
    return {
        "query": q.filters() | {"sort": q.sort},
        "total": page.total,
        # None: the total and the facets are exact; else estimated from one in ``sample`` of the
        # matches, the total within this fraction of the exact one at 95% confidence
        "estimate": page.estimate,
        "sample": SAMPLE,
        "hits": [asdict(h) for h in page.hits],
        "facets": {k: [{"value": v, "count": n} for v, n in vs] for k, vs in page.facets.items()},
        "next_cursor": page.next_cursor,
    }


def item_view(session: Session, item: Item) -> dict[str, Any]:
    derivatives = item_derivatives(session, item.id)
    models = {m.id: m for m in session.scalars(select(ModelVersion))} if derivatives else {}
    current = next((d for d in derivatives if d.is_current and d.kind == "restored"), None)
    current = current or next((d for d in derivatives if d.is_current), None)
    technical = {
        k: getattr(item, k)
        for k in (
            "format",
            "width",
            "height",
            "mode",
            "bit_depth",
            "dpi_x",
            "dpi_y",
            "icc_description",
            "orientation",
            "capture_date",
            "make",
            "model",
            "size",
        )
    }
    return {
        "id": item.id,
        "collection": item.collection.name,
        "source_uri": item.source_uri,
        "source_key": item.source_key,
        "sha256": item.sha256,
        "status": item.status,
        "quarantine_reason": item.quarantine_reason,
        "has_thumbnail": item.thumbnail_key is not None,
        "descriptive": {k: getattr(item, k) for k in DESCRIPTIVE_FIELDS}
        | {"date_from": item.date_from, "date_to": item.date_to},
        "technical": technical,
        "exif": item.exif or {},
        "current": current.id if current else None,
        # IIIF: the item's manifest, and the Image API base of its master and of each version
        # (relative to the catalogue's root; the API makes them absolute)
        "manifest": f"/iiif/presentation/items/{item.id}/manifest.json",
        "iiif": {"master": f"/iiif/3/master-{item.id}"},
        "versions": [_version(d, models.get(d.model_version_id)) for d in derivatives],
        "events": [event_dict(e) for e in item_events(session, item.id)],
    }


def _version(d: Derivative, model: ModelVersion | None) -> dict[str, Any]:
    return {
        "id": d.id,
        "kind": d.kind,
        "version": d.version,
        "current": d.is_current,
        "review": d.review,
        "model": f"{model.name}@{model.version}" if model else None,
        "iiif": f"/iiif/3/derivative-{d.id}",
        "disclosure": disclosure_of(model.task, model.architecture).as_dict() if model else None,
        "recipe_hash": d.recipe_hash,
        "recipe": d.recipe,
        # an enlargement's factor (1: the master's size), for viewers that size its image
        "scale": int(((d.recipe or {}).get("params") or {}).get("scale", 1)),
        "sha256": d.sha256,
        "size": d.size,
        "storage_uri": d.storage_uri,
        "parent_id": d.parent_id,
        "created_at": d.created_at.isoformat(),
    }


def lineage_view(session: Session, item: Item) -> dict[str, Any]:
    return lineage(session, item)


def models_view(session: Session) -> list[dict[str, Any]]:
    used = dict(
        session.execute(
            select(Derivative.model_version_id, func.count(func.distinct(Derivative.item_id)))
            .where(Derivative.is_current)
            .group_by(Derivative.model_version_id)
        ).all()
    )
    rows = session.scalars(
        select(ModelVersion).order_by(ModelVersion.task, ModelVersion.name, ModelVersion.created_at)
    )
    return [
        {
            "id": m.id,
            "name": m.name,
            "version": m.version,
            "task": m.task,
            "architecture": m.architecture,
            "status": m.status,
            "weights_sha256": m.weights_sha256,
            "metrics": m.metrics or {},
            "items_current": used.get(m.id, 0),
            "created_at": m.created_at.isoformat(),
        }
        for m in rows
    ]


def runs_view(session: Session, limit: int = 100) -> list[dict[str, Any]]:
    query = select(Run, Collection.name).outerjoin(Collection, Collection.id == Run.collection_id)
    rows = session.execute(query.order_by(Run.id.desc()).limit(limit)).all()
    return [
        {
            "id": r.id,
            "flow": r.flow,
            "collection": name,
            "status": r.status,
            "parameters": r.parameters,
            "counts": r.counts or {},
            "code_version": r.code_version,
            "started_at": r.started_at.isoformat(),
            "finished_at": r.finished_at.isoformat() if r.finished_at else None,
            "seconds": round((r.finished_at - r.started_at).total_seconds(), 1) if r.finished_at else None,
        }
        for r, name in rows
    ]


def collection_items(session: Session, name: str) -> list[tuple[int, str]] | None:
    """(id, title or source key) of a collection's viewable items, by id; None: no such collection."""
    found = session.scalars(select(Collection).where(Collection.name == name)).one_or_none()
    if found is None:
        return None
    rows = session.execute(
        select(Item.id, Item.title, Item.source_key)
        .where(Item.collection_id == found.id, Item.status != "quarantined")
        .order_by(Item.id)
    )
    return [(i, title or key) for i, title, key in rows]
