"""IIIF Image API 3.0 for every master and every derivative version, at compliance level 2:
``/iiif/3/master-<item id>`` and ``/iiif/3/derivative-<derivative id>``, read-only, no token.

Requests are checked here (region, size, rotation, quality, format, as the specification says,
with its status codes: 404 for an unknown image, 400 for a region or size outside what the image
has); the pixels are cut by the media source from a tiled pyramid made once per file
(``flows.imaging.pyramid``). https://iiif.io/api/image/3.0/
"""

from __future__ import annotations

import math
import re

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from archive_db.web.core import Catalogue, CatalogueDep, HTTPProblem, get_derivative, get_item
from archive_db.web.media import Cut, MediaMissing

router = APIRouter()
CONTEXT = "http://iiif.io/api/image/3/context.json"
INFO_TYPE = f'application/ld+json;profile="{CONTEXT}"'
CORS = {"Access-Control-Allow-Origin": "*"}
MAX_AREA = 100_000_000  # no output image larger than this (upscaling is allowed up to it)
QUALITIES = ("default", "color", "gray", "bitonal")
FORMATS = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
_IDENT = re.compile(r"^(master|derivative)-([0-9]{1,18})$")


def _bad(message: str) -> HTTPProblem:
    return HTTPProblem(400, message, CORS)


def parse_region(text: str, width: int, height: int) -> tuple[int, int, int, int]:
    """x, y, w, h of the region in full-image pixels, cropped to the image (400 if none of it is)."""
    if text == "full":
        return 0, 0, width, height
    if text == "square":
        side = min(width, height)
        return (width - side) // 2, (height - side) // 2, side, side
    pct = text.startswith("pct:")
    parts = (text[4:] if pct else text).split(",")
    number = r"^\d+(\.\d+)?$" if pct else r"^\d+$"
    if len(parts) != 4 or not all(re.match(number, p) for p in parts):
        raise _bad(f"region {text!r} is not full, square, x,y,w,h or pct:x,y,w,h")
    if pct:
        x, y, w, h = (float(p) for p in parts)
        x, w = round(x / 100 * width), round(w / 100 * width)
        y, h = round(y / 100 * height), round(h / 100 * height)
    else:
        x, y, w, h = (int(p) for p in parts)
    if w <= 0 or h <= 0:
        raise _bad(f"region {text!r} is empty")
    if x >= width or y >= height:
        raise _bad(f"region {text!r} lies outside the image ({width}x{height})")
    return x, y, min(w, width - x), min(h, height - y)


def parse_size(text: str, rw: int, rh: int) -> tuple[int, int]:
    """The output size for a region of rw x rh; upscaling only with ``^``, and never past MAX_AREA."""
    up = text.startswith("^")
    spec = text[1:] if up else text
    if spec == "max":  # the region as it is, or as large as MAX_AREA allows
        scale = min(1.0, math.sqrt(MAX_AREA / (rw * rh)))
        return max(1, int(rw * scale)), max(1, int(rh * scale))
    if spec.startswith("pct:"):
        if not re.match(r"^\d+(\.\d+)?$", spec[4:]):
            raise _bad(f"size {text!r}: pct: takes a number")
        n = float(spec[4:]) / 100
        w, h = round(rw * n), round(rh * n)
    elif m := re.match(r"^(!)?(\d+)?,(\d+)?$", spec):
        confined, ws, hs = m.group(1), m.group(2), m.group(3)
        if confined:
            if not (ws and hs):
                raise _bad(f"size {text!r}: !w,h needs both")
            scale = min(int(ws) / rw, int(hs) / rh)
            w, h = max(1, int(rw * scale)), max(1, int(rh * scale))
            if scale > 1 and not up:
                raise _bad(f"size {text!r} is larger than the region ({rw}x{rh}): ask with ^ to upscale")
        elif ws and hs:
            w, h = int(ws), int(hs)
        elif ws:
            w = int(ws)
            h = max(1, round(rh * w / rw))
        elif hs:
            h = int(hs)
            w = max(1, round(rw * h / rh))
        else:
            raise _bad(f"size {text!r} gives neither width nor height")
    else:
        raise _bad(f"size {text!r} is not max, w,, ,h, pct:n, w,h or !w,h (each with an optional ^)")
    if w <= 0 or h <= 0:
        raise _bad(f"size {text!r} is empty")
    if (w > rw or h > rh) and not up:
        raise _bad(f"size {text!r} is larger than the region ({rw}x{rh}): ask with ^ to upscale")
    if w * h > MAX_AREA:
        raise _bad(f"size {text!r} is over the largest image served ({MAX_AREA:,} pixels)")
    return w, h


def parse_rotation(text: str) -> tuple[bool, int]:
    mirror = text.startswith("!")
    spec = text[1:] if mirror else text
    if not re.match(r"^\d+(\.\d+)?$", spec) or float(spec) >= 360:
        raise _bad(f"rotation {text!r} is not a number from 0 to 360")
    angle = float(spec)
    if angle % 90:
        raise _bad(f"rotation {text!r}: only multiples of 90 are served")
    return mirror, int(angle) % 360


