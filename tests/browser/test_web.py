"""The web catalogue over a small real catalogue (ingested and restored by the flows): the JSON
API, the token rules, escaping of hostile EXIF, path traversal on the image routes, and the
curator's flow in a real headless Chromium."""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select, update

from archive_db.models import Derivative, Event, Item
from flows.db import sessions_for
from flows.ingest import ingest_collection
from flows.manifest import import_metadata
from flows.media import StoreMasks, StoreMedia
from flows.restore import restore_collection
from flows.settings import DbSettings, IngestSettings, Settings, StoreSettings
from tests import samples
from tests.flows.test_ingest import write_folder

TOKEN = "correct horse battery staple"
XSS = '<script>alert("exif")</script><img src=x onerror=alert(1)>'
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-output"


def _aged(name: str, seed: int) -> bytes:
    from flows.cli.demo import age, clean_images

    img = clean_images()[name]
    img.thumbnail((320, 320))
    buf = io.BytesIO()
    age(img, np.random.default_rng(seed)).save(buf, "JPEG", quality=92)
    return buf.getvalue()


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory, prefect_harness):
    """Four prints and a broken file, ingested, described by a manifest and restored by the
    shipped production model."""
    root = tmp_path_factory.mktemp("web")
    settings = Settings(
        db=DbSettings(url=f"sqlite:///{root}/catalogue.db"),
        store=StoreSettings(output=(root / "out").as_uri()),
        ingest=IngestSettings(batch_size=8, concurrency=2),
    )
    settings.restore = settings.restore.model_copy(update={"tile": 256, "threads": 2})
    inbox = root / "inbox"
    write_folder(
        inbox,
        {
            "box1/harbour.jpg": _aged("coffee", 1),
            "box1/portrait.jpg": _aged("grace_hopper", 2),
            "box2/cat.jpg": _aged("chelsea", 3),
            "box2/hostile.jpg": samples.exif_jpeg(description=XSS),
            "box2/broken.jpg": samples.truncated(samples.jpeg()),
        },
    )
    ingest_collection(str(inbox), "seaside", settings)
    (root / "manifest.csv").write_text(
        "filename,title,date,place,subjects\n"
        "box1/harbour.jpg,Coffee on the harbour front,c. 1925,Whitby,cafes; harbours\n"
        "box1/portrait.jpg,Portrait of an officer,1950s,Arlington,portraits\n"
        "box2/cat.jpg,The harbour master's cat,1928,Whitby,cats; harbours\n"
    )
    import_metadata(settings, root / "manifest.csv", "seaside")
    restore_collection("seaside", settings=settings)
    return settings


def client(settings: Settings, token: str | None = TOKEN, masks: bool = True) -> TestClient:
    from archive_db.web.app import create_app

    sink = StoreMasks(settings) if masks else None
    return TestClient(create_app(sessions_for(settings.db.url), StoreMedia(settings), token, masks=sink))


def item_id(settings, key: str) -> int:
    with sessions_for(settings.db.url)() as s:
        return s.scalar(select(Item.id).where(Item.source_key == key))


def current_of(settings, key: str) -> int:
    with sessions_for(settings.db.url)() as s:
        return s.scalar(select(Derivative.id).join(Item).where(Item.source_key == key, Derivative.is_current))


def test_api_behind_the_pages(catalogue):
    c = client(catalogue)
    [coll] = c.get("/api/collections").json()
    assert (coll["name"], coll["items"], coll["quarantined"], coll["restored"]) == ("seaside", 5, 1, 4)
    found = c.get("/api/search", params={"text": "harbour", "year_from": 1920, "year_to": 1929}).json()
    assert [h["source_key"] for h in found["hits"]] == ["box1/harbour.jpg", "box2/cat.jpg"]
    assert {f["value"]: f["count"] for f in found["facets"]["decade"]} == {1920: 2}
    assert c.get("/api/search", params={"sort": "nonsense"}).status_code == 400
    item = c.get(f"/api/items/{item_id(catalogue, 'box1/harbour.jpg')}").json()
    assert item["descriptive"]["title"] == "Coffee on the harbour front"
    [version] = item["versions"]
    assert version["current"] and version["model"].startswith("restore-unet@")
    assert version["disclosure"] == {
        "digital_source_type": "http://cv.iptc.org/newscodes/digitalsourcetype/algorithmicallyEnhanced",
        "label": "AI-restored",
        "ai": True,
    }
    assert [e["type"] for e in item["events"]][:1] == ["ingestion"] and "restoration" in {
        e["type"] for e in item["events"]
    }
    lineage = c.get(f"/api/items/{item['id']}/lineage").json()
    assert lineage["children"][0]["kind"] == "restored"
    models = c.get("/api/models").json()
    assert any(m["status"] == "production" and m["items_current"] == 4 for m in models)
    runs = c.get("/api/runs").json()
    assert {r["flow"] for r in runs} >= {"ingest", "restore"}
    assert c.get("/api/items/99999").status_code == 404


