"""What the web catalogue's routes share: the catalogue object (sessions, media, token,
templates), the error type, and reading a search from query parameters."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker

from archive_db.models import Derivative, Item
from archive_db.search import MAX_ID, SearchError, SearchQuery
from archive_db.web.media import MaskStore, MediaSource

HERE = Path(__file__).parent
# An uploaded damage mask: an image of the master's size (a 40 MP scan's two-level PNG is a few MB).
MAX_MASK_BODY = 64 << 20


class HTTPProblem(Exception):
    """An error answered as ``{"error": message}`` with a status code (pages show it too)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class Catalogue:
    """What the routes share: sessions, the media source, the write token, the templates, and where
    uploaded masks go."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        media: MediaSource,
        token: str | None,
        preview_px: int,
        masks: MaskStore | None = None,
    ):
        self.sessions, self.media, self.token, self.preview_px = sessions, media, token, preview_px
        self.masks = masks  # None: this catalogue takes no uploaded masks
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.filters["short"] = lambda s, n=12: (s[:n] + "…") if s and len(s) > n else s

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self.sessions() as session, session.begin():
            yield session

    def check_token(self, request: Request) -> None:
        """401 without credentials, 403 with wrong ones or when writes are switched off."""
        if not self.token:
            raise HTTPProblem(403, "this catalogue is read-only: no write token is configured")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise HTTPProblem(
                401, "this action needs the catalogue's write token", {"WWW-Authenticate": "Bearer"}
            )
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise HTTPProblem(403, "the write token is not valid")


def catalogue(request: Request) -> Catalogue:
    return request.app.state.catalogue


CatalogueDep = Depends(catalogue)


def not_found(what: str) -> HTTPProblem:
    return HTTPProblem(404, f"{what} is not in the catalogue")


def search_query(request: Request, limit: int = 48) -> SearchQuery:
    """A search from URL parameters (the same for the page and the API: links can be shared)."""
    p = request.query_params
    try:
        years = {k: int(p[k]) if p.get(k) else None for k in ("year_from", "year_to")}
        return SearchQuery(
            text=p.get("text") or None,
            collection=p.get("collection") or None,
            status=p.get("status") or None,
            model=p.get("model") or None,
            kind=p.get("kind") or None,
            sort=p.get("sort") or "id",
            limit=int(p.get("limit") or limit),
            after=p.get("after") or None,
            **years,
        )
    except ValueError as exc:  # SearchError is a ValueError; so is a year that is not a number
        raise HTTPProblem(
            400, str(exc) if isinstance(exc, SearchError) else f"bad search parameter: {exc}"
        ) from None


def get_item(session: Session, item_id: int) -> Item:
    item = session.get(Item, item_id) if 1 <= item_id <= MAX_ID else None  # 2**63 is no id: a 404, not a 500
    if item is None:
        raise not_found(f"item {item_id}")
    return item


def get_derivative(session: Session, derivative_id: int) -> Derivative:
    derivative = session.get(Derivative, derivative_id) if 1 <= derivative_id <= MAX_ID else None
    if derivative is None:
        raise not_found(f"derivative {derivative_id}")
    return derivative


def require_token(request: Request) -> None:
    catalogue(request).check_token(request)