def _image(cat: Catalogue, ident: str):
    """The catalogue row an identifier names: a master (item) or a derivative version."""
    m = _IDENT.match(ident)
    if not m:
        raise HTTPProblem(
            404, f"no image {ident!r} (identifiers are master-<item id> or derivative-<id>)", CORS
        )
    with cat.read() as session:
        try:
            if m.group(1) == "master":
                row = get_item(session, int(m.group(2)))
                if row.status == "quarantined":
                    raise HTTPProblem(404, f"item {row.id} is quarantined: it has no image to serve", CORS)
            else:
                row = get_derivative(session, int(m.group(2)))
        except HTTPProblem as exc:
            raise HTTPProblem(exc.status, exc.message, CORS) from None
        orientation = (
            row.orientation if m.group(1) == "master" else get_item(session, row.item_id).orientation
        )
        session.expunge_all()
    try:
        return cat.media.pyramid(row, orientation)
    except MediaMissing as exc:
        raise HTTPProblem(404, f"image {ident}: {exc}", CORS) from None


def info(base: str, pyramid) -> dict:
    levels = pyramid.scale_factors()
    return {
        "@context": CONTEXT,
        "id": base,
        "type": "ImageService3",
        "protocol": "http://iiif.io/api/image",
        "profile": "level2",
        "width": pyramid.width,
        "height": pyramid.height,
        "maxArea": MAX_AREA,
        "tiles": [{"width": 256, "height": 256, "scaleFactors": levels}],
        "sizes": [
            {"width": math.ceil(pyramid.width / f), "height": math.ceil(pyramid.height / f)}
            for f in reversed(levels)
        ],
        "extraQualities": ["color", "gray", "bitonal"],
        "extraFormats": ["png", "webp"],
        "extraFeatures": ["mirroring", "sizeUpscaling", "cors", "jsonldMediaType", "baseUriRedirect"],
    }