def test_pages_render_and_carry_security_headers(catalogue):
    c = client(catalogue)
    for path in (
        "/",
        "/search?text=whitby",
        f"/items/{item_id(catalogue, 'box2/cat.jpg')}",
        "/models",
        "/runs",
    ):
        r = c.get(path)
        assert r.status_code == 200, path
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
    page = c.get("/search", params={"text": "whitby"}).text
    assert "The harbour master&#39;s cat" in page and "2 found" in page


def test_images_come_through_the_app(catalogue):
    c = client(catalogue)
    iid, did = item_id(catalogue, "box1/portrait.jpg"), current_of(catalogue, "box1/portrait.jpg")
    for path, kind in (
        (f"/media/items/{iid}/thumbnail", "image/jpeg"),
        (f"/media/items/{iid}/preview", "image/jpeg"),
        (f"/media/derivatives/{did}/preview", "image/jpeg"),
        (f"/media/items/{iid}/master", "image/jpeg"),
    ):
        r = c.get(path)
        assert r.status_code == 200 and r.headers["content-type"] == kind, path
        Image.open(io.BytesIO(r.content)).verify()
    r = c.get(f"/media/derivatives/{did}/file")
    assert (
        r.headers["content-disposition"].startswith("attachment;") and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    )


def test_hostile_exif_is_shown_as_text(catalogue):
    c = client(catalogue)
    page = c.get(f"/items/{item_id(catalogue, 'box2/hostile.jpg')}").text
    assert "&lt;script&gt;alert(&#34;exif&#34;)&lt;/script&gt;" in page
    assert "<script>alert" not in page and "<img src=x" not in page


@pytest.mark.parametrize(
    "path",
    [
        "/media/items/..%2F..%2F..%2Fetc%2Fpasswd/master",
        "/media/items/1/..%2F..%2Fcatalogue.db",
        "/static/..%2F..%2F..%2Fcatalogue.db",
        "/static/%2e%2e/%2e%2e/web/app.py",
        "/media/derivatives/-1/file",
    ],
)
def test_path_traversal_on_image_routes_finds_nothing(catalogue, path):
    r = client(catalogue).get(path)
    assert r.status_code in (404, 422) and b"root:" not in r.content and b"SQLite" not in r.content


def test_tampered_catalogue_rows_cannot_reach_outside_the_stores(catalogue):
    """Even a catalogue row pointing elsewhere does not make the app read it."""
    did = current_of(catalogue, "box2/cat.jpg")
    with sessions_for(catalogue.db.url)() as s, s.begin():
        original = s.get(Derivative, did).storage_uri
        s.execute(update(Derivative).where(Derivative.id == did).values(storage_uri="file:///etc/passwd"))
    try:
        r = client(catalogue).get(f"/media/derivatives/{did}/file")
        assert r.status_code == 404 and "not in the configured output store" in r.json()["error"]
    finally:
        with sessions_for(catalogue.db.url)() as s, s.begin():
            s.execute(update(Derivative).where(Derivative.id == did).values(storage_uri=original))


