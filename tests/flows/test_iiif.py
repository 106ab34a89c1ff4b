"""The IIIF Image API of the web catalogue, checked by the IIIF community's own validator
(`iiif-validate.py`, over HTTP) at the level info.json declares, for a master held in moto's S3
server and for its restored version, on SQLite and PostgreSQL catalogues."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from sqlalchemy import select

from archive_db.models import Derivative, Item
from flows.db import sessions_for
from flows.ingest import ingest_collection
from flows.media import StoreMedia
from flows.restore import restore_collection
from flows.storage.store import open_store
from restoration.checkpoints import save_checkpoint
from restoration.factory import create_model
from tests import samples
from tests.flows.test_restore import register

pytestmark = pytest.mark.usefixtures("prefect_harness")


def validator_image() -> bytes:
    """The validator's test image: 1000x1000, ten by ten squares of the colours it checks."""
    from iiif_validator.validator import ValidationInfo

    colours = ValidationInfo().colorInfo
    img = Image.new("RGB", (1000, 1000), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for x in range(10):
        for y in range(10):
            draw.rectangle([x * 100 + 3, y * 100 + 3, x * 100 + 96, y * 100 + 96], fill=colours[x][y])
    return samples.encode(img, "PNG")


@pytest.fixture
def served(settings, tmp_path, s3_settings, bucket, monkeypatch):
    monkeypatch.setattr("flows.model_versions.SHIPPED", tmp_path / "no-shipped-models")
    settings.store = s3_settings.model_copy(update={"output": f"s3://{bucket}/output"})
    settings.restore = settings.restore.model_copy(update={"tile": 256, "threads": 2})
    settings.web = settings.web.model_copy(update={"iiif_cache": str(tmp_path / "iiif")})
    source = open_store(f"s3://{bucket}/scans", s3_settings)
    source.put("squares.png", validator_image())
    source.put("small.jpg", samples.jpeg((60, 40)))
    torch.manual_seed(0)
    save_checkpoint(  # an untrained U-Net is the identity: the restored squares keep their colours
        create_model("unet_restorer_test"),
        tmp_path / "identity",
        {
            "architecture": "unet_restorer_test",
            "config": {},
            "name": "restore-unet",
            "version": "v1",
            "task": "restore",
            "metrics": {},
        },
    )
    register(settings, tmp_path / "identity", status="production")
    ingest_collection(source.uri, "squares", settings)
    restore_collection("squares", settings=settings)
    with sessions_for(settings.db.url)() as s:
        item = s.scalar(select(Item.id).where(Item.source_key == "squares.png"))
        derivative = s.scalar(select(Derivative.id).where(Derivative.item_id == item))

    from archive_db.web.app import create_app
    from tests.services import serving

    with serving(create_app(sessions_for(settings.db.url), StoreMedia(settings), None)) as host:
        yield host, item, derivative


def test_the_iiif_validator_passes_a_master_in_s3_and_its_restored_version(served):
    import json
    import urllib.request

    server, item, derivative = served
    script = Path(sys.executable).parent / "iiif-validate.py"
    for ident in (f"master-{item}", f"derivative-{derivative}"):
        info = json.loads(urllib.request.urlopen(f"http://{server}/iiif/3/{ident}/info.json").read())
        level = int(info["profile"].removeprefix("level"))
        assert level >= 1 and (info["width"], info["height"]) == (1000, 1000)
        assert info["tiles"][0]["scaleFactors"][:3] == [1, 2, 4]  # a pyramid: levels to cut tiles from
        done = subprocess.run(
            [
                sys.executable,
                str(script),
                "-s",
                server,
                "-p",
                "iiif/3",
                "-i",
                ident,
                "--version",
                "3.0",
                "--level",
                str(level),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        report = done.stdout + done.stderr
        assert done.returncode == 0, f"{ident}:\n{report[-4000:]}"
        passed = report.count(" PASS")
        print(f"{ident}: level {level}, {passed} validator tests passed")
        assert passed >= 20 and "Done (" in report, report[-2000:]  # the level's tests ran, and passed


def test_bad_iiif_requests_get_the_status_the_specification_gives(served):
    import urllib.error
    import urllib.request

    server, item, derivative = served

    def status(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://{server}{path}") as r:
                return r.status, r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    base = f"/iiif/3/master-{item}"
    assert status(f"{base}/full/max/0/default.jpg") == (200, "image/jpeg")
    assert status("/iiif/3/master-999999/info.json")[0] == 404
    assert "no image" in status("/iiif/3/nonsense/info.json")[1]
    assert status("/iiif/3/derivative-999999/full/max/0/default.jpg")[0] == 404
    code, body = status(f"{base}/1000,0,10,10/max/0/default.jpg")
    assert code == 400 and "outside the image" in body  # a region past the right edge
    assert status(f"{base}/full/2000,/0/default.jpg")[0] == 400  # upscaling without ^
    assert status(f"{base}/full/^2000,/0/default.jpg")[0] == 200
    assert status(f"{base}/full/max/45/default.jpg")[0] == 400
    assert status(f"{base}/full/max/0/sepia.jpg")[0] == 400
    tile = Image.open(
        __import__("io").BytesIO(
            urllib.request.urlopen(f"http://{server}{base}/0,0,100,100/50,/0/default.png").read()
        )
    )
    assert tile.size == (50, 50) and tile.format == "PNG"
    assert (
        np.abs(np.asarray(tile.convert("RGB"))[25, 25].astype(int) - (61, 170, 126)).max() < 6
    )  # square 0,0


def test_manifests_and_collections_parse_with_iiif_prezi3_and_offer_both_layers(served, settings):
    import json
    import urllib.request

    from iiif_prezi3 import Collection, Manifest

    server, item, derivative = served
    with sessions_for(settings.db.url).begin() as s:  # a rights statement, as the manifest import sets it
        s.get(Item, item).rights = "http://rightsstatements.org/vocab/NoC-US/1.0/"
    record = json.loads(urllib.request.urlopen(f"http://{server}/api/items/{item}").read())
    assert record["manifest"] == f"http://{server}/iiif/presentation/items/{item}/manifest.json"
    assert record["iiif"] == {
        "master": f"http://{server}/iiif/3/master-{item}",
        str(derivative): f"http://{server}/iiif/3/derivative-{derivative}",
    }
    data = json.loads(urllib.request.urlopen(record["manifest"]).read())
    parsed = Manifest(**data)  # iiif-prezi3's model of Presentation 3.0
    assert (
        parsed.id == record["manifest"] and data["rights"] == "http://rightsstatements.org/vocab/NoC-US/1.0/"
    )
    [canvas] = data["items"]
    body = canvas["items"][0]["items"][0]["body"]
    assert body["type"] == "Choice" and len(body["items"]) == 2
    master, restored = body["items"]
    assert "Original scan" in master["label"]["en"][0] and restored["label"]["en"][0].startswith(
        "AI-restored"
    )
    for layer in (master, restored):  # each layer's image service answers, at the canvas's size
        info = json.loads(urllib.request.urlopen(layer["service"][0]["id"] + "/info.json").read())
        assert (info["width"], info["height"]) == (canvas["width"], canvas["height"]) == (1000, 1000)
    assert any(s["id"].endswith(f"/media/derivatives/{derivative}/metadata.json") for s in data["seeAlso"])
    sidecar = json.loads(
        urllib.request.urlopen(next(s["id"] for s in data["seeAlso"] if "metadata.json" in s["id"])).read()
    )
    assert sidecar["disclosure"]["label"] == "AI-restored"
    # the version's pyramid was written and recorded with it, and is what the Image API serves from
    import hashlib

    recorded = sidecar["derivative"]["files"]["pyramid.tif"]
    with sessions_for(settings.db.url)() as s:
        image_sha = s.get(Derivative, derivative).sha256
    cached = Path(settings.web.iiif_cache) / f"{image_sha}-o1.tif"
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == recorded["sha256"]
    listing = json.loads(
        urllib.request.urlopen(f"http://{server}/iiif/presentation/collections/squares.json").read()
    )
    Collection(**listing)
    assert (
        record["manifest"] in [m["id"] for m in listing["items"]] and len(listing["items"]) == 2
    )  # both scans
