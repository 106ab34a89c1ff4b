"""The JSON API behind every page, the image routes, and the write actions (token needed)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import AfterValidator, BaseModel, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from archive_db import curation
from archive_db.ledger import get_or_create_agent
from archive_db.models import Derivative, Item
from archive_db.web import views
from archive_db.web.core import (
    MAX_MASK_BODY,
    Catalogue,
    CatalogueDep,
    HTTPProblem,
    get_derivative,
    get_item,
    require_token,
    search_query,
)
from archive_db.web.media import MaskRefused, MediaMissing

router = APIRouter()
IMAGE_CACHE = {"Cache-Control": "private, max-age=3600"}


@router.get("/api/collections")
def api_collections(cat: Catalogue = CatalogueDep) -> list[dict]:
    with cat.read() as session:
        return views.collections_view(session)


# Documented for the OpenAPI schema; read (and answered 400 when wrong) by ``search_query``, the
# same reader as the search page's, so a link and an API call are the same search.
SEARCH_PARAMETERS = {
    "text": ("string", "words to find in titles, descriptions, keys, places, creators and subjects"),
    "collection": ("string", "a collection's name"),
    "year_from": ("integer", "items whose date range reaches this year or later"),
    "year_to": ("integer", "items whose date range starts this year or earlier"),
    "status": ("string", "ingested, quarantined, restored or styled"),
    "model": ("string", "NAME@VERSION of the model that made a current derivative"),
    "kind": ("string", "has a current derivative of this kind (restored, style:albumen …)"),
    "sort": ("string", "id, newest, date or key"),
    "limit": ("integer", "hits per page, 1 to 500"),
    "after": ("string", "the next_cursor of the previous page"),
}
_SEARCH_OPENAPI = {
    "parameters": [
        {"name": name, "in": "query", "required": False, "description": text, "schema": {"type": kind}}
        for name, (kind, text) in SEARCH_PARAMETERS.items()
    ]
}


@router.get("/api/search", openapi_extra=_SEARCH_OPENAPI)
def api_search(request: Request, cat: Catalogue = CatalogueDep) -> dict:
    q = search_query(request)
    with cat.read() as session:
        return views.search_view(session, q)


@router.get("/api/items/{item_id}")
def api_item(item_id: int, request: Request, cat: Catalogue = CatalogueDep) -> dict:
    with cat.read() as session:
        item = views.item_view(session, get_item(session, item_id))
    root = str(request.base_url).rstrip("/")  # IIIF wants absolute URLs
    item["manifest"] = root + item["manifest"]
    item["iiif"] = {"master": root + item["iiif"]["master"]} | {
        str(v["id"]): root + v["iiif"] for v in item["versions"]
    }
    for v in item["versions"]:
        v["iiif"] = root + v["iiif"]
    return item


@router.get("/api/items/{item_id}/lineage")
def api_lineage(item_id: int, cat: Catalogue = CatalogueDep) -> dict:
    with cat.read() as session:
        return views.lineage_view(session, get_item(session, item_id))


@router.get("/api/models")
def api_models(cat: Catalogue = CatalogueDep) -> list[dict]:
    with cat.read() as session:
        return views.models_view(session)


@router.get("/api/runs")
def api_runs(cat: Catalogue = CatalogueDep) -> list[dict]:
    with cat.read() as session:
        return views.runs_view(session)


# -- images: by catalogue id only; the media source reads the URIs the catalogue records ------


def _row(cat: Catalogue, getter, row_id: int):
    with cat.read() as session:
        return getter(session, row_id)


def _image(read, row, what: str, download: str | None = None) -> Response:
    try:
        data = read(row)
    except MediaMissing as exc:
        raise HTTPProblem(404, f"{what}: {exc}") from None
    data, kind = data if isinstance(data, tuple) else (data, "image/jpeg")
    headers = dict(IMAGE_CACHE)
    if download:
        headers["Content-Disposition"] = f'attachment; filename="{download}"'
    return Response(data, media_type=kind, headers=headers)


def _safe_name(name: str) -> str:
    """A download file name with nothing that could break out of the header."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name.rsplit("/", 1)[-1])[:120] or "file"


@router.get("/media/items/{item_id}/thumbnail")
def media_thumbnail(item_id: int, cat: Catalogue = CatalogueDep) -> Response:
    item = _row(cat, get_item, item_id)
    return _image(cat.media.thumbnail, item, f"thumbnail of item {item_id}")


@router.get("/media/items/{item_id}/preview")
def media_preview(item_id: int, cat: Catalogue = CatalogueDep) -> Response:
    item = _row(cat, get_item, item_id)
    return _image(lambda i: cat.media.preview(i, cat.preview_px), item, f"preview of item {item_id}")


@router.get("/media/items/{item_id}/master")
def media_master(item_id: int, cat: Catalogue = CatalogueDep) -> Response:
    item = _row(cat, get_item, item_id)
    return _image(cat.media.master, item, f"master of item {item_id}", download=_safe_name(item.source_key))


@router.get("/media/derivatives/{derivative_id}/preview")
def media_derivative_preview(derivative_id: int, cat: Catalogue = CatalogueDep) -> Response:
    d = _row(cat, get_derivative, derivative_id)
    return _image(cat.media.derivative_preview, d, f"access copy of derivative {derivative_id}")


@router.get("/media/derivatives/{derivative_id}/metadata.json")
def media_derivative_sidecar(derivative_id: int, cat: Catalogue = CatalogueDep) -> Response:
    d = _row(cat, get_derivative, derivative_id)
    return _image(cat.media.derivative_sidecar, d, f"sidecar of derivative {derivative_id}")