def test_writes_need_the_token(catalogue):
    did = current_of(catalogue, "box1/portrait.jpg")
    body = {"user": "ada", "state": "approved", "note": "good"}
    assert client(catalogue, token=None).post(f"/api/derivatives/{did}/review", json=body).status_code == 403
    c = client(catalogue)
    r = c.post(f"/api/derivatives/{did}/review", json=body)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert (
        c.post(f"/api/derivatives/{did}/review", json={}).status_code == 401
    )  # before the body is looked at
    assert (
        c.post(
            f"/api/derivatives/{did}/review", json=body, headers={"Authorization": "Bearer wrong"}
        ).status_code
        == 403
    )
    meta = {"user": "ada", "fields": {"title": "x"}}
    assert c.patch(f"/api/items/{item_id(catalogue, 'box2/cat.jpg')}/metadata", json=meta).status_code == 401
    with sessions_for(catalogue.db.url)() as s:
        assert s.get(Derivative, did).review is None
        assert not s.scalars(select(Event).where(Event.type == "review")).all()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = c.post(f"/api/derivatives/{did}/review", json=body, headers=auth)
    assert r.status_code == 200 and r.json()["review"] == "approved"
    r = c.post(f"/api/derivatives/{did}/make-current", json={"user": "ada"}, headers=auth)
    assert r.status_code == 409 and "already" in r.json()["error"]
    assert (
        c.post(f"/api/derivatives/{did}/review", json=body | {"state": "maybe"}, headers=auth).status_code
        == 422
    )
    r = c.patch(
        f"/api/items/{item_id(catalogue, 'box1/portrait.jpg')}/metadata",
        headers=auth,
        json={"user": "ada", "fields": {"title": "Rear Admiral Grace Hopper", "date_text": "1984"}},
    )
    assert r.status_code == 200 and r.json()["changes"]["title"]["old"] == "Portrait of an officer"
    with sessions_for(catalogue.db.url)() as s:
        event = s.scalar(
            select(Event).where(
                Event.type == "metadata modification", Event.detail["source"].as_string() == "web catalogue"
            )
        )
        assert event.agent.name == "ada" and event.agent.kind == "person"
        assert event.detail["changes"]["date_text"] == {"old": "1950s", "new": "1984", "range": [1984, 1984]}


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def drawn_mask(settings, key: str, rows: slice) -> np.ndarray:
    """A curator's mask for the item's master: white over ``rows``, a few grey strokes under half."""
    with sessions_for(settings.db.url)() as s:
        item = s.scalar(select(Item).where(Item.source_key == key))
        w, h = item.width, item.height
    mask = np.zeros((h, w), np.uint8)
    mask[rows, w // 4 : w // 2] = 255
    mask[-3:, :] = 90  # under half range: not damage
    return mask


def test_a_curator_uploads_a_corrected_mask_and_it_becomes_the_items_current_mask(catalogue, monkeypatch):
    from archive_db.derivatives import MASK_KIND, current_masks

    iid = item_id(catalogue, "box1/portrait.jpg")
    mask = drawn_mask(catalogue, "box1/portrait.jpg", slice(10, 20))
    url, auth = f"/api/items/{iid}/mask", {"Authorization": f"Bearer {TOKEN}"}
    c = client(catalogue)
    # the mask the restored version was written with: what a curator downloads to correct
    detected = c.get(f"/media/derivatives/{current_of(catalogue, 'box1/portrait.jpg')}/mask.png")
    assert detected.status_code == 200 and detected.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(detected.content)).size == mask.shape[::-1]
    assert (
        client(catalogue, token=None).post(url, params={"user": "ada"}, content=png(mask)).status_code == 403
    )
    assert c.post(url, params={"user": "ada"}, content=png(mask)).status_code == 401
    # refused with a message a curator can act on, and nothing recorded
    for body, params, status, message in [
        (b"not an image", {"user": "ada", "name": "notes.txt"}, 400, "notes.txt: not a readable image"),
        (png(mask[:-1]), {"user": "ada", "name": "short.png"}, 400, "the item's master"),
        (b"", {"user": "ada"}, 400, "no mask in the request body"),
        (png(mask), {"user": "  "}, 422, "give your name"),
    ]:
        r = c.post(url, params=params, content=body, headers=auth)
        assert r.status_code == status and message in r.json()["error"], r.json()
    assert (
        c.post("/api/items/99999/mask", params={"user": "ada"}, content=png(mask), headers=auth).status_code
        == 404
    )
    monkeypatch.setattr("archive_db.web.api.MAX_MASK_BODY", 1000)  # a body in chunks, no length declared:
    r = c.post(url, params={"user": "ada"}, content=iter([png(mask)[:900], b"\0" * 900]), headers=auth)
    assert r.status_code == 413 and "over 1,000 bytes" in r.json()["error"]  # stopped at the bound
    monkeypatch.undo()
    r = client(catalogue, masks=False).post(url, params={"user": "ada"}, content=png(mask), headers=auth)
    assert r.status_code == 409 and "takes no uploaded masks" in r.json()["error"]
    with sessions_for(catalogue.db.url)() as s:
        assert current_masks(s, [iid]) == {}

    r = c.post(url, params={"user": "ada", "name": "portrait-mask.png"}, content=png(mask), headers=auth)
    assert r.status_code == 200, r.json()
    made = r.json()
    assert (made["kind"], made["version"], made["by"]) == (MASK_KIND, 1, "ada")
    assert made["marked"] == pytest.approx((mask > 127).mean())
    again = c.post(url, params={"user": "ada"}, content=png(mask), headers=auth).json()
    assert again["derivative"] == made["derivative"]  # the same mask twice is one version
    with sessions_for(catalogue.db.url)() as s:
        current = current_masks(s, [iid])[iid]  # what the next restore of this item uses
        assert current.id == made["derivative"] and current.recipe["source"] == "portrait-mask.png"
        event = s.scalar(select(Event).where(Event.type == "damage mask", Event.derivative_id == current.id))
        assert event.agent.name == "ada" and event.agent.kind == "person"
        stored = Image.open(io.BytesIO(StoreMedia(catalogue).derivative_file(current)[0]))
        assert np.array_equal(np.asarray(stored), np.where(mask > 127, 255, 0).astype(np.uint8))
    assert (
        c.get(f"/media/derivatives/{made['derivative']}/mask.png").status_code == 404
    )  # itself no version's
    # the item page's deep-zoom viewer shows it as a layer over the scan (a mask has no sidecar)
    info = c.get(f"/iiif/3/derivative-{made['derivative']}/info.json")
    assert info.status_code == 200 and (info.json()["width"], info.json()["height"]) == mask.shape[::-1]


