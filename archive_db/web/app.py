"""The curators' web catalogue: server-rendered pages (Jinja2, autoescaped) with a JSON API
behind each, images streamed from the stores through the app, and write actions (make a version
current, review it, edit descriptive metadata, upload a corrected damage mask) that need the bearer
token from the settings.
Without a token configured the catalogue is read-only and every write is refused (403)."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, sessionmaker

from archive_db.web import api, iiif, pages
from archive_db.web.core import HERE, MAX_MASK_BODY, Catalogue, HTTPProblem
from archive_db.web.media import MaskStore, MediaSource

# The one inline style allowed is OpenSeadragon's (the IIIF viewer, pinned in the Makefile): a
# <style> it adds with one rule, allowed by the hash of exactly that text.
OSD_STYLE = "'sha256-9xTiqzfwFaL2SGb1rmr8gysEwVVjIvqWAgmZgqFqpEE='"
CSP = (
    f"default-src 'none'; img-src 'self' data:; script-src 'self'; style-src 'self' {OSD_STYLE}; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
MAX_BODY = 1 << 20
MASK_ROUTE = re.compile(r"^/api/items/\d+/mask$")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def create_app(
    sessions: sessionmaker[Session],
    media: MediaSource,
    token: str | None = None,
    preview_px: int = 1600,
    title: str = "Photo archive",
    masks: MaskStore | None = None,
) -> FastAPI:
    app = FastAPI(
        title=f"{title} catalogue", docs_url="/api/docs", redoc_url=None, openapi_url="/api/openapi.json"
    )
    app.state.catalogue = Catalogue(sessions, media, token, preview_px, masks)
    app.state.catalogue.templates.env.globals["site_title"] = title
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(api.router)
    app.include_router(iiif.router)
    app.include_router(pages.router)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable) -> Response:
        declared = request.headers.get("content-length", "0")
        mask = MASK_ROUTE.match(request.url.path)  # its handler bounds what it reads itself
        limit = MAX_MASK_BODY if mask else MAX_BODY  # metadata edits: a few kB
        if "transfer-encoding" in request.headers and "content-length" not in request.headers and not mask:
            # a body sent in chunks would be read to its end before any size could be checked
            response = JSONResponse(
                {"error": "a request body needs its length declared (Content-Length)"}, status_code=411
            )
        elif not declared.isdigit() or int(declared) > limit:
            response = JSONResponse({"error": f"the request body is over {limit:,} bytes"}, status_code=413)
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(HTTPProblem)
    async def problem(request: Request, exc: HTTPProblem) -> Response:
        if request.url.path.startswith(("/api/", "/media/", "/iiif/")):
            return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)
        return pages.error_page(request, exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        """422 with where and why, but not the value sent: a body of 1e999 or a lone surrogate
        cannot be echoed as JSON (FastAPI's own answer to them was a 500)."""
        errors = [
            {"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        message = f"{'.'.join(first['loc'][1:] or first['loc'])}: {first['msg']}"
        if request.url.path.startswith(("/api/", "/media/")):
            return JSONResponse({"error": message, "detail": errors}, status_code=422)
        return pages.error_page(request, 422, message)

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def out_of_range(request: Request, exc: Exception) -> Response:
        """A value the database cannot hold (a number past its column's range, say) is the
        request's fault: 400, where the database's own error would have been a 500."""
        return await problem(
            request, HTTPProblem(400, "a value in the request is out of the catalogue's range")
        )

    return app
