"""Server-rendered pages. Each renders the same data its JSON API route returns (``views``);
Jinja2 autoescapes every value, so text from scans (EXIF, keys, titles) cannot become markup."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from archive_db.search import SORTS, STATUSES
from archive_db.web import views
from archive_db.web.core import Catalogue, CatalogueDep, get_item, search_query

router = APIRouter()


def _render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
    cat: Catalogue = request.app.state.catalogue
    context |= {"writable": bool(cat.token)}
    return cat.templates.TemplateResponse(request, template, context, status_code=status)


def error_page(request: Request, status: int, message: str) -> Response:
    return _render(request, "error.html", status=status, status_code=status, message=message)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, cat: Catalogue = CatalogueDep) -> HTMLResponse:
    with cat.read() as session:
        collections = views.collections_view(session)
    return _render(request, "collections.html", collections=collections)


@router.get("/search", response_class=HTMLResponse)
def search_page(request: Request, cat: Catalogue = CatalogueDep) -> HTMLResponse:
    q = search_query(request)
    with cat.read() as session:
        result = views.search_view(session, q)
    filters = q.filters() | ({"sort": q.sort} if q.sort != "id" else {})

    def link(**change) -> str:
        """This search with some filters changed (None removes one); always from the first page."""
        params = {k: v for k, v in (filters | change).items() if v not in (None, "")}
        return "/search?" + urlencode(params)

    next_link = link(after=result["next_cursor"]) if result["next_cursor"] else None
    return _render(
        request,
        "search.html",
        result=result,
        filters=filters,
        link=link,
        next_link=next_link,
        statuses=STATUSES,
        sorts=SORTS,
    )


@router.get("/items/{item_id}", response_class=HTMLResponse)
def item_page(item_id: int, request: Request, cat: Catalogue = CatalogueDep) -> HTMLResponse:
    with cat.read() as session:
        item = views.item_view(session, get_item(session, item_id))
    current = next((v for v in item["versions"] if v["id"] == item["current"]), None)
    return _render(request, "item.html", item=item, current=current)


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request, cat: Catalogue = CatalogueDep) -> HTMLResponse:
    with cat.read() as session:
        models = views.models_view(session)
    return _render(request, "models.html", models=models)


@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request, cat: Catalogue = CatalogueDep) -> HTMLResponse:
    with cat.read() as session:
        runs = views.runs_view(session)
    return _render(request, "runs.html", runs=runs)