# -- a real browser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(catalogue):
    from archive_db.web.app import create_app
    from tests.services import serving

    app = create_app(
        sessions_for(catalogue.db.url), StoreMedia(catalogue), TOKEN, masks=StoreMasks(catalogue)
    )
    with serving(app) as host:
        yield f"http://{host}"


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("ARCHIVE_REQUIRE_BROWSER"):
            pytest.fail("chromium is required here (ARCHIVE_REQUIRE_BROWSER=1) but is not on PATH")
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=args)
        yield b
        b.close()


def wait_until(page, expression: str, timeout: float = 20) -> None:
    """Poll a JavaScript expression from the test side. (Playwright's wait_for_function evaluates
    its predicate with eval() inside the page, which the catalogue's CSP rightly forbids.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {expression}")
        time.sleep(0.05)


def test_curator_flow_in_a_real_browser(catalogue, server, browser):
    page = browser.new_page(viewport={"width": 1360, "height": 1000})
    problems = []
    # Every failed request and script error is a problem, except the write refused on purpose.
    page.on(
        "response",
        lambda r: (
            problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and "/api/derivatives/" not in r.url
            else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))

    page.goto(server + "/")
    assert page.locator(".collection h2").inner_text() == "seaside"
    wait_until(
        page, "[...document.querySelectorAll('.strip img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.locator(".strip img").count() == 4  # the broken scan has no thumbnail

    page.fill("header input[name=text]", "harbour")
    page.click("header button[type=submit]")
    assert page.locator(".hit").count() == 2
    page.click("ul[data-facet=decade] a")  # follow a facet: the filter goes into the URL
    assert "year_from=1920" in page.url and "text=harbour" in page.url
    page.click("ul[data-facet=collection] a")
    assert "collection=seaside" in page.url and page.locator(".hit").count() == 2

    page.click(".hit a >> text=The harbour master's cat")
    page.wait_for_selector("#slider")
    # the restored layer says how it was made, where the curator looks: beside it and in the table
    assert page.locator(".compare figcaption mark.disclosure.ai").inner_text() == "AI-restored"
    assert page.locator(".compare figcaption mark.disclosure").is_visible()
    assert page.locator("table mark.disclosure").first.inner_text() == "AI-restored"
    wait_until(page, "document.querySelectorAll('.compare img')[1].naturalWidth > 0")
    page.fill("#slider", "20")
    assert (
        page.evaluate("getComputedStyle(document.getElementById('after')).clipPath")
        == "inset(0px 80% 0px 0px)"
    )

    page.fill("#user", "ada")
    page.click("button[data-action=review][data-state=approved]")
    page.wait_for_selector("#action-status.bad")
    assert "Refused (401)" in page.inner_text("#action-status")
    page.fill("#token", TOKEN)
    page.fill("#note", "clean, no haloes")
    page.click("button[data-action=review][data-state=approved]")
    page.wait_for_selector("#action-status.ok")
    assert page.inner_text("td.review") == "approved"
    page.fill("#slider", "55")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "item-page.png"), full_page=True)

    page.click("details.edit summary")  # edit the description: an event with the old and new place
    page.fill("#edit-metadata input[name=place]", "Whitby, North Yorkshire")
    with page.expect_navigation():  # the page reloads to show the saved description
        page.click("#edit-metadata button[type=submit]")
    assert "Whitby, North Yorkshire" in page.inner_text("table.fields")

    page.goto(f"{server}/items/{item_id(catalogue, 'box2/hostile.jpg')}")
    page.click("details.exif summary")  # open the EXIF table: the payload shows as text and runs nothing
    assert XSS in page.inner_text("table.exif")
    assert problems == [], problems
    with sessions_for(catalogue.db.url)() as s:
        event = s.scalar(
            select(Event).where(
                Event.type == "review", Event.detail["note"].as_string() == "clean, no haloes"
            )
        )
        assert event.agent.name == "ada"
        edit = s.scalars(
            select(Event).where(Event.type == "metadata modification").order_by(Event.id.desc())
        ).first()
        assert edit.detail["changes"] == {"place": {"old": "Whitby", "new": "Whitby, North Yorkshire"}}


def test_the_iiif_viewer_shows_tiles_of_the_master_and_the_restored_layer(catalogue, server, browser):
    """OpenSeadragon, from the app's own static files, opens the item's manifest and draws tiles
    of both layers from the catalogue's Image API; the slider fades the restored layer; no
    request fails and the Content-Security-Policy refuses nothing."""
    page = browser.new_page(viewport={"width": 1360, "height": 1000})
    problems, tiles = [], {"master": 0, "derivative": 0}

    def seen(response):
        if response.status >= 400:
            problems.append(f"{response.status} {response.url}")
        elif "/iiif/3/" in response.url and not response.url.endswith("info.json"):
            tiles["master" if "/iiif/3/master-" in response.url else "derivative"] += 1

    page.on("response", seen)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    iid = item_id(catalogue, "box2/cat.jpg")
    page.goto(f"{server}/items/{iid}")
    page.wait_for_selector("#iiif-viewer canvas")
    wait_until(page, "document.getElementById('iiif-viewer').dataset.loaded === '2'")  # both layers open
    deadline = time.monotonic() + 20
    while (tiles["master"] == 0 or tiles["derivative"] == 0) and time.monotonic() < deadline:
        page.wait_for_timeout(200)  # tiles come as the viewer draws
    assert tiles["master"] > 0 and tiles["derivative"] > 0, tiles
    [button] = page.locator("#iiif-layers button").all()
    assert button.inner_text().startswith("AI-restored")
    page.fill("#iiif-opacity", "0")
    assert page.evaluate("document.getElementById('iiif-opacity').value") == "0"
    assert not problems, problems
    page.close()


def test_a_curator_uploads_a_mask_from_the_item_page(catalogue, server, browser, tmp_path):
    iid = item_id(catalogue, "box1/portrait.jpg")
    with sessions_for(catalogue.db.url)() as s:
        before = s.scalars(
            select(Derivative.version).where(Derivative.item_id == iid, Derivative.kind == "mask")
        ).all()
    drawn = tmp_path / "corrected.png"
    drawn.write_bytes(png(drawn_mask(catalogue, "box1/portrait.jpg", slice(30, 45))))
    page = browser.new_page(viewport={"width": 1360, "height": 1000})
    problems = []
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{server}/items/{iid}")
    page.fill("#user", "grace")
    page.fill("#token", TOKEN)
    page.click("details.mask-upload summary")
    page.set_input_files("#mask-file", str(drawn))
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#mask-upload").screenshot(path=str(ARTIFACTS / "mask-upload.png"))
    with page.expect_navigation():  # recorded, then the page reloads with the new version
        page.click("#upload-mask button[type=submit]")
    version = max(before, default=0) + 1
    assert f"v{version}" in page.inner_text("table.versions") and "mask" in page.inner_text("table.versions")
    assert problems == [], problems
    with sessions_for(catalogue.db.url)() as s:
        row = s.scalar(
            select(Derivative).where(
                Derivative.item_id == iid, Derivative.kind == "mask", Derivative.is_current
            )
        )
        assert (
            row.version == version and row.recipe["by"] == "grace" and row.recipe["source"] == "corrected.png"
        )