@router.get("/media/derivatives/{derivative_id}/file")
def media_derivative_file(derivative_id: int, cat: Catalogue = CatalogueDep) -> Response:
    d = _row(cat, get_derivative, derivative_id)
    name = _safe_name(
        f"item{d.item_id}-{d.kind.replace(':', '-')}-v{d.version}-{d.storage_uri.rsplit('/', 1)[-1]}"
    )
    return _image(cat.media.derivative_file, d, f"derivative {derivative_id}", download=name)


@router.get("/media/derivatives/{derivative_id}/mask.png")
def media_derivative_mask(derivative_id: int, cat: Catalogue = CatalogueDep) -> Response:
    """The damage mask a restored version was written with (white = filled), to correct and upload."""
    d = _row(cat, get_derivative, derivative_id)
    name = _safe_name(f"item{d.item_id}-{d.kind.replace(':', '-')}-v{d.version}-mask.png")
    return _image(
        lambda row: (cat.media.derivative_mask(row), "image/png"),
        d,
        f"derivative {derivative_id}",
        download=name,
    )


# -- writes ----------------------------------------------------------------------------------


def _storable(text: str) -> str:
    """Text the catalogue can store: no NUL byte (PostgreSQL refuses them), no lone surrogate."""
    if "\x00" in text:
        raise ValueError("must not contain a NUL byte")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (a lone surrogate is not)") from None
    return text


Storable = AfterValidator(_storable)
User = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable]
Note = Annotated[str, StringConstraints(max_length=2000), Storable]


class ReviewBody(BaseModel):
    user: User
    state: Literal["approved", "rejected"]
    note: Note = ""


class CurrentBody(BaseModel):
    user: User
    note: Note = ""


class MetadataBody(BaseModel):
    user: User
    fields: dict[
        Literal["title", "description", "date_text", "creator", "place", "subjects", "rights"],
        Annotated[str, StringConstraints(max_length=10_000), Storable] | None,
    ] = Field(min_length=1)


WRITE = [Depends(require_token)]  # checked before the body is even read


def _write(cat: Catalogue, user: str, action) -> dict:
    with cat.write() as session:
        agent = get_or_create_agent(session, "person", user)
        try:
            return action(session, agent)
        except curation.CurationError as exc:
            raise HTTPProblem(409, str(exc)) from None


@router.post("/api/derivatives/{derivative_id}/review", dependencies=WRITE)
def api_review(derivative_id: int, body: ReviewBody, cat: Catalogue = CatalogueDep) -> dict:
    def action(session, agent) -> dict:
        d: Derivative = get_derivative(session, derivative_id)
        event = curation.review(session, d, body.state, body.note, agent)
        session.flush()
        return {"derivative": d.id, "review": d.review, "event": event.id}

    return _write(cat, body.user, action)


@router.post("/api/derivatives/{derivative_id}/make-current", dependencies=WRITE)
def api_make_current(derivative_id: int, body: CurrentBody, cat: Catalogue = CatalogueDep) -> dict:
    def action(session, agent) -> dict:
        d = get_derivative(session, derivative_id)
        event = curation.set_current(session, d, agent, body.note)
        session.flush()
        return {"derivative": d.id, "current": True, "event": event.id, "action": event.type}

    return _write(cat, body.user, action)


@router.patch("/api/items/{item_id}/metadata", dependencies=WRITE)
def api_metadata(item_id: int, body: MetadataBody, cat: Catalogue = CatalogueDep) -> dict:
    def action(session, agent) -> dict:
        item: Item = get_item(session, item_id)
        changes = curation.update_metadata(
            session, item, dict(body.fields), agent, {"source": "web catalogue"}
        )
        return {"item": item.id, "changes": changes}

    return _write(cat, body.user, action)


@router.post("/api/items/{item_id}/mask", dependencies=WRITE)
async def api_mask(
    item_id: int,
    request: Request,
    user: Annotated[str, Query(min_length=1, max_length=200)],
    name: Annotated[str, Query(min_length=1, max_length=200)] = "mask.png",
    cat: Catalogue = CatalogueDep,
) -> dict:
    """A curator's corrected damage mask for the item (the request body: an image the master's
    size, white = damaged), recorded as its current mask; the next restore of the item with a
    staged model fills what it marks. The same mask again records nothing new."""
    try:
        user, name = _storable(user.strip()), _storable(name)
    except ValueError as exc:
        raise HTTPProblem(422, f"user and name {exc}") from None
    if not user:
        raise HTTPProblem(422, "give your name: the mask is recorded under it")
    if cat.masks is None:
        raise HTTPProblem(409, "this catalogue takes no uploaded masks (serve it with `archive serve`)")
    item = _row(cat, get_item, item_id)
    data = bytearray()
    async for chunk in request.stream():  # bounded even where no length was declared
        data += chunk
        if len(data) > MAX_MASK_BODY:
            raise HTTPProblem(413, f"the request body is over {MAX_MASK_BODY:,} bytes")
    if not data:
        raise HTTPProblem(400, "no mask in the request body (send the image's bytes)")
    try:
        row = await run_in_threadpool(cat.masks.store, item, bytes(data), name, user)
    except MaskRefused as exc:
        raise HTTPProblem(400, str(exc)) from None
    return {
        "item": item_id,
        "derivative": row.id,
        "kind": row.kind,
        "version": row.version,
        "sha256": row.sha256,
        "marked": row.recipe.get("marked"),
        "by": row.recipe.get("by"),
    }