def base_url(request: Request, ident: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/iiif/3/{ident}"


@router.get("/iiif/3/{ident}")
def iiif_base(ident: str, request: Request) -> Response:
    return RedirectResponse(base_url(request, ident) + "/info.json", status_code=303, headers=CORS)


@router.get("/iiif/3/{ident}/info.json")
def iiif_info(ident: str, request: Request, cat: Catalogue = CatalogueDep) -> Response:
    pyramid = _image(cat, ident)
    return JSONResponse(info(base_url(request, ident), pyramid), media_type=INFO_TYPE, headers=CORS)


@router.get("/iiif/3/{ident}/{region}/{size}/{rotation}/{quality_format}")
def iiif_image(
    ident: str, region: str, size: str, rotation: str, quality_format: str, cat: Catalogue = CatalogueDep
) -> Response:
    quality, _, fmt = quality_format.rpartition(".")
    if quality not in QUALITIES:
        raise _bad(f"quality {quality!r} is not one of {', '.join(QUALITIES)}")
    if fmt not in FORMATS:
        raise HTTPProblem(400, f"format {fmt!r} is not one of {', '.join(FORMATS)}", CORS)
    pyramid = _image(cat, ident)
    x, y, w, h = parse_region(region, pyramid.width, pyramid.height)
    out_w, out_h = parse_size(size, w, h)
    mirror, turn = parse_rotation(rotation)
    data = pyramid.render(Cut(x, y, w, h, out_w, out_h, mirror, turn, quality, fmt))
    return Response(data, media_type=FORMATS[fmt], headers=CORS | {"Cache-Control": "public, max-age=86400"})


# -- Presentation API 3.0: a manifest per item, a collection per catalogue collection ---------------

PRESENTATION = "http://iiif.io/api/presentation/3/context.json"
RIGHTS = (
    "http://rightsstatements.org/vocab/",
    "https://rightsstatements.org/vocab/",
    "http://creativecommons.org/",
    "https://creativecommons.org/",
)
FIELD_LABELS = {
    "title": "Title",
    "description": "Description",
    "date_text": "Date",
    "creator": "Creator",
    "place": "Place",
    "subjects": "Subjects",
    "rights": "Rights",
}


def _text(value: str) -> dict:
    return {"none": [value]}


def _en(value: str) -> dict:
    return {"en": [value]}


def _upright(width: int, height: int, orientation: int | None) -> tuple[int, int]:
    return (height, width) if (orientation or 1) >= 5 else (width, height)


def _image_body(root: str, ident: str, width: int, height: int, label: str) -> dict:
    return {
        "id": f"{root}/iiif/3/{ident}/full/max/0/default.jpg",
        "type": "Image",
        "format": "image/jpeg",
        "width": width,
        "height": height,
        "label": _en(label),
        "service": [{"id": f"{root}/iiif/3/{ident}", "type": "ImageService3", "profile": "level2"}],
    }


def manifest(root: str, item: dict, versions: str = "current") -> dict:
    """An item (``views.item_view``) as a manifest: one canvas whose painting annotation is a
    Choice of the master and each current version (every version with ``versions="all"``), each a
    IIIF image service, each derived layer labelled with how it was made."""
    mid = f"{root}/iiif/presentation/items/{item['id']}/manifest.json"
    width, height = _upright(
        item["technical"]["width"] or 0, item["technical"]["height"] or 0, item["technical"]["orientation"]
    )
    canvas = f"{root}/iiif/presentation/items/{item['id']}/canvas/1"
    choices = [_image_body(root, f"master-{item['id']}", width, height, "Original scan (master, unaltered)")]
    for v in item["versions"]:
        if versions == "current" and not v["current"]:
            continue
        how = v["disclosure"]["label"] if v["disclosure"] else "Derived"
        label = f"{how}: {v['kind']} v{v['version']}" + (f" ({v['model']})" if v["model"] else "")
        scale = v.get("scale", 1)  # an enlargement's image is larger; it still paints the one canvas
        body = _image_body(root, f"derivative-{v['id']}", width * scale, height * scale, label)
        if v["disclosure"]:
            body["metadata"] = [
                {"label": _en("Digital source type"), "value": _text(v["disclosure"]["digital_source_type"])}
            ]
        choices.append(body)
    d = item["descriptive"]
    title = d.get("title") or item["source_key"]
    out = {
        "@context": PRESENTATION,
        "id": mid,
        "type": "Manifest",
        "label": _text(title),
        "metadata": [
            {"label": _en(FIELD_LABELS[k]), "value": _text(str(d[k]))} for k in FIELD_LABELS if d.get(k)
        ]
        + [
            {"label": _en("Collection"), "value": _text(item["collection"])},
            {"label": _en("Master sha256"), "value": _text(item["sha256"])},
        ],
        "provider": [{"id": f"{root}/", "type": "Agent", "label": _en("Photo archive")}],
        "homepage": [
            {"id": f"{root}/items/{item['id']}", "type": "Text", "label": _text(title), "format": "text/html"}
        ],
        "seeAlso": [
            {
                "id": f"{root}/api/items/{item['id']}",
                "type": "Dataset",
                "label": _en("Catalogue record"),
                "format": "application/json",
            }
        ]
        + [
            {
                "id": f"{root}/media/derivatives/{v['id']}/metadata.json",
                "type": "Dataset",
                "label": _en(f"Sidecar of {v['kind']} v{v['version']}"),
                "format": "application/json",
            }
            for v in item["versions"]
            if v["current"]
        ],
        "items": [
            {
                "id": canvas,
                "type": "Canvas",
                "width": width,
                "height": height,
                "items": [
                    {
                        "id": f"{canvas}/page",
                        "type": "AnnotationPage",
                        "items": [
                            {
                                "id": f"{canvas}/page/painting",
                                "type": "Annotation",
                                "motivation": "painting",
                                "target": canvas,
                                "body": {"type": "Choice", "items": choices}
                                if len(choices) > 1
                                else choices[0],
                            }
                        ],
                    }
                ],
            }
        ],
    }
    rights = str(d.get("rights") or "").strip()
    if rights.startswith(RIGHTS):
        out["rights"] = rights
    return out


def collection(root: str, name: str, items: list[tuple[int, str]]) -> dict:
    return {
        "@context": PRESENTATION,
        "id": f"{root}/iiif/presentation/collections/{name}.json",
        "type": "Collection",
        "label": _text(name),
        "items": [
            {
                "id": f"{root}/iiif/presentation/items/{i}/manifest.json",
                "type": "Manifest",
                "label": _text(label),
            }
            for i, label in items
        ],
    }


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get("/iiif/presentation/items/{item_id}/manifest.json")
def iiif_manifest(
    item_id: int, request: Request, versions: str = "current", cat: Catalogue = CatalogueDep
) -> Response:
    from archive_db.web import views

    if versions not in ("current", "all"):
        raise _bad("versions must be current or all")
    with cat.read() as session:
        try:
            item = views.item_view(session, get_item(session, item_id))
        except HTTPProblem as exc:
            raise HTTPProblem(exc.status, exc.message, CORS) from None
    if item["status"] == "quarantined":
        raise HTTPProblem(404, f"item {item_id} is quarantined: it has no image to show", CORS)
    return JSONResponse(
        manifest(_root(request), item, versions),
        media_type=f'application/ld+json;profile="{PRESENTATION}"',
        headers=CORS,
    )


@router.get("/iiif/presentation/collections/{name}.json")
def iiif_collection(name: str, request: Request, cat: Catalogue = CatalogueDep) -> Response:
    from archive_db.web import views

    with cat.read() as session:
        found = views.collection_items(session, name)
    if found is None:
        raise HTTPProblem(404, f"no collection {name!r}", CORS)
    return JSONResponse(
        collection(_root(request), name, found),
        media_type=f'application/ld+json;profile="{PRESENTATION}"',
        headers=CORS,
    )
